// connect phase: the one dialer. Every connection the proxy opens to a backend starts here: the vetted IP (never the
// host name again), a source address from `upstream.sourceAddresses`, NODELAY and the keep-alive setup, a deadline,
// and TLS to the backend when the caller's profile asks for it (the deadline then covers the handshake too).
// The socket's listeners are shared functions that find this dial through one field (no closure per dial).
// `dialNow`/`dialWith` are the callback form (the listeners' fiber-free paths, the HTTP pools); `dial` wraps it for a
// handshake fiber.
import * as net from "node:net"
import * as tls from "node:tls"
import * as Effect from "effect/Effect"
import { formatEndpoint, type VettedEndpoint } from "../domain/Endpoint.ts"
import { type ProxyError, proxyError } from "../domain/ProxyError.ts"
import { errorPlaceholder, relayReads } from "../relay/relay.ts"
import { fastReads } from "../relay/userBuffer.ts"
import { type KeepAliveSetup, tcpKeepAlive } from "./keepAlive.ts"
import { nextSourceAddress } from "./sourceAddress.ts"

/** Who waits for a dial: told once, with the connected socket or with why not (the socket is destroyed then). */
export interface DialWaiter {
  readonly target: VettedEndpoint
  /** `timedOut`: the backend did not accept (or finish TLS) within the deadline; `error` says so in words. */
  dialed(socket: net.Socket | undefined, error: ProxyError | undefined, timedOut?: boolean): void
}

/** How the sockets of one kind of use are set up: made once (per listener, per backend pool), never per dial. */
export interface DialProfile {
  /** Keep the socket open after the backend's FIN: a byte relay half-closes each way itself. */
  readonly allowHalfOpen: boolean
  /** TCP keep-alive per `tcp.keepAlive` (connections held for long; HTTP/1 pools have their own idle timeouts). */
  readonly keepAlive: boolean
  /** net's `onread` (reads into a shared buffer instead of a new Buffer per read); plain sockets only. */
  readonly onread: net.OnReadOpts | undefined
  /** Created paused: nothing reads it before its reader resumes it. */
  readonly paused: boolean
  /** TLS to the backend over the TCP connection (`socket` is set per dial); the waiter gets the TLS socket. */
  readonly tls: tls.ConnectionOptions | undefined
  /** The net.Socket options, rebuilt when `tcp.keepAlive` changes (net.Socket copies them). */
  socketOptions: net.SocketConstructorOpts | undefined
  optionsFor: KeepAliveSetup | undefined
}

export const dialProfile = (o: {
  readonly allowHalfOpen: boolean
  readonly keepAlive: boolean
  readonly onread?: net.OnReadOpts | undefined
  readonly paused?: boolean | undefined
  readonly tls?: tls.ConnectionOptions | undefined
}): DialProfile => ({
  allowHalfOpen: o.allowHalfOpen,
  keepAlive: o.keepAlive,
  // A TLS socket reads the TCP one itself.
  onread: o.tls === undefined ? o.onread : undefined,
  paused: o.paused ?? false,
  tls: o.tls,
  socketOptions: undefined,
  optionsFor: undefined
})

/** The byte relays' profiles: a backend the relay and the protocol's replay read, and one only the relay reads. */
const relayed = dialProfile({ allowHalfOpen: true, keepAlive: true })
// `relayOnly`: nothing but the relay will read this socket (no replay, no watcher), so it reads into the relay's
// shared buffer (`relayReads`) and stays paused until the relay resumes it.
const relayOnlyProfile = dialProfile({ allowHalfOpen: true, keepAlive: true, onread: relayReads, paused: true })

const optionsOf = (profile: DialProfile, keepAlive: KeepAliveSetup): net.SocketConstructorOpts => {
  if (profile.optionsFor !== keepAlive || profile.socketOptions === undefined) {
    profile.optionsFor = keepAlive
    profile.socketOptions = {
      allowHalfOpen: profile.allowHalfOpen,
      noDelay: true,
      // TCP keep-alive finds a backend that vanished without a FIN; set here, not by a second call per socket.
      keepAlive: profile.keepAlive && keepAlive.keepAlive,
      keepAliveInitialDelay: keepAlive.keepAliveInitialDelay,
      ...(profile.onread === undefined ? {} : { onread: profile.onread })
    }
  }
  return profile.socketOptions
}

interface PendingDial {
  readonly waiter: DialWaiter
  timer: NodeJS.Timeout | undefined
  /** The TCP socket, and the socket the waiter gets (the TLS one over it, or the same). */
  readonly raw: Dialed
  socket: Dialed
  /** TLS dials: the TCP connection is up, so a failure now is the handshake's. */
  connected: boolean
}

