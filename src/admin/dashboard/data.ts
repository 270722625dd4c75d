// What the operator dashboard (GET /) shows, gathered only when asked: no timer, no per-connection work. One process
// reports its listeners' totals and its busiest resources inside /admin/stats; the dashboard endpoint adds backends,
// config and version, and the cluster primary sums the workers' reports the same way.
import { createRequire } from "node:module"
import * as Context from "effect/Context"
import * as Metric from "effect/Metric"
import type { Config } from "../../config/Config.ts"
import type { ListenerCensus, RunningListener } from "../../listeners/Listener.ts"
import type { BackendHealth, BreakerState } from "../../services/CircuitBreaker.ts"
import type { PoolRow } from "../pools.ts"

/** Busiest resources reported per process (the page searches among them). */
export const busiestLimit = 100

export interface ListenerTotals {
  /** The listener's type (postgres, tcp, a program's own…); its name is the key. */
  readonly type: string
  readonly protocol: string
  readonly host: string
  readonly port: number
  /** Open connections now (handshaking or relaying). */
  readonly active: number
  readonly accepted: number
  readonly closed: number
  /** Refused or failed connections by reason (lower-case ProxyError reasons). */
  readonly errors: Readonly<Record<string, number>>
  /** Closed connections' totals plus what the open ones have moved so far. */
  readonly bytesFromClient: number
  readonly bytesFromBackend: number
}

export interface ResourceRow {
  readonly id: string
  readonly active: number
  /** The cached route's endpoint ("host:port"), when one is cached. */
  readonly backend?: string | undefined
  /** The vetted address dialed ("ip:port", the circuit breaker's key). */
  readonly address?: string | undefined
}

export interface ResourceView {
  /** Resources with open connections (per process, summed across workers). */
  readonly open: number
  readonly busiest: ReadonlyArray<ResourceRow>
}

/** The parts of /admin/stats the dashboard reads, one process's worth. */
export interface ProcessStats {
  readonly pid: number
  readonly listeners: Readonly<Record<string, ListenerTotals>>
  readonly resources: ResourceView
  readonly cache: { readonly hits: number; readonly misses: number; readonly size: number }
  readonly coldStartWaiting: Readonly<Record<string, number>>
  readonly resolver: Readonly<Record<string, unknown>>
}

/** GET /admin/dashboard. */
export interface Dashboard {
  readonly version: string
  readonly now: number
  readonly uptimeSeconds: number
  readonly ready: boolean
  /** Worker processes that answered (1 without a cluster). */
  readonly workers: number
  readonly pids: ReadonlyArray<number>
  readonly listeners: Readonly<Record<string, ListenerTotals>>
  readonly resources: ResourceView
  readonly coldStartWaiting: Readonly<Record<string, number>>
  readonly backends: ReadonlyArray<BackendHealth>
  /** The server-connection pools (PostgreSQL, MySQL), as GET /admin/pools lists them. */
  readonly pools: ReadonlyArray<PoolRow>
  readonly cache: ProcessStats["cache"]
  readonly resolver: Readonly<Record<string, unknown>>
  readonly config: unknown
}

let versionText: string | undefined
/** The package's version (src/admin/dashboard → package.json, and the same from dist/admin/dashboard). */
export const version = (): string => {
  if (versionText === undefined) {
    try {
      versionText = (createRequire(import.meta.url)("../../../package.json") as { version: string }).version
    } catch {
      versionText = "unknown"
    }
  }
  return versionText
}

const num = (v: number | bigint): number => (typeof v === "bigint" ? Number(v) : v)

const counterIds = new Set([
  "polyproxy_connections_accepted_total",
  "polyproxy_connections_closed_total",
  "polyproxy_errors_total",
  "polyproxy_bytes_from_client_total",
  "polyproxy_bytes_from_backend_total"
])

interface Counters {
  protocol: string
  accepted: number
  closed: number
  errors: Record<string, number>
  bytesFromClient: number
  bytesFromBackend: number
}

