// resolve + vet, cached: one resolver call per key per TTL, shared by every connection that asks meanwhile. A service
// with the Resolver's idiom: the contract below, `make`/`layer` for the built-in cache, `layerTest` for specs, and any
// Layer<RoutingCache> of the user's own passed to runProxy (`routingCache`).
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { Config } from "../config/Config.ts"
import type { ProxyError } from "../domain/ProxyError.ts"
import type { ConnectionInfo } from "../domain/Route.ts"
import { Metrics } from "./Metrics.ts"
import { Resolver } from "./Resolver.ts"
import { type CachedRoute, isDefinite, makeRouteLookup, type RouteLookupOptions } from "./routeLookup.ts"
import { SharedCache } from "./SharedCache.ts"
import type { SsrfGuard } from "./SsrfGuard.ts"
import { TtlCache } from "./TtlCache.ts"

export { type CachedRoute, fromResolveError, type RouteLookup, type RouteLookupOptions } from "./routeLookup.ts"

export interface RoutingCacheOptions extends RouteLookupOptions {
  /** Seconds a resolved and vetted route is reused. */
  readonly ttl: number
  /** Seconds a NOT_FOUND / FORBIDDEN answer is reused. */
  readonly negativeTtl: number
  /** Resources held at most; the least recently used leave first. */
  readonly maxEntries: number
}

export interface RoutingCacheShape {
  readonly get: (resourceId: string, info?: ConnectionInfo) => Effect.Effect<CachedRoute, ProxyError>
  readonly purge: (resourceId: string) => Effect.Effect<void>
  /** Forget every answer (routes reloaded). */
  readonly purgeAll: Effect.Effect<void>
  /**
   * Forget this process's own copy only (cold-start readiness polls): the shared answer, once some process has a
   * fresh one, serves everybody.
   */
  readonly purgeLocal: (resourceId: string) => Effect.Effect<void>
  readonly stats: Effect.Effect<{ readonly hits: number; readonly misses: number; readonly size: number }>
  /** The cached route of a resource, if one is cached now: no lookup, no hit or miss counted (admin dashboard). */
  readonly peek: (resourceId: string) => Effect.Effect<CachedRoute | undefined>
  /**
   * Synchronously, what `get` would answer at once with success (resolved, vetted, not expired), counting nothing;
   * undefined when `get` would wait, fail or resolve. Call `hit` when the answer is used (the listener's
   * fiber-free path). On every new tcp connection: O(1), no allocation.
   */
  readonly peekNow: (resourceId: string) => CachedRoute | undefined
  /** Counts a `peekNow` answer that was used as `get` counts a hit, and keeps the entry recently used. */
  readonly hit: (resourceId: string) => void
}

/** What the built-in cache is made of; a user's RoutingCache layer may use any of them (runProxy provides them). */
export type RoutingCacheNeeds = Resolver | SsrfGuard | Metrics | SharedCache

// Transient failures are kept only a moment: long enough to shed a stampede, short enough to recover quickly.
const transientMs = 1_000

/** The milliseconds an answer is kept: a route `ttl`, a definite refusal `negativeTtl`, anything else a moment. */
const keepFor =
  (options: RoutingCacheOptions) =>
  (exit: Exit.Exit<CachedRoute, ProxyError>): number => {
    if (Exit.isSuccess(exit)) return options.ttl * 1000
    const error = Option.getOrUndefined(Exit.findErrorOption(exit))
    if (error !== undefined && isDefinite(error.reason)) return options.negativeTtl * 1000
    // Interrupted (the proxy is stopping): nothing learnt.
    return Exit.hasInterrupts(exit) ? 0 : Math.min(options.negativeTtl * 1000, transientMs)
  }

export class RoutingCache extends Context.Service<RoutingCache, RoutingCacheShape>()("polyproxy/RoutingCache") {
  /** The cache settings of a config file. */
  static readonly optionsFrom = (config: Config): RoutingCacheOptions => ({
    ttl: config.cache.ttl,
    negativeTtl: config.cache.negativeTtl,
    maxEntries: config.cache.maxEntries,
    resolveTimeout: config.timeouts.resolve
  })

