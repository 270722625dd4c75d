// connect phase: dial the vetted IP (never the host name again) with a deadline.

import * as net from "node:net"
import * as Effect from "effect/Effect"
import { formatEndpoint, type VettedEndpoint } from "../domain/Endpoint.ts"
import { type ProxyError, proxyError } from "../domain/ProxyError.ts"

export const dial = (target: VettedEndpoint, timeoutMs: number): Effect.Effect<net.Socket, ProxyError> =>
  Effect.callback<net.Socket, ProxyError>((resume) => {
    const socket = net.connect({
      host: target.ip,
      port: target.port,
      family: target.family,
      allowHalfOpen: true,
      noDelay: true
    })
    const where = formatEndpoint(target) + (target.ip === target.host ? "" : ` (${target.ip})`)
    const fail = (message: string, cause?: unknown) => {
      socket.destroy()
      resume(Effect.fail(proxyError("CONNECT_FAILED", "backend", message, { cause })))
    }
    const timer =
      timeoutMs > 0
        ? setTimeout(() => fail(`backend ${where} did not accept within ${timeoutMs} ms`), timeoutMs)
        : undefined
    socket.once("connect", () => {
      clearTimeout(timer)
      socket.removeAllListeners("error")
      resume(Effect.succeed(socket))
    })
    socket.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      fail(`cannot connect to backend ${where}: ${err.code ?? err.message}`, err)
    })
    return Effect.sync(() => {
      clearTimeout(timer)
      socket.destroy()
    })
  })
