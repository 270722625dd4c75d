// The admin endpoint: liveness, readiness with the bound ports, Prometheus metrics, the operator's API (backend
// health, stats, purge, drain) and the dashboard page at GET /. Bound to loopback by default; `admin.token` requires a
// bearer token on everything but /healthz, /readyz and /metrics, which probes and scrapers call. A browser logs in
// once with `GET /?token=…` and gets a session cookie (session.ts). Whatever the token, the dashboard and /admin/*
// answer only Hosts that cannot be DNS-rebound (hosts.ts), and state changes refuse what a foreign page sent (guard.ts).

import { createHash, timingSafeEqual } from "node:crypto"
import * as http from "node:http"
import type * as net from "node:net"
import * as Effect from "effect/Effect"
import { type ProxyError, proxyError } from "../domain/ProxyError.ts"
import type { LogShape } from "../services/Log.ts"
import type { Dashboard } from "./dashboard/data.ts"
import { dashboardPage, pageHeaders, tokenPage } from "./dashboard/page.ts"
import { crossSite, isSafeMethod, type Refusal } from "./guard.ts"
import { type HostCheck, hostCheck, isLoopbackHost } from "./hosts.ts"
import { newSession, sessionSeconds, validSession } from "./session.ts"

/** One listener in /readyz, under its name: its type and protocol label, where it listens, its open connections. */
export interface ListenerInfo {
  readonly type: string
  readonly protocol?: string | undefined
  readonly host: string
  readonly port: number
  readonly open: number
}

/** A listener of one process, named (a worker's answer to the primary). */
export interface ListenerStatus extends ListenerInfo {
  readonly name: string
}

type Listeners = Readonly<Record<string, ListenerInfo>>

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
  /** The PostgreSQL server-connection pools, one row each (pools.ts); undefined: 404. */
  readonly pools?: (() => MaybeAsync<unknown>) | undefined
  /** Drop a resource from the routing cache (and the Resolver's own memory of it). */
  readonly purge: (resourceId: string) => MaybeAsync<void>
  /** Stop accepting and report not ready; open connections go on. */
  readonly drain: () => MaybeAsync<void>
  /** Re-read the config file and apply it (hot reload); rejects with the reason when the new config is invalid. */
  readonly reload: () => MaybeAsync<unknown>
  /** What the dashboard page polls (GET /admin/dashboard); gathered only when asked. */
  readonly dashboard?: (() => MaybeAsync<Dashboard>) | undefined
  /** Bearer token for /admin/*; undefined = none required. */
  readonly token?: string | undefined
  /** Host names (besides IP literals and localhost) the dashboard and /admin/* answer: `admin.allowedHosts`. */
  readonly allowedHosts?: ReadonlyArray<string> | undefined
  /** Where refused admin requests are reported. */
  readonly log?: Pick<LogShape, "warn"> | undefined
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
  "/ (dashboard)",
  "/healthz",
  "/readyz",
  "/metrics",
  "/admin/backends",
  "/admin/stats",
  "/admin/pools",
  "/admin/dashboard",
  "POST /admin/purge?id=",
  "POST /admin/drain",
  "POST /admin/reload"
]

const digest = (text: string) => createHash("sha256").update(text).digest()

/** Same time whatever the guess: compares digests, so neither the length nor a prefix leaks. */
const sameSecret = (given: string | undefined, expected: Buffer) =>
  given !== undefined && timingSafeEqual(digest(given), expected)

/** The header the dashboard's script adds to its calls: a cross-site page cannot send it without a CORS preflight. */
export const dashboardHeader = "x-polyproxy-dashboard"

/** Cookies are per host, not per port: one name per admin port, so two proxies on one host keep their own. */
const cookieName = (req: http.IncomingMessage) => `polyproxy_admin_${req.socket.localPort ?? 0}`

const cookie = (req: http.IncomingMessage, name: string): string | undefined => {
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const eq = part.indexOf("=")
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim())
      } catch {
        return undefined
      }
    }
  }
  return undefined
}

interface Secret {
  readonly text: string
  readonly digest: Buffer
}

const bearerOk = (req: http.IncomingMessage, token: Secret | undefined): boolean => {
  const auth = req.headers.authorization
  return token !== undefined && auth?.startsWith("Bearer ") === true && sameSecret(auth.slice(7), token.digest)
}

/**
 * With `admin.token`: `Authorization: Bearer <token>` everywhere, or the dashboard's session cookie. The cookie
 * (HttpOnly, SameSite=Strict, set by `GET /?token=`) opens the page itself; on /admin/* it counts only with the
 * dashboard's header as well, which a page of another site cannot add without a CORS preflight (CSRF).
 */
const authorized = (req: http.IncomingMessage, path: string, token: Secret | undefined, bearer: boolean): boolean => {
  if (token === undefined || bearer) return true
  if (path.startsWith("/admin/") && req.headers[dashboardHeader] === undefined) return false
  return validSession(cookie(req, cookieName(req)), token.text)
}

