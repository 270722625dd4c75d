// resolve + vet, cached: one resolver call per key per TTL, shared by every connection that asks meanwhile.
import * as Cache from "effect/Cache"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as MutableHashMap from "effect/MutableHashMap"
import * as Option from "effect/Option"
import type { VettedEndpoint } from "../domain/Endpoint.ts"
import { type ProxyError, proxyError, type Reason } from "../domain/ProxyError.ts"
import type { ResolveError } from "../domain/ResolveError.ts"
import type { ConnectionInfo, Route } from "../domain/Route.ts"
import { Metrics } from "./Metrics.ts"
import { asResolveError, Resolver } from "./Resolver.ts"
import { SharedCache } from "./SharedCache.ts"
import { SsrfGuard } from "./SsrfGuard.ts"

export interface RoutingCacheOptions {
  /** Seconds a resolved and vetted route is reused. */
  readonly ttl: number
  /** Seconds a NOT_FOUND / FORBIDDEN answer is reused. */
  readonly negativeTtl: number
  readonly maxEntries: number
  /** Seconds the resolver may take before the connection fails with TIMEOUT. */
  readonly resolveTimeout: number
}

export interface CachedRoute {
  readonly route: Route
  /** The vetted address to dial: never look the host up again (DNS rebinding). */
  readonly target: VettedEndpoint
}

// Transient failures are kept only a moment: long enough to shed a stampede, short enough to recover quickly.
const transientTtl = Duration.seconds(1)

/** Codes whose message the Resolver writes for the client (ResolveError.ts); the others' go to the log only. */
const clientFacing = (code: Reason): boolean => code === "NOT_FOUND" || code === "FORBIDDEN"

const fromResolver = (code: Reason, message: string, extra: { retryAfter?: number; cause?: unknown } = {}) =>
  proxyError(code, "resolver", message, clientFacing(code) ? { ...extra, clientMessage: message } : extra)

export const fromResolveError = (e: ResolveError): ProxyError =>
  fromResolver(e.code, e.message, {
    ...(e.retryAfter === undefined ? {} : { retryAfter: e.retryAfter }),
    ...(e.cause === undefined ? {} : { cause: e.cause })
  })

export class RoutingCache extends Context.Service<
  RoutingCache,
  {
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
     * fiber-free path).
     */
    readonly peekNow: (resourceId: string) => CachedRoute | undefined
    /** Counts a `peekNow` answer that was used as `get` counts a hit, and keeps the entry recently used. */
    readonly hit: (resourceId: string) => void
  }
