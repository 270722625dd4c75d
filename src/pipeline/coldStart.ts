// resolve and connect phases, cold-start part, shared by every listener (the byte listeners per connection, HTTP per
// request). A backend the Resolver reports asleep (UNAVAILABLE with retry-after), or a `metadata.wakeable` route
// whose backend refuses, is woken once per cold period: one claim across processes and pods (SharedCache.claimWake),
// one waker per resource in this process (ColdStart), however many clients wait for it meanwhile.
import * as Effect from "effect/Effect"
import { breakerKey, type VettedEndpoint } from "../domain/Endpoint.ts"
import type { ProxyError } from "../domain/ProxyError.ts"
import type { ConnectionInfo } from "../domain/Route.ts"
import { dial } from "../listeners/dial.ts"
import type { CircuitBreakerShape } from "../services/CircuitBreaker.ts"
import type { ColdStartShape } from "../services/ColdStart.ts"
import type { ResolverShape } from "../services/Resolver.ts"
import type { CachedRoute, RoutingCache } from "../services/RoutingCache.ts"
import type { SharedCacheShape } from "../services/SharedCache.ts"

export interface Waking {
  /** Calls the Resolver's `wake` (or `track` without one) when this process wins the cluster-wide claim. */
  readonly wake: (resourceId: string) => Effect.Effect<void>
  /**
   * resolve: the cached route of `resourceId`; while the Resolver reports the backend cold, the caller waits for it
   * to wake (coldStart.timeout, coldStart.maxQueue bound the wait: then UNAVAILABLE with retry-after).
   */
  readonly resolve: (resourceId: string, who: ConnectionInfo) => Effect.Effect<CachedRoute, ProxyError>
  /**
   * connect, for a wakeable route whose backend refused (see `asleep`): wakes it and waits until `target` accepts a
   * connection (the probe's success closes the backend's breaker). Then dial again.
   */
  readonly untilAccepting: (
    resourceId: string,
    target: VettedEndpoint,
    timeoutMs: number
  ) => Effect.Effect<void, ProxyError>
}

/** The Resolver says the backend sleeps and will come back: wait for it instead of refusing at once. */
export const resolvedCold = (e: ProxyError): boolean =>
  e.reason === "UNAVAILABLE" && e.source === "resolver" && e.retryAfter !== undefined

/** A wakeable route's connect failure that means "asleep": refused, or its breaker open after refusals. */
export const asleep = (e: { readonly reason: string; readonly source: string }): boolean =>
  e.reason === "CONNECT_FAILED" || (e.reason === "UNAVAILABLE" && e.source === "backend")

export const makeWaking = (
  cache: RoutingCache["Service"],
  coldStart: ColdStartShape,
  shared: Pick<SharedCacheShape, "claimWake">,
  resolver: Pick<ResolverShape, "wake" | "track">,
  wakeLockSeconds: number,
  breaker?: Pick<CircuitBreakerShape, "success">
): Waking => {
  // One wake per cold period across every process and pod sharing Redis (each process already asks only once).
  const wake = (resourceId: string) =>
    Effect.flatMap(shared.claimWake(resourceId, wakeLockSeconds), (mine) =>
      !mine ? Effect.void : resolver.wake ? resolver.wake(resourceId) : resolver.track(resourceId)
    )
  return {
    wake,
    resolve: (resourceId, who) =>
      cache.get(resourceId, who).pipe(
        Effect.catchIf(resolvedCold, () =>
          Effect.andThen(
            coldStart.await(
              resourceId,
              wake(resourceId),
              // Ready once this process's copy is asked again and the answer is a route.
              Effect.andThen(cache.purgeLocal(resourceId), cache.get(resourceId, who))
            ),
            cache.get(resourceId, who)
          )
        )
      ),
    untilAccepting: (resourceId, target, timeoutMs) =>
      coldStart.await(
        resourceId,
        wake(resourceId),
        Effect.map(dial(target, timeoutMs), (s) => {
          s.destroy()
          breaker?.success(breakerKey(target))
        })
      )
  }
}
