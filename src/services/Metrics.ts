// Counters, gauges and histograms, updated synchronously from Node callbacks (no fiber on the data path)
// and rendered as Prometheus text for GET /metrics.

import { monitorEventLoopDelay } from "node:perf_hooks"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import type { ProxyError } from "../domain/ProxyError.ts"
import { prometheusText } from "./prometheus.ts"

export interface ResourceMetrics {
  readonly connected: () => void
  readonly closed: (bytesFromClient: number, bytesFromBackend: number) => void
}

/** Per-listener handles, built once when the listener starts (attributes resolved then, not per connection). */
export interface ListenerMetrics {
  readonly accepted: () => void
  /** A connection ended; bytes are the totals of both sockets, taken once at close. */
  readonly closed: (bytesFromClient: number, bytesFromBackend: number) => void
  readonly refused: (reason: string) => void
  /** accept → relay start (identify, resolve, vet, admit, connect, replay), in ms. */
  readonly handshake: (ms: number) => void
  readonly active: () => number
}

export interface MetricsShape {
  /**
   * Attributes `listener` (the name), `protocol` (its label, src/domain/Protocols.ts) and `type` (its listener type, set
   * when the name is not the type).
   */
  readonly listener: (name: string, protocol?: string, type?: string) => ListenerMetrics
  readonly resolved: (result: "ok" | Exit.Exit<unknown, ProxyError>, ms: number) => void
  readonly cacheLookup: (hit: boolean) => void
  /**
   * Per-resource counters for the first `perResource` resources seen (then "other"): label cardinality stays
   * bounded whatever the number of tenants. Undefined when per-resource metrics are off.
   */
  readonly resource: (resourceId: string) => ResourceMetrics | undefined
  readonly prometheus: Effect.Effect<string>
}

const ctx = Context.empty()
const latencyBoundaries = Metric.exponentialBoundaries({ start: 0.05, factor: 2, count: 16 })

const rss = Metric.gauge("polyproxy_process_resident_memory_bytes", { description: "RSS of the proxy process(es)" })
const heap = Metric.gauge("polyproxy_process_heap_used_bytes", { description: "V8 heap in use" })
// "_max": across worker processes the aggregate keeps the worst one rather than a sum.
const lag = Metric.gauge("polyproxy_event_loop_lag_p99_ms_max", {
  description: "99th percentile event-loop delay since the previous scrape, in ms (worst process)"
})
// Sampled by libuv's timer, not ours: no per-connection or per-tick cost.
let loop: ReturnType<typeof monitorEventLoopDelay> | undefined
/** Process gauges, refreshed at each scrape (every process of a cluster reports its own; /metrics sums them). */
export const sampleProcess = (): void => {
  const m = process.memoryUsage()
  rss.updateUnsafe(m.rss, ctx)
  heap.updateUnsafe(m.heapUsed, ctx)
  if (loop === undefined) {
    loop = monitorEventLoopDelay({ resolution: 20 })
    loop.enable()
  }
  lag.updateUnsafe(loop.count > 0 ? loop.percentile(99) / 1e6 : 0, ctx)
  loop.reset()
}

/** This process's exposition, process gauges refreshed first. */
export const metricsText = (): string => {
  sampleProcess()
  return prometheusText()
}

export interface MetricsOptions {
  /** How many resources get their own series; 0 = none. */
  readonly perResource: number
}

