// resolve + vet, uncached: what the RoutingCache asks on a miss. The shared tier (Redis) first, the Resolver on a
// miss there, with a deadline and metrics; then the SSRF guard, always here (a shared answer is checked against this
// process's own rules).
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type { VettedEndpoint } from "../domain/Endpoint.ts"
import { type ProxyError, proxyError, type Reason } from "../domain/ProxyError.ts"
import type { ResolveError } from "../domain/ResolveError.ts"
import type { ConnectionInfo, Route } from "../domain/Route.ts"
import { Metrics } from "./Metrics.ts"
import { asResolveError, Resolver } from "./Resolver.ts"
import { SharedCache } from "./SharedCache.ts"
import { SsrfGuard } from "./SsrfGuard.ts"

export interface CachedRoute {
  readonly route: Route
  /** The vetted address to dial: never look the host up again (DNS rebinding). */
  readonly target: VettedEndpoint
}

export interface RouteLookupOptions {
  /** Seconds the shared tier keeps a route. */
  readonly ttl: number
  /** Seconds the shared tier keeps a NOT_FOUND / FORBIDDEN answer. */
  readonly negativeTtl: number
  /** Seconds the resolver may take before the connection fails with TIMEOUT. */
  readonly resolveTimeout: number
}

/** A resource's route, resolved and vetted now. */
export type RouteLookup = (resourceId: string, info?: ConnectionInfo) => Effect.Effect<CachedRoute, ProxyError>

/**
 * The resolver's definite answers: worded for the client (ResolveError.ts; the others' words go to the log only),
 * and kept for `negativeTtl` where the others are kept a moment.
 */
export const isDefinite = (code: Reason): boolean => code === "NOT_FOUND" || code === "FORBIDDEN"

const fromResolver = (code: Reason, message: string, extra: { retryAfter?: number; cause?: unknown } = {}) =>
  proxyError(code, "resolver", message, isDefinite(code) ? { ...extra, clientMessage: message } : extra)

export const fromResolveError = (e: ResolveError): ProxyError =>
  fromResolver(e.code, e.message, {
    ...(e.retryAfter === undefined ? {} : { retryAfter: e.retryAfter }),
    ...(e.cause === undefined ? {} : { cause: e.cause })
  })

export const makeRouteLookup = Effect.fnUntraced(function* (options: RouteLookupOptions) {
  const resolver = yield* Resolver
  const guard = yield* SsrfGuard
  const metrics = yield* Metrics
  const shared = yield* SharedCache

  const resolveFresh = (resourceId: string, info: ConnectionInfo | undefined): Effect.Effect<Route, ProxyError> => {
    const started = performance.now()
    return resolver.resolve(resourceId, info).pipe(
      // A resolver that dies (an Effect layer that throws) or fails with another type: INTERNAL, worded as the
      // async adapter words a throw.
      Effect.catchDefect((defect) => Effect.fail(asResolveError(resourceId, defect))),
      Effect.mapError((e) => fromResolveError(asResolveError(resourceId, e))),
      Effect.timeoutOrElse({
        duration: Duration.seconds(options.resolveTimeout),
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

  /** The shared tier first; the Resolver on a miss, its answer then shared with every process. */
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
          isDefinite(e.reason)
            ? shared.set(resourceId, { error: { reason: e.reason, message: e.message } }, options.negativeTtl)
            : Effect.void
        )
      )
    })

  const lookup: RouteLookup = (resourceId, info) =>
    Effect.flatMap(resolveShared(resourceId, info), (route) =>
      Effect.map(guard.vet(route.endpoint), (target) => ({ route, target }))
    )
  return lookup
})