/** This process's per-listener counters, read from the metric registry (the series /metrics renders). */
const listenerCounters = (): Map<string, Counters> => {
  const out = new Map<string, Counters>()
  for (const s of Metric.snapshotUnsafe(Context.empty())) {
    if (s.type !== "Counter" || !counterIds.has(s.id)) continue
    const name = s.attributes?.listener
    if (name === undefined) continue
    let c = out.get(name)
    if (c === undefined) {
      c = {
        protocol: s.attributes?.protocol ?? name,
        accepted: 0,
        closed: 0,
        errors: {},
        bytesFromClient: 0,
        bytesFromBackend: 0
      }
      out.set(name, c)
    }
    const n = num(s.state.count)
    switch (s.id) {
      case "polyproxy_connections_accepted_total":
        c.accepted += n
        break
      case "polyproxy_connections_closed_total":
        c.closed += n
        break
      case "polyproxy_errors_total": {
        const reason = s.attributes?.reason ?? "unknown"
        c.errors[reason] = (c.errors[reason] ?? 0) + n
        break
      }
      case "polyproxy_bytes_from_client_total":
        c.bytesFromClient += n
        break
      default:
        c.bytesFromBackend += n
    }
  }
  return out
}

const emptyCensus: ListenerCensus = { resources: new Map(), bytesRead: 0, bytesWritten: 0 }

/**
 * One process's listeners and busiest resources. `listeners` may hold a name twice after a reload restarted it (the
 * old one still relays its connections): they add up, the newest gives the address. `route` reads the routing cache,
 * `kind` a listener's type and protocol label.
 */
export const processView = (
  listeners: ReadonlyArray<RunningListener>,
  route: (resourceId: string) => { readonly backend: string; readonly address: string } | undefined,
  kind: (l: RunningListener) => { readonly type: string; readonly protocol?: string | undefined } | undefined = () =>
    undefined
): { listeners: Record<string, ListenerTotals>; resources: ResourceView } => {
  const counters = listenerCounters()
  const totals: Record<string, ListenerTotals> = {}
  const perResource = new Map<string, number>()
  for (const l of listeners) {
    const census = l.census?.() ?? emptyCensus
    for (const [id, n] of census.resources) perResource.set(id, (perResource.get(id) ?? 0) + n)
    const before = totals[l.name]
    const c = counters.get(l.name)
    const k = kind(l)
    totals[l.name] = {
      type: k?.type ?? l.name,
      protocol: k?.protocol ?? c?.protocol ?? l.name,
      host: l.host,
      port: l.port,
      active: (before?.active ?? 0) + l.open(),
      accepted: c?.accepted ?? 0,
      closed: c?.closed ?? 0,
      errors: c?.errors ?? {},
      bytesFromClient: (before?.bytesFromClient ?? c?.bytesFromClient ?? 0) + census.bytesRead,
      bytesFromBackend: (before?.bytesFromBackend ?? c?.bytesFromBackend ?? 0) + census.bytesWritten
    }
  }
  const busiest = [...perResource]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, busiestLimit)
    .map(([id, active]): ResourceRow => ({ id, active, ...route(id) }))
  return { listeners: totals, resources: { open: perResource.size, busiest } }
}

const sumRecord = (a: Readonly<Record<string, number>>, b: Readonly<Record<string, number>>) => {
  const out: Record<string, number> = { ...a }
  for (const [k, v] of Object.entries(b)) out[k] = (out[k] ?? 0) + v
  return out
}

/** Numbers add up, anything else keeps the first worker's value. */
const sumLoose = (items: ReadonlyArray<Readonly<Record<string, unknown>>>): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const item of items) {
    for (const [k, v] of Object.entries(item)) {
      const prev = out[k]
      if (typeof v === "number" && (prev === undefined || typeof prev === "number"))
        out[k] = ((prev as number) ?? 0) + v
      else if (prev === undefined) out[k] = v
    }
  }
  return out
}

const isProcessStats = (s: unknown): s is ProcessStats =>
  typeof s === "object" && s !== null && "listeners" in s && "resources" in s && "cache" in s