>()("polyproxy/RoutingCache") {
  static readonly make = Effect.fnUntraced(function* (options: RoutingCacheOptions) {
    const resolver = yield* Resolver
    const guard = yield* SsrfGuard
    const metrics = yield* Metrics
    const positive = Duration.seconds(options.ttl)
    const negative = Duration.seconds(options.negativeTtl)
    const transient = Duration.min(negative, transientTtl)
    const resolveTimeout = Duration.seconds(options.resolveTimeout)
    let hits = 0
    let misses = 0

    // The first caller's connection info goes to the resolver; a key's answer must not depend on who asks
    // (resolvers whose answer does should be paired with cache.ttl: 0).
    const pending = new Map<string, ConnectionInfo | undefined>()

    const shared = yield* SharedCache

    /** L2 (Redis, when configured) first; the Resolver on a miss, its answer then shared with every process. */
    const resolveShared = (resourceId: string, info: ConnectionInfo | undefined): Effect.Effect<Route, ProxyError> =>
      Effect.flatMap(shared.get(resourceId), (answer) => {
        if (answer !== undefined) {
          return "route" in answer
            ? Effect.succeed(answer.route)
            : Effect.fail(fromResolver(answer.error.reason, answer.error.message))
        }
        return resolveFresh(resourceId, info).pipe(
          Effect.tap((route) => shared.set(resourceId, { route }, options.ttl)),
          Effect.tapError((e) =>
            e.reason === "NOT_FOUND" || e.reason === "FORBIDDEN"
              ? shared.set(resourceId, { error: { reason: e.reason, message: e.message } }, options.negativeTtl)
              : Effect.void
          )
        )
      })

    const resolveFresh = (resourceId: string, info: ConnectionInfo | undefined): Effect.Effect<Route, ProxyError> => {
      const started = performance.now()
      return resolver.resolve(resourceId, info).pipe(
        // A resolver that dies (an Effect layer that throws) or fails with another type: INTERNAL, worded as the
        // async adapter words a throw.
        Effect.catchDefect((defect) => Effect.fail(asResolveError(resourceId, defect))),
        Effect.mapError((e) => fromResolveError(asResolveError(resourceId, e))),
        Effect.timeoutOrElse({
          duration: resolveTimeout,
          orElse: () =>
            Effect.fail(
              proxyError(
                "TIMEOUT",
                "resolver",
                `resolver did not answer for "${resourceId}" within ${options.resolveTimeout}s`
              )
            )
        }),
        Effect.onExit((exit) =>
          Effect.sync(() => metrics.resolved(Exit.isSuccess(exit) ? "ok" : exit, performance.now() - started))
        )
      )
    }

    // Vetting is always local: a shared answer is checked against this process's own SSRF rules.
    const lookup = (resourceId: string): Effect.Effect<CachedRoute, ProxyError> =>
      Effect.flatMap(resolveShared(resourceId, pending.get(resourceId)), (route) =>
        Effect.map(guard.vet(route.endpoint), (target) => ({ route, target }))
      )

    const cache = yield* Cache.makeWith(lookup, {
      capacity: options.maxEntries,
      timeToLive: (exit) => {
        if (Exit.isSuccess(exit)) return positive
        const reason = (exit.cause.reasons[0] as { error?: ProxyError } | undefined)?.error?.reason
        return reason === "NOT_FOUND" || reason === "FORBIDDEN" ? negative : transient
      }
    })
    // Another process purged a resource: drop our copy too.
    shared.onPurge((id) => Effect.runFork(Cache.invalidate(cache, id)))

    return RoutingCache.of({
      get: (resourceId, info) =>
        Effect.flatMap(Cache.has(cache, resourceId), (present) => {
          metrics.cacheLookup(present)
          if (present) {
            hits++
            return Cache.get(cache, resourceId)
          }
          misses++
          if (!pending.has(resourceId)) pending.set(resourceId, info)
          return Effect.ensuring(
            Cache.get(cache, resourceId),
            Effect.sync(() => pending.delete(resourceId))
          )
        }),
      purge: (resourceId) =>
        Effect.andThen(
          Effect.andThen(Cache.invalidate(cache, resourceId), resolver.purge(resourceId)),
          shared.purge(resourceId)
        ),
      purgeAll: Cache.invalidateAll(cache),
      purgeLocal: (resourceId) => Cache.invalidate(cache, resourceId),
      stats: Effect.map(Cache.size(cache), (size) => ({ hits, misses, size })),
      peek: (resourceId) => Effect.map(Cache.getSuccess(cache, resourceId), Option.getOrUndefined),
      // Reads the Cache's own entries: expiry as Cache.get checks it (the default clock is Date.now), the lookup
      // fiber's exit for the answer.
      peekNow: (resourceId) => {
        const found = MutableHashMap.get(cache.map, resourceId)
        if (Option.isNone(found)) return undefined
        const entry = found.value
        if (entry.expiresAt !== undefined && Date.now() >= entry.expiresAt) return undefined
        const exit = entry.fiber.pollUnsafe()
        return exit !== undefined && Exit.isSuccess(exit) ? exit.value : undefined
      },
      hit: (resourceId) => {
        metrics.cacheLookup(true)
        hits++
        // What Cache.get does on a hit: the entry moves to the end of the map (evicted last).
        const found = MutableHashMap.get(cache.map, resourceId)
        if (Option.isNone(found)) return
        MutableHashMap.remove(cache.map, resourceId)
        MutableHashMap.set(cache.map, resourceId, found.value)
      }
    })
  })

  static readonly layer = (options: RoutingCacheOptions) => Layer.effect(RoutingCache, RoutingCache.make(options))
}
