// Routes kept in a Redis hash that another system manages: field = resource id, value = "host:port" or JSON.
// No subscription: the RoutingCache in front asks again once its TTL passes, so changes are seen within cache.ttl.
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Redis } from "ioredis"
import { parseEndpoint } from "../../domain/Endpoint.ts"
import { ResolveError } from "../../domain/ResolveError.ts"
import type { Route } from "../../domain/Route.ts"
import { lookupStatic, Resolver, type ResolverShape } from "../Resolver.ts"

export interface RedisResolverOptions {
  /** redis://[:password@]host:port[/db] or rediss://… (TLS). */
  readonly url: string
  /** The hash holding the routes. */
  readonly key?: string | undefined
  /** Seconds to establish a connection. */
  readonly connectTimeout?: number | undefined
  /** Seconds one HMGET may take before the lookup fails with UNAVAILABLE. */
  readonly commandTimeout?: number | undefined
}

export const defaultKey = "polyproxy:routes"

export interface RedisResolverShape extends ResolverShape {
  readonly client: Redis
  /** Resolves once the first connection is ready, or after connectTimeout, whichever comes first; never rejects. */
  readonly ready: Promise<void>
  /** QUIT, falling back to dropping the socket when Redis does not answer. */
  readonly close: Effect.Effect<void>
}

/** The hash fields a lookup for `id` may hit: the id itself, then each wildcard from most to least specific. */
export const candidateFields = (id: string): Array<string> => {
  const fields = [id]
  for (let dot = id.indexOf("."); dot >= 0; dot = id.indexOf(".", dot + 1)) fields.push(`*${id.slice(dot)}`)
  return fields
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)

/** Parses one hash value into a Route or the ResolveError it stands for. `field` is the hash field that matched. */
export const parseRouteValue = (resourceId: string, field: string, value: string): Route | ResolveError => {
  const bad = (why: string) =>
    new ResolveError({ code: "INTERNAL", message: `redis route "${field}" for "${resourceId}": ${why}` })
  const text = value.trim()
  if (!text.startsWith("{")) {
    const endpoint = parseEndpoint(text)
    return typeof endpoint === "string" ? bad(endpoint) : { resourceId, endpoint, metadata: {} }
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return bad('value is neither "host:port" nor valid JSON')
  }
  if (!isObject(json)) return bad("JSON value must be an object")
  const message = typeof json.message === "string" ? json.message : undefined
  switch (json.status) {
    case undefined:
    case "active":
    case "ready":
      break
    case "cold": {
      const retryAfter = json.retryAfter ?? defaultColdRetryAfter
      if (typeof retryAfter !== "number" || !Number.isFinite(retryAfter) || retryAfter < 0) {
        return bad(`retryAfter must be a number of seconds, got ${JSON.stringify(json.retryAfter)}`)
      }
      return new ResolveError({
        code: "UNAVAILABLE",
        message: message ?? `${resourceId} is starting`,
        retryAfter
      })
    }
    case "suspended":
      return new ResolveError({ code: "FORBIDDEN", message: message ?? `${resourceId} is suspended` })
    default:
      return bad(`unknown status ${JSON.stringify(json.status)} (known: active, cold, suspended)`)
  }
  if (typeof json.endpoint !== "string") return bad('"endpoint" must be a "host:port" string')
  const endpoint = parseEndpoint(json.endpoint)
  if (typeof endpoint === "string") return bad(endpoint)
  if (json.metadata !== undefined && !isObject(json.metadata)) return bad('"metadata" must be an object')
  if (json.timeout !== undefined && (typeof json.timeout !== "number" || !(json.timeout >= 0))) {
    return bad('"timeout" must be a number of seconds')
  }
  return {
    resourceId,
    endpoint,
    metadata: (json.metadata as Record<string, unknown> | undefined) ?? {},
    timeout: json.timeout as number | undefined
  }
}

// A cold entry without its own estimate: the ColdStart waiter polls anyway, this only shapes what clients are told.
const defaultColdRetryAfter = 5

/** The URL without its password, for messages and stats. */
export const redactUrl = (url: string): string => {
  try {
    const u = new URL(url)
    return `${u.protocol}//${u.host}${u.pathname === "/" ? "" : u.pathname}`
  } catch {
    return "<unparsable redis url>"
  }
}

// Capped so a long outage costs one connect attempt every 2 s, and never null: ioredis gives up for good on null.
const reconnectDelay = (times: number): number => Math.min(50 * 2 ** Math.min(times, 6), 2_000)