  /**
   * resolve + vet with no cache in this process (the SharedCache tier is still asked): for a RoutingCache of your
   * own, e.g. one keyed by more than the resource id.
   */
  static readonly makeLookup = makeRouteLookup

  /** The built-in cache: TTL, LRU (maxEntries), single-flight, negative answers, the SharedCache as a second tier. */
  static readonly make = Effect.fnUntraced(function* (options: RoutingCacheOptions) {
    const resolver = yield* Resolver
    const metrics = yield* Metrics
    const shared = yield* SharedCache
    const lookup = yield* makeRouteLookup(options)
    const clock = yield* Clock.Clock
    const answers = new TtlCache<string, CachedRoute, ProxyError>({
      maxEntries: options.maxEntries,
      ttlMs: keepFor(options),
      now: () => clock.currentTimeMillisUnsafe(),
      run: yield* FiberSet.makeRuntime()
    })
    let hits = 0
    let misses = 0
    // Another process purged a resource: drop our copy too.
    shared.onPurge((id) => answers.delete(id))

    return RoutingCache.of({
      // Decided when run, not when built: a caller may purge between the two (cold-start polls).
      get: (resourceId, info) =>
        Effect.suspend(() => {
          const cached = answers.cached(resourceId)
          metrics.cacheLookup(cached !== undefined)
          if (cached !== undefined) {
            hits++
            return cached
          }
          misses++
          // The first caller's connection info goes to the resolver; a key's answer must not depend on who asks
          // (resolvers whose answer does should be paired with cache.ttl: 0).
          return answers.lookup(resourceId, lookup(resourceId, info))
        }),
      purge: (resourceId) =>
        Effect.andThen(
          Effect.andThen(
            Effect.sync(() => answers.delete(resourceId)),
            resolver.purge(resourceId)
          ),
          shared.purge(resourceId)
        ),
      purgeAll: Effect.sync(() => answers.clear()),
      purgeLocal: (resourceId) => Effect.sync(() => answers.delete(resourceId)),
      stats: Effect.sync(() => ({ hits, misses, size: answers.size })),
      peek: (resourceId) => Effect.sync(() => answers.answerNow(resourceId)),
      peekNow: (resourceId) => answers.answerNow(resourceId),
      hit: (resourceId) => {
        metrics.cacheLookup(true)
        hits++
        answers.touch(resourceId)
      }
    })
  }) satisfies (
    options: RoutingCacheOptions
  ) => Effect.Effect<RoutingCacheShape, never, RoutingCacheNeeds | Scope.Scope>

  static readonly layer = (options: RoutingCacheOptions) => Layer.effect(RoutingCache, RoutingCache.make(options))

  /**
   * For specs of other modules: caches nothing in this process, so every `get` asks the SharedCache tier, then the
   * Resolver (2 s deadline), and vets; `peekNow` never answers, so listeners always take their fiber path.
   */
  static readonly layerTest = Layer.effect(
    RoutingCache,
    Effect.gen(function* () {
      const resolver = yield* Resolver
      const shared = yield* SharedCache
      const lookup = yield* makeRouteLookup({ ttl: 0, negativeTtl: 0, resolveTimeout: 2 })
      let misses = 0
      return RoutingCache.of({
        get: (resourceId, info) =>
          Effect.suspend(() => {
            misses++
            return lookup(resourceId, info)
          }),
        purge: (resourceId) => Effect.andThen(resolver.purge(resourceId), shared.purge(resourceId)),
        purgeAll: Effect.void,
        purgeLocal: () => Effect.void,
        stats: Effect.sync(() => ({ hits: 0, misses, size: 0 })),
        peek: () => Effect.undefined,
        peekNow: () => undefined,
        hit: () => {}
      })
    })
  )
}
