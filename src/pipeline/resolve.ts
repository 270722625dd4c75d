// resolve and vet phases of the byte listeners: the route of a resource and the backend address to dial. The
// RoutingCache answers (a Resolver's answer, vetted by the SsrfGuard when it was resolved: the dialer gets the IP the
// guard checked, never the host name again); every wait in there is bounded: the Resolver by timeouts.resolve,
// the shared cache by Redis's command timeout, the guard's DNS lookup by its own, and a cold backend's wake by
// coldStart.timeout (coldStart.ts). identify may have found a backend itself (a Postgres cancel request for a known
// session): vetted when that session was, it skips both.
import type * as Effect from "effect/Effect"
import type { VettedEndpoint } from "../domain/Endpoint.ts"
import type { ProxyError } from "../domain/ProxyError.ts"
import type { ConnectionInfo } from "../domain/Route.ts"
import type { Identified } from "../listeners/Protocol.ts"
import type { CachedRoute } from "../services/RoutingCache.ts"
import type { ListenerState } from "./ListenerState.ts"

/** identify's own backend, if it named one: a route for the logs and hooks. */
const identifiedRoute = (resourceId: string, target: VettedEndpoint): CachedRoute => ({
  route: { resourceId, endpoint: { host: target.host, port: target.port }, metadata: {} },
  target
})

/**
 * The vetted route without waiting, when there is one: identify's own backend, or the cache's answer (counted as the
 * hit `get` would count). Undefined: `resolve` it.
 */
export const resolvedNow = (p: ListenerState, found: Identified): CachedRoute | undefined => {
  if (found.target !== undefined) return identifiedRoute(found.resourceId, found.target)
  const cached = p.cache.peekNow(found.resourceId)
  if (cached !== undefined) p.cache.hit(found.resourceId)
  return cached
}

/** The cache's lookup; while the Resolver reports the backend cold, the client waits for it to wake. */
export const resolve = (
  p: ListenerState,
  resourceId: string,
  who: ConnectionInfo
): Effect.Effect<CachedRoute, ProxyError> => p.waking.resolve(resourceId, who)
