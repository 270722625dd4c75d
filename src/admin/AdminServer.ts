// The admin endpoint: liveness, readiness with the bound ports, and Prometheus metrics.

import * as http from "node:http"
import type * as net from "node:net"
import * as Effect from "effect/Effect"
import { type ProxyError, proxyError } from "../domain/ProxyError.ts"

export interface ListenerInfo {
  readonly host: string
  readonly port: number
  readonly open: number
}

type Listeners = Readonly<Record<string, { readonly host: string; readonly port: number; readonly open: number }>>

export interface AdminState {
  /** False while starting and once draining: load balancers should stop sending. */
  readonly ready: () => boolean
  readonly listeners: () => Listeners | Promise<Listeners>
  readonly metrics: () => Promise<string>
}

const send = (res: http.ServerResponse, status: number, type: string, body: string) => {
  res.writeHead(status, {
    "content-type": type,
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store"
  })
  res.end(body)
}

const json = (res: http.ServerResponse, status: number, value: unknown) =>
  send(res, status, "application/json", `${JSON.stringify(value)}\n`)

const handle = (state: AdminState) => (req: http.IncomingMessage, res: http.ServerResponse) => {
  const path = (req.url ?? "/").split("?")[0]
  if (req.method !== "GET" && req.method !== "HEAD") return json(res, 405, { error: "method not allowed" })
  switch (path) {
    case "/healthz":
      return json(res, 200, { status: "ok" })
    case "/readyz": {
      const ready = state.ready()
      return Promise.resolve(state.listeners()).then(
        (listeners) => json(res, ready ? 200 : 503, { ready, listeners }),
        (e) => json(res, 500, { error: String(e) })
      )
    }
    case "/metrics":
      return state.metrics().then(
        (text) => send(res, 200, "text/plain; version=0.0.4; charset=utf-8", text),
        (e) => json(res, 500, { error: String(e) })
      )
    default:
      return json(res, 404, { error: "not found", paths: ["/healthz", "/readyz", "/metrics"] })
  }
}

/** Starts the admin HTTP server; closed when the scope ends. */
export const startAdmin = (host: string, port: number, state: AdminState) =>
  Effect.acquireRelease(
    Effect.callback<{ server: http.Server; host: string; port: number }, ProxyError>((resume) => {
      const server = http.createServer(handle(state))
      server.keepAliveTimeout = 5_000
      server.once("error", (err: NodeJS.ErrnoException) =>
        resume(
          Effect.fail(
            proxyError("INTERNAL", "internal", `cannot listen on admin ${host}:${port}: ${err.code ?? err.message}`)
          )
        )
      )
      server.listen(port, host, () => {
        const a = server.address() as net.AddressInfo
        resume(Effect.succeed({ server, host: a.address, port: a.port }))
      })
    }),
    ({ server }) =>
      Effect.sync(() => {
        server.close()
        server.closeAllConnections()
      })
  )