export const makeRedisResolver = (options: RedisResolverOptions): RedisResolverShape => {
  const key = options.key ?? defaultKey
  const where = redactUrl(options.url)
  const connectTimeoutMs = Math.round((options.connectTimeout ?? 2) * 1000)
  const client = new Redis(options.url, {
    // Fail at once while disconnected instead of queueing: the proxy then answers from its cache or says UNAVAILABLE
    // rather than holding the client until the resolve timeout.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    retryStrategy: reconnectDelay,
    lazyConnect: false,
    connectTimeout: connectTimeoutMs,
    commandTimeout: Math.round((options.commandTimeout ?? 1) * 1000)
  })
  let lastError: string | undefined
  // Without a listener ioredis prints every connection error itself; the resolver reports through getStats instead.
  client.on("error", (e: Error) => {
    lastError = e.message
  })
  client.on("ready", () => {
    lastError = undefined
  })
  const ready = new Promise<void>((resolve) => {
    if (client.status === "ready") return resolve()
    const timer = setTimeout(resolve, connectTimeoutMs)
    timer.unref()
    client.once("ready", () => {
      clearTimeout(timer)
      resolve()
    })
  })

  let lookups = 0
  let hits = 0
  let misses = 0
  let errors = 0

  const failure = (resourceId: string, e: unknown): ResolveError => {
    errors++
    const text = String((e as Error)?.message ?? e)
    // A ReplyError is Redis answering (WRONGTYPE, NOPERM...): a configuration problem, not an outage.
    if ((e as Error)?.name === "ReplyError") {
      return new ResolveError({ code: "INTERNAL", message: `redis ${where} refused HMGET ${key}: ${text}` })
    }
    return new ResolveError({
      code: "UNAVAILABLE",
      message: `route store redis ${where} is unreachable (${text}) while resolving "${resourceId}"`
    })
  }

  const resolve = (resourceId: string): Effect.Effect<Route, ResolveError> =>
    Effect.suspend(() => {
      lookups++
      const id = resourceId.toLowerCase()
      const fields = candidateFields(id)
      return Effect.tryPromise({
        try: () => client.hmget(key, ...fields),
        catch: (e) => failure(resourceId, e)
      }).pipe(
        Effect.flatMap((values) => {
          const found = new Map<string, string>()
          for (let i = 0; i < fields.length; i++) {
            const v = values[i]
            if (v !== null && v !== undefined) found.set(fields[i]!, v)
          }
          const hit = lookupStatic(found, id)
          if (hit === undefined) {
            misses++
            return Effect.fail(new ResolveError({ code: "NOT_FOUND", message: `no route for "${resourceId}"` }))
          }
          const field = fields.find((f) => found.get(f) === hit) ?? id
          const route = parseRouteValue(resourceId, field, hit)
          // A cold or suspended entry is still an answer; only an unreadable value is the store's fault.
          if (route instanceof ResolveError && route.code === "INTERNAL") errors++
          else hits++
          return route instanceof ResolveError ? Effect.fail(route) : Effect.succeed(route)
        })
      )
    })

  const close = Effect.promise(async () => {
    if (client.status === "end") return
    let timer: NodeJS.Timeout | undefined
    const gaveUp = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, 1_000)
    })
    // quit() waits for Redis' OK; when Redis is down that never comes, so bound it and drop the socket anyway.
    await Promise.race([
      client.quit().then(
        () => undefined,
        () => undefined
      ),
      gaveUp
    ])
    clearTimeout(timer)
    client.disconnect()
  })

  return {
    client,
    ready,
    close,
    resolve,
    track: () => Effect.void,
    purge: () => Effect.void,
    getStats: Effect.sync(() => ({
      kind: "redis",
      url: where,
      key,
      redis: client.status === "ready" ? "up" : "down",
      lookups,
      hits,
      misses,
      errors,
      ...(lastError === undefined ? {} : { lastError })
    }))
  }
}

/**
 * The Redis resolver as a layer: the client lives as long as the layer's scope. Building it waits for the first
 * connection at most connectTimeout and never fails, so the proxy starts (and serves UNAVAILABLE) while Redis is down.
 */
export const layer = (options: RedisResolverOptions): Layer.Layer<Resolver> =>
  Layer.effect(
    Resolver,
    Effect.acquireRelease(
      Effect.suspend(() => {
        const resolver = makeRedisResolver(options)
        return Effect.as(
          Effect.promise(() => resolver.ready),
          resolver
        )
      }),
      (resolver) => resolver.close
    )
  )
