// resolve + vet for HTTP: the RoutingCache (TTL'd, single-flight, SSRF-vetted) answers per Host, and a tiny memo in
// front of it answers repeated Hosts without running an Effect. Measured (bench/http/route-lookup.ts): a cache hit
// through Effect.runForkWith costs ~0.64 µs, about 3% of a whole proxied request here; the memo ~0.04 µs.
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type { VettedEndpoint } from "../../domain/Endpoint.ts"
import type { ProxyError } from "../../domain/ProxyError.ts"
import type { ConnectionInfo, Route } from "../../domain/Route.ts"
import type { RoutingCache } from "../../services/RoutingCache.ts"
import { type Failure, failure, fromProxyError } from "./failure.ts"
import type { OriginPool, Pools } from "./upstream.ts"

export interface RouteEntry {
  readonly route: Route
  readonly target: VettedEndpoint
  /** The keep-alive pool of `target`, found once per entry instead of once per request. */
  readonly pool: OriginPool
  /** performance.now() after which the memo asks the RoutingCache again. */
  readonly expires: number
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

  constructor(
    context: Context.Context<RoutingCache>,
    cache: RoutingCache["Service"],
    pools: Pools,
    options: { readonly cacheTtl: number; readonly telemetry: boolean; readonly fixedBackend?: VettedEndpoint }
  ) {
    this.runFork = Effect.runForkWith(context)
    this.cache = cache
    this.pools = pools
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
            expires: Number.POSITIVE_INFINITY
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
    const get = this.cache.get(host, info)
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
          expires: performance.now() + this.ttlMs
        }
        if (this.ttlMs > 0) {
          if (this.memo.size >= memoMax) this.memo.clear()
          this.memo.set(host, entry)
        }
        done(entry, undefined, exit.value.hit)
        return
      }
      const reason = exit.cause.reasons[0]
      done(
        undefined,
        reason?._tag === "Fail"
          ? fromProxyError(reason.error, host)
          : failure(500, "INTERNAL", "internal", `route lookup for ${host} failed: ${String(reason)}`, {
              resourceId: host,
              cause: reason?._tag === "Die" ? reason.defect : undefined
            }),
        false
      )
    })
  }
}