/** The cluster's view: every worker's /admin/stats summed (listeners by name, resources by id). */
export const mergeStats = (
  answers: ReadonlyArray<unknown>
): Omit<Dashboard, "version" | "now" | "uptimeSeconds" | "ready" | "backends" | "pools" | "config"> => {
  const stats = answers.filter(isProcessStats)
  const listeners: Record<string, ListenerTotals> = {}
  const resources = new Map<string, { active: number; backend?: string | undefined; address?: string | undefined }>()
  let open = 0
  let coldStartWaiting: Record<string, number> = {}
  const cache = { hits: 0, misses: 0, size: 0 }
  for (const s of stats) {
    for (const [name, l] of Object.entries(s.listeners)) {
      const m = listeners[name]
      listeners[name] =
        m === undefined
          ? l
          : {
              ...m,
              active: m.active + l.active,
              accepted: m.accepted + l.accepted,
              closed: m.closed + l.closed,
              errors: sumRecord(m.errors, l.errors),
              bytesFromClient: m.bytesFromClient + l.bytesFromClient,
              bytesFromBackend: m.bytesFromBackend + l.bytesFromBackend
            }
    }
    open += s.resources.open
    for (const r of s.resources.busiest) {
      const m = resources.get(r.id)
      resources.set(r.id, {
        active: (m?.active ?? 0) + r.active,
        backend: m?.backend ?? r.backend,
        address: m?.address ?? r.address
      })
    }
    coldStartWaiting = sumRecord(coldStartWaiting, s.coldStartWaiting)
    cache.hits += s.cache.hits
    cache.misses += s.cache.misses
    cache.size += s.cache.size
  }
  const busiest = [...resources]
    .sort((a, b) => b[1].active - a[1].active || (a[0] < b[0] ? -1 : 1))
    .slice(0, busiestLimit)
    .map(([id, r]): ResourceRow => ({ id, ...r }))
  return {
    workers: stats.length,
    pids: stats.map((s) => s.pid),
    listeners,
    resources: { open, busiest },
    coldStartWaiting,
    cache,
    resolver: sumLoose(stats.map((s) => s.resolver))
  }
}

const severity: Record<BreakerState, number> = { closed: 0, "half-open": 1, open: 2 }

/** Every worker keeps its own breakers: one row per backend, the worst state, failures and successes summed. */
export const mergeBackends = (lists: ReadonlyArray<ReadonlyArray<BackendHealth>>): Array<BackendHealth> => {
  const out = new Map<string, BackendHealth>()
  for (const b of lists.flat()) {
    const m = out.get(b.backend)
    out.set(
      b.backend,
      m === undefined
        ? b
        : {
            backend: b.backend,
            state: severity[b.state] > severity[m.state] ? b.state : m.state,
            consecutiveFailures: Math.max(m.consecutiveFailures, b.consecutiveFailures),
            totalFailures: m.totalFailures + b.totalFailures,
            totalSuccesses: m.totalSuccesses + b.totalSuccesses,
            retryInMs: Math.max(m.retryInMs, b.retryInMs),
            lastError: m.lastError ?? b.lastError
          }
    )
  }
  return [...out.values()]
}

const secretKey = /token|passw(or)?d|secret|api[-_]?key|credential|auth/i
const hidden = "[redacted]"

/** Userinfo passwords and secret-looking query parameters of URLs; other strings unchanged. */
const redactString = (value: string): string => {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return value
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return value
  }
  let changed = false
  if (url.password !== "") {
    url.password = "***"
    changed = true
  }
  for (const key of [...url.searchParams.keys()]) {
    if (secretKey.test(key)) {
      url.searchParams.set(key, "***")
      changed = true
    }
  }
  return changed ? url.href : value
}

/** The config as the dashboard shows it: tokens, passwords and secret-looking keys replaced, URL passwords masked. */
export const redactConfig = (config: Config): unknown => {
  const walk = (value: unknown, key: string | undefined): unknown => {
    if (key !== undefined && secretKey.test(key) && value !== undefined && value !== null && typeof value !== "boolean")
      return hidden
    if (typeof value === "string") return redactString(value)
    if (Array.isArray(value)) return value.map((v) => walk(v, undefined))
    if (typeof value === "object" && value !== null) {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v, k)]))
    }
    return value
  }
  return walk(config, undefined)
}
