// The admin endpoint: liveness, readiness with the bound ports, Prometheus metrics, and the operator's API
// (backend health, stats, purge, drain). Bound to loopback by default; `admin.token` requires a bearer token on
// everything but /healthz, /readyz and /metrics, which probes and scrapers call.

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

type MaybeAsync<A> = A | Promise<A>

export interface AdminState {
  /** False while starting and once draining: load balancers should stop sending. */
  readonly ready: () => boolean
  readonly listeners: () => MaybeAsync<Listeners>
  readonly metrics: () => Promise<string>
  /** Circuit-breaker view of every backend that has failed at least once. */
  readonly backends: () => MaybeAsync<unknown>
  /** The Resolver's getStats plus connection and cache counts. */
  readonly stats: () => MaybeAsync<unknown>
  /** Drop a resource from the routing cache (and the Resolver's own memory of it). */
  readonly purge: (resourceId: string) => MaybeAsync<void>
  /** Stop accepting and report not ready; open connections go on. */
  readonly drain: () => MaybeAsync<void>
  /** Re-read the config file and apply it (hot reload); rejects with the reason when the new config is invalid. */
  readonly reload: () => MaybeAsync<unknown>
  /** Bearer token for /admin/*; undefined = none required. */
  readonly token?: string | undefined
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

const reply = (res: http.ServerResponse, work: () => unknown) =>
  Promise.resolve()
    .then(work)
    .then(
      (value) => json(res, 200, value ?? { ok: true }),
      (e) => json(res, 500, { error: String((e as Error)?.message ?? e) })
    )

const paths = [
  "/healthz",
  "/readyz",
  "/metrics",
  "/admin/backends",
  "/admin/stats",
  "POST /admin/purge?id=",
  "POST /admin/drain"
]

const handle = (state: AdminState) => (req: http.IncomingMessage, res: http.ServerResponse) => {
  const url = new URL(req.url ?? "/", "http://admin")
  const path = url.pathname
  const method = req.method ?? "GET"
  if (
    path.startsWith("/admin/") &&
    state.token !== undefined &&
    req.headers.authorization !== `Bearer ${state.token}`
  ) {
    res.setHeader("www-authenticate", 'Bearer realm="polyproxy admin"')
    return json(res, 401, { error: "a bearer token is required (admin.token)" })
  }
  const post = path === "/admin/purge" || path === "/admin/drain" || path === "/admin/reload"
  if (post ? method !== "POST" : method !== "GET" && method !== "HEAD") {
    return json(res, 405, { error: `${method} not allowed on ${path}` })
  }
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
    case "/admin/backends":
      return reply(res, async () => ({ backends: await state.backends() }))
    case "/admin/stats":
      return reply(res, state.stats)
    case "/admin/purge": {
      const id = url.searchParams.get("id")
      if (!id) return json(res, 400, { error: "purge needs ?id=RESOURCE" })
      return reply(res, async () => {
        await state.purge(id)
        return { purged: id }
      })
    }
    case "/admin/reload":
      return Promise.resolve()
        .then(state.reload)
        .then(
          (report) => json(res, 200, report),
          (e) => json(res, 422, { error: String((e as Error)?.message ?? e), kept: "the running config" })
        )
    case "/admin/drain":
      return reply(res, async () => {
        await state.drain()
        return { draining: true }
      })
    default:
      return json(res, 404, { error: "not found", paths })
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