const html = (res: http.ServerResponse, status: number, body: string) => {
  res.writeHead(status, { ...pageHeaders, "content-length": Buffer.byteLength(body) })
  res.end(body)
}

/**
 * GET /: the page; `?token=` is checked, answered with a session cookie (a value derived from the token, never the
 * token) and taken out of the address bar by a redirect.
 */
const page = (
  state: AdminState,
  token: Secret | undefined,
  bearer: boolean,
  req: http.IncomingMessage,
  res: http.ServerResponse
) => {
  const given = new URL(req.url ?? "/", "http://admin").searchParams.get("token")
  if (given !== null) {
    if (token !== undefined && !sameSecret(given, token.digest)) {
      return html(res, 401, tokenPage("That token is not right."))
    }
    const headers: http.OutgoingHttpHeaders = { location: "/", "cache-control": "no-store", "content-length": 0 }
    if (token !== undefined) {
      headers["set-cookie"] =
        `${cookieName(req)}=${newSession(token.text)}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${sessionSeconds}`
    }
    res.writeHead(303, headers)
    return res.end()
  }
  if (!authorized(req, "/", token, bearer)) return html(res, 401, tokenPage())
  if (state.dashboard === undefined) return json(res, 404, { error: "no dashboard here" })
  return html(res, 200, dashboardPage)
}

/**
 * Read-only and open even with a token, for kubelets, load balancers and Prometheus, which call them by whatever
 * name or address they were given: no Host check (they show no config and change nothing).
 */
const probes = new Set(["/healthz", "/readyz", "/metrics"])

/** Host, then Origin: why a request for the dashboard or /admin/* is refused before any token is looked at. */
const refusal = (
  req: http.IncomingMessage,
  method: string,
  bearer: boolean,
  hostOk: HostCheck
): Refusal | undefined => {
  // DNS rebinding: a page cannot know the token, so a valid bearer token needs no Host check (and kubectl
  // port-forward, Services and Ingress names keep working for tools); browsers and no-token setups get it.
  if (!bearer && !hostOk(req.headers.host)) {
    return {
      status: 403,
      error: "this Host is not allowed on the admin endpoint: use its IP address, localhost, or admin.allowedHosts",
      detail: { host: req.headers.host }
    }
  }
  return isSafeMethod(method) ? undefined : crossSite(req, bearer)
}

const handle = (state: AdminState, bindHost: string) => {
  const token = state.token === undefined ? undefined : { text: state.token, digest: digest(state.token) }
  const hostOk = hostCheck(state.allowedHosts ?? [], bindHost)
  return (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://admin")
    const path = url.pathname
    const method = req.method ?? "GET"
    const bearer = bearerOk(req, token)
    if (!probes.has(path)) {
      const refused = refusal(req, method, bearer, hostOk)
      if (refused !== undefined) {
        const detail = Object.fromEntries(Object.entries(refused.detail).map(([k, v]) => [k, v?.slice(0, 200)]))
        state.log?.warn("admin request refused", { method, path, status: refused.status, ...detail })
        return json(res, refused.status, { error: refused.error })
      }
    }
    if (path.startsWith("/admin/") && !authorized(req, path, token, bearer)) {
      res.setHeader("www-authenticate", 'Bearer realm="polyproxy admin"')
      return json(res, 401, { error: "a bearer token is required (admin.token)" })
    }
    return route(state, token, bearer, url, path, method, req, res)
  }
}

const route = (
  state: AdminState,
  token: Secret | undefined,
  bearer: boolean,
  url: URL,
  path: string,
  method: string,
  req: http.IncomingMessage,
  res: http.ServerResponse
) => {
  const post = path === "/admin/purge" || path === "/admin/drain" || path === "/admin/reload"
  if (post ? method !== "POST" : method !== "GET" && method !== "HEAD") {
    return json(res, 405, { error: `${method} not allowed on ${path}` })
  }
  switch (path) {
    case "/":
      return page(state, token, bearer, req, res)
    case "/admin/dashboard":
      if (state.dashboard === undefined) return json(res, 404, { error: "no dashboard here" })
      return reply(res, state.dashboard)
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
    case "/admin/pools": {
      const pools = state.pools
      if (pools === undefined) return json(res, 404, { error: "no pools here" })
      return reply(res, async () => ({ pools: await pools() }))
    }
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
      const server = http.createServer(handle(state, host))
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
        // Allowed only with admin.insecure (decode.ts): said once, loudly, at every start.
        if (state.token === undefined && !isLoopbackHost(a.address)) {
          state.log?.warn("admin endpoint reachable from the network without admin.token (admin.insecure)", {
            host: a.address,
            port: a.port
          })
        }
        resume(Effect.succeed({ server, host: a.address, port: a.port }))
      })
    }),
    ({ server }) =>
      Effect.sync(() => {
        server.close()
        server.closeAllConnections()
      })
  )
