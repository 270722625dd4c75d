// resolve + vet for HTTP: the RoutingCache (TTL'd, single-flight, SSRF-vetted) answers per Host, and a tiny memo in
// front of it answers repeated Hosts without running an Effect. Measured (bench/http/route-lookup.ts): a cache hit
// through Effect.runForkWith costs ~0.64 µs, about 3% of a whole proxied request here; the memo ~0.04 µs.
// A backend the Resolver reports asleep is woken and waited for as the byte listeners do (src/pipeline/coldStart.ts).
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type { VettedEndpoint } from "../../domain/Endpoint.ts"
import type { ProxyError } from "../../domain/ProxyError.ts"
import type { ConnectionInfo, Route } from "../../domain/Route.ts"
import { makeWaking, type Waking } from "../../pipeline/coldStart.ts"
import { CircuitBreaker } from "../../services/CircuitBreaker.ts"
import { ColdStart } from "../../services/ColdStart.ts"
import { Metrics, type ResourceMetrics } from "../../services/Metrics.ts"
import { Resolver } from "../../services/Resolver.ts"
import type { RoutingCache } from "../../services/RoutingCache.ts"
import { SharedCache } from "../../services/SharedCache.ts"
import { type Failure, fromCause } from "./failure.ts"
import type { OriginPool, Pools } from "./upstream.ts"

export interface RouteEntry {
  readonly route: Route
  readonly target: VettedEndpoint
  /** The keep-alive pool of `target`, found once per entry instead of once per request. */
  readonly pool: OriginPool
  /** performance.now() after which the memo asks the RoutingCache again. */
  readonly expires: number
  /** `metadata.wakeable`: a refused connect means the backend sleeps (HttpRuntime.wakes). */
  readonly wakeable: boolean
  /** The resource's per-resource metrics (metrics.perResource), found once per entry; undefined when off. */
  readonly metrics: ResourceMetrics | undefined
}

export type RouteCallback = (entry: RouteEntry | undefined, failure: Failure | undefined, cacheHit: boolean) => void

// A memo entry lives at most this long: short enough that purges and TTLs of the RoutingCache show through quickly.
const memoMs = 1_000
const memoMax = 10_000

export class Routes {
  private readonly memo = new Map<string, RouteEntry>()
  private readonly ttlMs: number
  private readonly runFork: <A, E>(
    effect: Effect.Effect<A, E, RoutingCache>
  ) => {
    addObserver(cb: (exit: Exit.Exit<A, E>) => void): unknown
  }
  private readonly cache: RoutingCache["Service"]
  private readonly pools: Pools
  private readonly withHit: boolean
  private readonly fixed: RouteEntry | undefined
  private readonly resourceMetrics: Metrics["Service"]["resource"]
  /** Cold start; undefined when the context has no ColdStart (an embedder's own layers): then 503 at once. */
  readonly waking: Waking | undefined

  constructor(
    context: Context.Context<RoutingCache | Resolver>,
    cache: RoutingCache["Service"],
    pools: Pools,
    options: {
      readonly cacheTtl: number
      readonly telemetry: boolean
      readonly fixedBackend?: VettedEndpoint
      /** Seconds one process holds the cluster-wide wake claim of a resource (coldStart.timeout). */
      readonly wakeLockSeconds?: number
    }
  ) {
    this.runFork = Effect.runForkWith(context)
    this.cache = cache
    this.pools = pools
    // Optional like the breaker (HttpListener): the composition root always provides them, an embedder may not.
    const metrics = Context.getOption(context, Metrics)
    this.resourceMetrics = Option.isSome(metrics) ? metrics.value.resource : () => undefined
    const coldStart = Context.getOption(context, ColdStart)
    const shared = Context.getOption(context, SharedCache)
    const breaker = Context.getOption(context, CircuitBreaker)
    this.waking = Option.isNone(coldStart)
      ? undefined
      : makeWaking(
          cache,
          coldStart.value,
          Option.isSome(shared) ? shared.value : { claimWake: () => Effect.succeed(true) },
          Context.get(context, Resolver),
          options.wakeLockSeconds ?? 30,
          Option.isSome(breaker) ? breaker.value : undefined
        )
    // A resolver whose answer depends on who asks runs with cache.ttl 0: then nothing may be remembered here either.
    this.ttlMs = Math.min(memoMs, options.cacheTtl * 1000)
    this.withHit = options.telemetry
    const f = options.fixedBackend
    this.fixed =
      f === undefined
        ? undefined
        : {
            route: { resourceId: "fixedBackend", endpoint: { host: f.host, port: f.port }, metadata: {} },
            target: f,
            pool: pools.get(f, undefined),
            expires: Number.POSITIVE_INFINITY,
            wakeable: false,
            metrics: this.resourceMetrics("fixedBackend")
          }
  }

  /** The memoised route of `host`, or undefined: then call `resolve`. */
  cached(host: string): RouteEntry | undefined {
    if (this.fixed !== undefined) return this.fixed
    const e = this.memo.get(host)
    if (e === undefined) return undefined
    if (e.expires > performance.now()) return e
    this.memo.delete(host)
    return undefined
  }

  /** Asks the RoutingCache (and through it the Resolver and the SSRF guard); `done` runs once. */
  resolve(host: string, info: ConnectionInfo, done: RouteCallback): void {
    const get = this.waking === undefined ? this.cache.get(host, info) : this.waking.resolve(host, info)
    const effect: Effect.Effect<{ r: { route: Route; target: VettedEndpoint }; hit: boolean }, ProxyError> = this
      .withHit
      ? Effect.flatMap(this.cache.stats, (before) =>
          Effect.flatMap(get, (r) =>
            Effect.map(this.cache.stats, (after) => ({ r, hit: after.misses === before.misses }))
          )
        )
      : Effect.map(get, (r) => ({ r, hit: false }))
    this.runFork(effect).addObserver((exit) => {
      if (Exit.isSuccess(exit)) {
        const { route, target } = exit.value.r
        const entry: RouteEntry = {
          route,
          target,
          pool: this.pools.get(target, route),
          expires: performance.now() + this.ttlMs,
          wakeable: route.metadata.wakeable === true,
          metrics: this.resourceMetrics(route.resourceId)
        }
        if (this.ttlMs > 0) {
          if (this.memo.size >= memoMax) this.memo.clear()
          this.memo.set(host, entry)
        }
        done(entry, undefined, exit.value.hit)
        return
      }
      done(undefined, fromCause(exit.cause, host, "route lookup"), false)
    })
  }
}
