// The user's extension point: resource id -> backend. Swap this layer for your own in production.
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { type Endpoint, parseEndpoint } from "../domain/Endpoint.ts"
import { type ResolveCode, ResolveError, resolveCodes } from "../domain/ResolveError.ts"
import type { ConnectionInfo, DisconnectInfo, Route } from "../domain/Route.ts"

export interface ResolverShape {
  /** Where `resourceId` lives, or a ResolveError with a code (NOT_FOUND, FORBIDDEN, UNAVAILABLE, TIMEOUT, INTERNAL). */
  readonly resolve: (resourceId: string, info?: ConnectionInfo) => Effect.Effect<Route, ResolveError>
  /** A connection for `resourceId` was seen: resolvers that scale backends to zero use it as a keep-alive beat. */
  readonly track: (resourceId: string) => Effect.Effect<void>
  /**
   * Wake a sleeping backend (called once per cold period, however many clients wait). Absent = `track` is called
   * instead, as a keep-alive beat.
   */
  readonly wake?: ((resourceId: string) => Effect.Effect<void>) | undefined
  /** Forget what is known of `resourceId` (the RoutingCache purges its own entry too). */
  readonly purge: (resourceId: string) => Effect.Effect<void>
  readonly getStats: Effect.Effect<Readonly<Record<string, unknown>>>
  /** Called once a connection is relaying; absent = nothing to call (saves a fiber per connection). */
  readonly onConnect?: ((resourceId: string, info: ConnectionInfo) => Effect.Effect<void>) | undefined
  /** Static resolvers only: swap the table (hot reload of the config's `routes`). */
  readonly replaceRoutes?: ((routes: Readonly<Record<string, StaticRoute>>) => void) | undefined
  /** Called once a proxied connection has closed, with its byte counts. */
  readonly onDisconnect?: ((info: DisconnectInfo) => Effect.Effect<void>) | undefined
}

/** What a plain-object resolver returns: the endpoint as "host:port" ("[v6]:port"). */
export interface AsyncRoute {
  readonly endpoint: string
  readonly metadata?: Readonly<Record<string, unknown>> | undefined
  readonly timeout?: number | undefined
}

/**
 * A resolver written without Effect: async functions. `resolve` returns null/undefined for NOT_FOUND, or throws
 * a `ResolveError` (or any object with a `code` among the ResolveCodes); any other throw is INTERNAL.
 */
export interface AsyncResolver {
  resolve(
    resourceId: string,
    info?: ConnectionInfo
  ): Promise<AsyncRoute | null | undefined> | AsyncRoute | null | undefined
  track?(resourceId: string): Promise<void> | void
  wake?(resourceId: string): Promise<void> | void
  purge?(resourceId: string): Promise<void> | void
  getStats?(): Promise<Record<string, unknown>> | Record<string, unknown>
  onConnect?(resourceId: string, info: ConnectionInfo): Promise<void> | void
  onDisconnect?(info: DisconnectInfo): Promise<void> | void
}

export interface StaticRoute {
  readonly endpoint: string
  readonly metadata?: Readonly<Record<string, unknown>> | undefined
  readonly timeout?: number | undefined
}

const toRoute = (resourceId: string, r: AsyncRoute): Route | ResolveError => {
  const endpoint: Endpoint | string = typeof r?.endpoint === "string" ? parseEndpoint(r.endpoint) : "no endpoint"
  if (typeof endpoint === "string") {
    return new ResolveError({ code: "INTERNAL", message: `resolver answered ${resourceId} with a bad ${endpoint}` })
  }
  return { resourceId, endpoint, metadata: r.metadata ?? {}, timeout: r.timeout }
}

/**
 * What a resolver's failure means, however it was written: a ResolveError (or any object with a `code` among the
 * ResolveCodes) keeps its code; anything else (a throw, a defect, another error type) is INTERNAL, its text kept for
 * the log line only (see listeners/refusal.ts).
 */
export const asResolveError = (resourceId: string, e: unknown): ResolveError => {
  if (e instanceof ResolveError && resolveCodes.includes(e.code)) return e
  const o = e as { code?: unknown; message?: unknown; retryAfter?: unknown } | null
  if (o !== null && typeof o === "object" && resolveCodes.includes(o.code as ResolveCode)) {
    return new ResolveError({
      code: o.code as ResolveCode,
      message: typeof o.message === "string" ? o.message : `${o.code} for ${resourceId}`,
      retryAfter: typeof o.retryAfter === "number" ? o.retryAfter : undefined
    })
  }
  return new ResolveError({
    code: "INTERNAL",
    message: `resolver failed for ${resourceId}: ${String((e as Error)?.message ?? e)}`,
    cause: e
  })
}