const make = (options: MetricsOptions = { perResource: 0 }): MetricsShape => {
  const accepted = Metric.counter("polyproxy_connections_accepted_total", {
    description: "Client connections accepted, per listener",
    incremental: true
  })
  const closed = Metric.counter("polyproxy_connections_closed_total", {
    description: "Proxied connections that ended, per listener",
    incremental: true
  })
  const active = Metric.gauge("polyproxy_connections_active", { description: "Open client connections, per listener" })
  const errors = Metric.counter("polyproxy_errors_total", {
    description: "Connections refused or failed, per listener and reason",
    incremental: true
  })
  const bytesIn = Metric.counter("polyproxy_bytes_from_client_total", {
    description: "Bytes read from clients",
    incremental: true
  })
  const bytesOut = Metric.counter("polyproxy_bytes_from_backend_total", {
    description: "Bytes read from backends",
    incremental: true
  })
  const resolveMs = Metric.histogram("polyproxy_resolve_duration_ms", {
    description: "Resolver call latency in milliseconds (cache misses only)",
    boundaries: latencyBoundaries
  })
  const resolveResults = Metric.counter("polyproxy_resolves_total", {
    description: "Resolver calls by result",
    incremental: true
  })
  const cache = Metric.counter("polyproxy_route_cache_lookups_total", {
    description: "Routing cache lookups by result (hit/miss)",
    incremental: true
  })
  const cacheHit = Metric.withAttributes(cache, { result: "hit" })
  const cacheMiss = Metric.withAttributes(cache, { result: "miss" })
  const resolveByResult = new Map<string, Metric.Counter<number>>()
  const handshakeMs = Metric.histogram("polyproxy_handshake_duration_ms", {
    description: "Accept to relay start (identify, resolve, vet, admit, connect, replay) in milliseconds, per listener",
    boundaries: latencyBoundaries
  })

  const resourceConnections = Metric.counter("polyproxy_resource_connections_total", {
    description: "Proxied connections per resource (the first metrics.perResource resources, then other)",
    incremental: true
  })
  const resourceBytes = Metric.counter("polyproxy_resource_bytes_total", {
    description: "Bytes relayed per resource and direction (the first metrics.perResource resources, then other)",
    incremental: true
  })
  const resources = new Map<string, ResourceMetrics>()
  const resourceHandles = (label: string): ResourceMetrics => {
    const n = Metric.withAttributes(resourceConnections, { resource: label })
    const up = Metric.withAttributes(resourceBytes, { resource: label, direction: "from_client" })
    const down = Metric.withAttributes(resourceBytes, { resource: label, direction: "from_backend" })
    return {
      connected: () => n.updateUnsafe(1, ctx),
      closed: (fromClient, fromBackend) => {
        if (fromClient > 0) up.updateUnsafe(fromClient, ctx)
        if (fromBackend > 0) down.updateUnsafe(fromBackend, ctx)
      }
    }
  }
  let other: ResourceMetrics | undefined

  return {
    resource: (resourceId) => {
      if (options.perResource === 0) return undefined
      const known = resources.get(resourceId)
      if (known !== undefined) return known
      if (resources.size < options.perResource) {
        const handles = resourceHandles(resourceId)
        resources.set(resourceId, handles)
        return handles
      }
      other ??= resourceHandles("other")
      return other
    },
    listener: (name, protocol, type) => {
      const attrs: Record<string, string> = { listener: name }
      if (protocol !== undefined) attrs.protocol = protocol
      if (type !== undefined) attrs.type = type
      const a = Metric.withAttributes(accepted, attrs)
      const c = Metric.withAttributes(closed, attrs)
      const g = Metric.withAttributes(active, attrs)
      const bi = Metric.withAttributes(bytesIn, attrs)
      const bo = Metric.withAttributes(bytesOut, attrs)
      const byReason = new Map<string, Metric.Counter<number>>()
      const hs = Metric.withAttributes(handshakeMs, attrs)
      let open = 0
      return {
        accepted: () => {
          a.updateUnsafe(1, ctx)
          g.updateUnsafe(++open, ctx)
        },
        closed: (fromClient, fromBackend) => {
          c.updateUnsafe(1, ctx)
          g.updateUnsafe(--open, ctx)
          if (fromClient > 0) bi.updateUnsafe(fromClient, ctx)
          if (fromBackend > 0) bo.updateUnsafe(fromBackend, ctx)
        },
        refused: (reason) => {
          let m = byReason.get(reason)
          if (m === undefined) byReason.set(reason, (m = Metric.withAttributes(errors, { ...attrs, reason })))
          m.updateUnsafe(1, ctx)
        },
        handshake: (ms) => hs.updateUnsafe(ms, ctx),
        active: () => open
      }
    },
    resolved: (result, ms) => {
      const key = result === "ok" ? "ok" : Exit.isFailure(result) ? failureReason(result) : "ok"
      let m = resolveByResult.get(key)
      if (m === undefined) resolveByResult.set(key, (m = Metric.withAttributes(resolveResults, { result: key })))
      m.updateUnsafe(1, ctx)
      resolveMs.updateUnsafe(ms, ctx)
    },
    cacheLookup: (hit) => (hit ? cacheHit : cacheMiss).updateUnsafe(1, ctx),
    prometheus: Effect.sync(metricsText)
  }
}

const failureReason = (exit: Exit.Exit<unknown, ProxyError>): string => {
  if (Exit.isSuccess(exit)) return "ok"
  const reason = exit.cause.reasons[0]
  return reason?._tag === "Fail" ? reason.error.reason.toLowerCase() : "interrupted"
}

export class Metrics extends Context.Service<Metrics, MetricsShape>()("polyproxy/Metrics") {
  static readonly layer = Layer.sync(Metrics, () => make())
  static readonly layerWith = (options: MetricsOptions) => Layer.sync(Metrics, () => make(options))
  /** Same registry-backed implementation: metrics have no I/O, so tests use the real thing. */
  static readonly layerTest = Metrics.layer
}
