// connect phase: dial the vetted IP (never the host name again) with a deadline.
// The socket's listeners are shared functions that find this dial through one field (no closure per dial).
// `dialNow` is the callback form (the listener's fiber-free path); `dial` wraps it for the handshake fiber.
import * as net from "node:net"
import * as Effect from "effect/Effect"
import { formatEndpoint, type VettedEndpoint } from "../domain/Endpoint.ts"
import { type ProxyError, proxyError } from "../domain/ProxyError.ts"
import { errorPlaceholder, relayReads } from "../relay/relay.ts"
import { type KeepAliveSetup, tcpKeepAlive } from "./keepAlive.ts"
import { nextSourceAddress } from "./sourceAddress.ts"

/** Who waits for a dial: told once, with the connected socket or with why not (the socket is destroyed then). */
export interface DialWaiter {
  readonly target: VettedEndpoint
  dialed(socket: net.Socket | undefined, error: ProxyError | undefined): void
}

interface PendingDial {
  readonly waiter: DialWaiter
  timer: NodeJS.Timeout | undefined
}

type Dialed = net.Socket & { _dial?: PendingDial | undefined }

const where = (t: VettedEndpoint) => formatEndpoint(t) + (t.ip === t.host ? "" : ` (${t.ip})`)

const settle = (socket: Dialed): PendingDial | undefined => {
  const pending = socket._dial
  if (pending === undefined) return undefined
  socket._dial = undefined
  clearTimeout(pending.timer)
  return pending
}

function onDialConnect(this: Dialed) {
  settle(this)?.waiter.dialed(this, undefined)
}

/** Before connect: the dial failed. After: the socket's catch-all until the relay's own listener replaces it. */
function onDialError(this: Dialed, err: NodeJS.ErrnoException) {
  const pending = settle(this)
  if (pending === undefined) return
  this.destroy()
  pending.waiter.dialed(
    undefined,
    proxyError(
      "CONNECT_FAILED",
      "backend",
      `cannot connect to backend ${where(pending.waiter.target)}: ${err.code ?? err.message}`,
      { cause: err }
    )
  )
}
errorPlaceholder(onDialError)

// Shared too: the timer gets the socket as its argument, so a dial allocates no closure for it.
function onDialTimeout(socket: Dialed, timeoutMs: number) {
  const pending = settle(socket)
  if (pending === undefined) return
  socket.destroy()
  pending.waiter.dialed(
    undefined,
    proxyError(
      "CONNECT_FAILED",
      "backend",
      `backend ${where(pending.waiter.target)} did not accept within ${timeoutMs} ms`,
      {
        clientMessage: `the backend did not accept within ${timeoutMs} ms`
      }
    )
  )
}

// Shared by every dial (net.Socket copies its options); rebuilt when `tcp.keepAlive` changes.
let optionsFor: KeepAliveSetup | undefined
let socketOptions: net.SocketConstructorOpts = {}
let relayOnlyOptions: net.SocketConstructorOpts = {}
const optionsNow = (): KeepAliveSetup => {
  const keepAlive = tcpKeepAlive()
  if (keepAlive !== optionsFor) {
    optionsFor = keepAlive
    socketOptions = {
      allowHalfOpen: true,
      noDelay: true,
      // TCP keep-alive finds a backend that vanished without a FIN; set here, not by a second call per socket.
      keepAlive: keepAlive.keepAlive,
      keepAliveInitialDelay: keepAlive.keepAliveInitialDelay
    }
    relayOnlyOptions = { ...socketOptions, onread: relayReads }
  }
  return keepAlive
}

/**
 * Starts a dial; `waiter.dialed` is called once, later (never before this returns), unless `cancelDial` comes first.
 * `relayOnly`: nothing but the relay will read this socket (no replay, no watcher), so it reads into the relay's
 * shared buffer (`relayReads`) and stays paused until the relay resumes it.
 */
export const dialNow = (waiter: DialWaiter, timeoutMs: number, relayOnly = false): net.Socket => {
  const target = waiter.target
  const keepAlive = optionsNow()
  const socket: Dialed = new net.Socket(relayOnly ? relayOnlyOptions : socketOptions)
  keepAlive.tune?.(socket)
  if (relayOnly) socket.pause()
  socket.connect({
    host: target.ip,
    port: target.port,
    family: target.family,
    localAddress: nextSourceAddress(target.family)
  })
  const pending: PendingDial = { waiter, timer: undefined }
  socket._dial = pending
  if (timeoutMs > 0) pending.timer = setTimeout(onDialTimeout, timeoutMs, socket, timeoutMs)
  socket.on("connect", onDialConnect)
  socket.on("error", onDialError)
  return socket
}

/** Abandons a dial still under way (shutdown): its waiter is not called. */
export const cancelDial = (socket: net.Socket): void => {
  settle(socket)
  socket.destroy()
}

class FiberWaiter implements DialWaiter {
  readonly target: VettedEndpoint
  readonly resume: (effect: Effect.Effect<net.Socket, ProxyError>) => void
  constructor(target: VettedEndpoint, resume: (effect: Effect.Effect<net.Socket, ProxyError>) => void) {
    this.target = target
    this.resume = resume
  }
  dialed(socket: net.Socket | undefined, error: ProxyError | undefined): void {
    this.resume(error === undefined ? Effect.succeed(socket!) : Effect.fail(error))
  }
}

export const dial = (
  target: VettedEndpoint,
  timeoutMs: number,
  relayOnly = false
): Effect.Effect<net.Socket, ProxyError> =>
  Effect.callback<net.Socket, ProxyError>((resume) => {
    const socket = dialNow(new FiberWaiter(target, resume), timeoutMs, relayOnly)
    return Effect.sync(() => cancelDial(socket))
  })