/** Static table lookup: exact id first, then the most specific wildcard ("*.b.example.com" before "*.example.com"). */
export const lookupStatic = <A>(table: ReadonlyMap<string, A>, resourceId: string): A | undefined => {
  const id = resourceId.toLowerCase()
  const exact = table.get(id)
  if (exact !== undefined) return exact
  for (let dot = id.indexOf("."); dot >= 0; dot = id.indexOf(".", dot + 1)) {
    const hit = table.get(`*${id.slice(dot)}`)
    if (hit !== undefined) return hit
  }
  return undefined
}

const ignore = (_: unknown) => Effect.void

export class Resolver extends Context.Service<Resolver, ResolverShape>()("polyproxy/Resolver") {
  /** The embedded default: a map from the config file's `routes`. Endpoints are parsed once, here. */
  static readonly makeStatic = (routes: Readonly<Record<string, StaticRoute>>): ResolverShape => {
    const build = (from: Readonly<Record<string, StaticRoute>>) => {
      const next = new Map<string, Route>()
      for (const [id, r] of Object.entries(from)) {
        const route = toRoute(id.toLowerCase(), r)
        if (route instanceof ResolveError) throw new Error(route.message)
        next.set(id.toLowerCase(), route)
      }
      return next
    }
    let table = build(routes)
    let resolves = 0
    let misses = 0
    return {
      resolve: (resourceId) =>
        Effect.suspend(() => {
          resolves++
          const hit = lookupStatic(table, resourceId)
          if (hit !== undefined) return Effect.succeed(hit.resourceId === resourceId ? hit : { ...hit, resourceId })
          misses++
          return Effect.fail(new ResolveError({ code: "NOT_FOUND", message: `no route for "${resourceId}"` }))
        }),
      track: ignore,
      purge: ignore,
      getStats: Effect.sync(() => ({ kind: "static", routes: table.size, resolves, misses })),
      // Built first, then swapped: a bad entry leaves the old table in place.
      replaceRoutes: (next) => {
        table = build(next)
      }
    }
  }

  static readonly layerStatic = (routes: Readonly<Record<string, StaticRoute>>) =>
    Layer.sync(Resolver, () => Resolver.makeStatic(routes))

  /** Adapts a plain object of async functions, for users who do not write Effect. */
  static readonly fromAsync = (impl: AsyncResolver): ResolverShape => {
    const call = <A>(f: () => Promise<A> | A) => Effect.tryPromise({ try: async () => f(), catch: (e) => e })
    const hook = <A>(f: () => Promise<A> | A) => Effect.ignore(call(f))
    return {
      resolve: (resourceId, info) =>
        call(() => impl.resolve(resourceId, info)).pipe(
          Effect.mapError((e) => asResolveError(resourceId, e)),
          Effect.flatMap((r) => {
            if (r === null || r === undefined) {
              return Effect.fail(new ResolveError({ code: "NOT_FOUND", message: `no route for "${resourceId}"` }))
            }
            const route = toRoute(resourceId, r)
            return route instanceof ResolveError ? Effect.fail(route) : Effect.succeed(route)
          })
        ),
      track: (id) => (impl.track ? hook(() => impl.track!(id)) : Effect.void),
      wake: impl.wake ? (id) => hook(() => impl.wake!(id)) : undefined,
      purge: (id) => (impl.purge ? hook(() => impl.purge!(id)) : Effect.void),
      getStats: impl.getStats
        ? call(() => impl.getStats!()).pipe(Effect.catch((e) => Effect.succeed({ error: String(e) })))
        : Effect.succeed({ kind: "async" }),
      onConnect: impl.onConnect ? (id, info) => hook(() => impl.onConnect!(id, info)) : undefined,
      onDisconnect: impl.onDisconnect ? (info) => hook(() => impl.onDisconnect!(info)) : undefined
    }
  }

  static readonly layerAsync = (impl: AsyncResolver) => Layer.sync(Resolver, () => Resolver.fromAsync(impl))

  /** For tests: a fixed table plus a log of every call. */
  static readonly layerTest = (routes: Readonly<Record<string, string>>) =>
    Resolver.layerStatic(Object.fromEntries(Object.entries(routes).map(([k, endpoint]) => [k, { endpoint }])))
}