type Dialed = net.Socket & { _dial?: PendingDial | undefined }

/** A backend as the log names it: "host:port", with the IP dialed when the host is a name. */
export const backendName = (t: VettedEndpoint): string => formatEndpoint(t) + (t.ip === t.host ? "" : ` (${t.ip})`)

const settle = (socket: Dialed): PendingDial | undefined => {
  const pending = socket._dial
  if (pending === undefined) return undefined
  pending.raw._dial = undefined
  pending.socket._dial = undefined
  clearTimeout(pending.timer)
  return pending
}

const destroy = (pending: PendingDial) => {
  pending.socket.destroy()
  if (pending.raw !== pending.socket) pending.raw.destroy()
}

function onDialConnect(this: Dialed) {
  const pending = settle(this)
  if (pending !== undefined) pending.waiter.dialed(pending.socket, undefined)
}

/** Before connect: the dial failed. After: the socket's catch-all until the relay's own listener replaces it. */
function onDialError(this: Dialed, err: NodeJS.ErrnoException) {
  const pending = settle(this)
  if (pending === undefined) return
  destroy(pending)
  const why = pending.connected ? `TLS handshake failed: ${err.code ?? err.message}` : (err.code ?? err.message)
  pending.waiter.dialed(
    undefined,
    proxyError("CONNECT_FAILED", "backend", `cannot connect to backend ${backendName(pending.waiter.target)}: ${why}`, {
      cause: err
    })
  )
}
errorPlaceholder(onDialError)

/** TLS dials: from here on, a failure is the handshake's. */
function onTcpConnect(this: Dialed) {
  const pending = this._dial
  if (pending !== undefined) pending.connected = true
}

// Shared too: the timer gets the socket as its argument, so a dial allocates no closure for it.
function onDialTimeout(socket: Dialed, timeoutMs: number) {
  const pending = settle(socket)
  if (pending === undefined) return
  destroy(pending)
  pending.waiter.dialed(
    undefined,
    proxyError(
      "CONNECT_FAILED",
      "backend",
      `backend ${backendName(pending.waiter.target)} did not accept within ${timeoutMs} ms`,
      {
        clientMessage: `the backend did not accept within ${timeoutMs} ms`
      }
    ),
    true
  )
}

/**
 * Starts a dial set up per `profile`; `waiter.dialed` is called once, later (never before this returns), unless
 * `cancelDial` comes first. Returns the socket the waiter will get (the TLS one when the profile has TLS).
 */
export const dialWith = (waiter: DialWaiter, timeoutMs: number, profile: DialProfile): net.Socket => {
  const target = waiter.target
  const keepAlive = tcpKeepAlive()
  const raw: Dialed = new net.Socket(optionsOf(profile, keepAlive))
  if (profile.keepAlive) keepAlive.tune?.(raw)
  if (profile.paused) raw.pause()
  raw.connect({
    host: target.ip,
    port: target.port,
    family: target.family,
    localAddress: nextSourceAddress(target.family)
  })
  if (profile.onread !== undefined) fastReads(raw)
  const pending: PendingDial = { waiter, timer: undefined, raw, socket: raw, connected: false }
  raw._dial = pending
  if (timeoutMs > 0) pending.timer = setTimeout(onDialTimeout, timeoutMs, raw, timeoutMs)
  raw.on("error", onDialError)
  if (profile.tls === undefined) {
    raw.on("connect", onDialConnect)
    return raw
  }
  // Over the socket still connecting: TLS starts its handshake once it connects (a caller such as http2.connect
  // needs the TLS socket now).
  const secure: Dialed = tls.connect({ ...profile.tls, socket: raw })
  raw.once("connect", onTcpConnect)
  pending.socket = secure
  secure._dial = pending
  secure.on("secureConnect", onDialConnect)
  secure.on("error", onDialError)
  return secure
}

/** Starts a dial for a byte relay (see `dialWith`). `relayOnly`: only the relay reads it (`relayReads`, paused). */
export const dialNow = (waiter: DialWaiter, timeoutMs: number, relayOnly = false): net.Socket =>
  dialWith(waiter, timeoutMs, relayOnly ? relayOnlyProfile : relayed)

/** Abandons a dial still under way (shutdown): its waiter is not called. */
export const cancelDial = (socket: net.Socket): void => {
  const pending = settle(socket)
  if (pending === undefined) socket.destroy()
  else destroy(pending)
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
