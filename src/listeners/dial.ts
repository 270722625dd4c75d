// connect phase: dial the vetted IP (never the host name again) with a deadline.
// The socket's listeners are shared functions that find this dial through one field, and none is ever removed:
// removing listeners turns a socket's `_events` into a dictionary (≈ 450 B more per connection, held for its life).
import * as net from "node:net"
import * as Effect from "effect/Effect"
import { formatEndpoint, type VettedEndpoint } from "../domain/Endpoint.ts"
import { type ProxyError, proxyError } from "../domain/ProxyError.ts"

interface PendingDial {
  readonly resume: (effect: Effect.Effect<net.Socket, ProxyError>) => void
  readonly target: VettedEndpoint
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
  settle(this)?.resume(Effect.succeed(this))
}

/** Before connect: the dial failed. After: stays attached as the socket's catch-all (the relay reports errors). */
function onDialError(this: Dialed, err: NodeJS.ErrnoException) {
  const pending = settle(this)
  if (pending === undefined) return
  this.destroy()
  pending.resume(
    Effect.fail(
      proxyError(
        "CONNECT_FAILED",
        "backend",
        `cannot connect to backend ${where(pending.target)}: ${err.code ?? err.message}`,
        {
          cause: err
        }
      )
    )
  )
}

export const dial = (target: VettedEndpoint, timeoutMs: number): Effect.Effect<net.Socket, ProxyError> =>
  Effect.callback<net.Socket, ProxyError>((resume) => {
    const socket: Dialed = net.connect({
      host: target.ip,
      port: target.port,
      family: target.family,
      allowHalfOpen: true,
      noDelay: true,
      // TCP keep-alive finds a backend that vanished without a FIN; set here, not by a second call per socket.
      keepAlive: true,
      keepAliveInitialDelay: 60_000
    })
    const pending: PendingDial = { resume, target, timer: undefined }
    socket._dial = pending
    if (timeoutMs > 0) {
      pending.timer = setTimeout(() => {
        if (settle(socket) === undefined) return
        socket.destroy()
        resume(
          Effect.fail(
            proxyError("CONNECT_FAILED", "backend", `backend ${where(target)} did not accept within ${timeoutMs} ms`)
          )
        )
      }, timeoutMs)
    }
    socket.on("connect", onDialConnect)
    socket.on("error", onDialError)
    return Effect.sync(() => {
      settle(socket)
      socket.destroy()
    })
  })
