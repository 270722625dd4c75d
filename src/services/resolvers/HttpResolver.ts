// Asks the operator's own route service: GET {url}?id=<resourceId>, the HTTP status carrying the answer's kind.
// Retries only what a retry can fix (network errors, 5xx) and stops asking for a while once the service keeps failing,
// so a dead route service costs each client one fast UNAVAILABLE instead of a pile of hung lookups.
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { parseEndpoint } from "../../domain/Endpoint.ts"
import { ResolveError } from "../../domain/ResolveError.ts"
import type { ConnectionInfo, Route } from "../../domain/Route.ts"
import { Resolver, type ResolverShape } from "../Resolver.ts"

export interface HttpResolverOptions {
  /** The lookup endpoint, http: or https:; `id` (and `protocol`, `client`) are added to its query. */
  readonly url: string
  /** Sent as `Authorization: Bearer <token>`. */
  readonly token?: string | undefined
  /** Seconds one request may take (headers and body). */
  readonly timeout?: number | undefined
  /** Extra attempts after a network error or a 5xx. */
  readonly retries?: number | undefined
  /** Seconds before the first retry; doubles on each further one. */
  readonly retryDelay?: number | undefined
  /** Consecutive failed lookups that open the breaker; 0 = no breaker. */
  readonly failureThreshold?: number | undefined
  /** Seconds the open breaker fails lookups at once before letting one through again. */
  readonly cooldown?: number | undefined
  /** When set, `wake(id)` sends `POST {wakeUrl}?id=<resourceId>`. */
  readonly wakeUrl?: string | undefined
}

export const httpResolverDefaults = {
  timeout: 2,
  retries: 2,
  retryDelay: 0.05,
  failureThreshold: 5,
  cooldown: 5
} as const

/** What one lookup came to; `unhealthy` outcomes count towards the breaker. */
type Outcome = { readonly route: Route } | { readonly error: ResolveError; readonly unhealthy: boolean }

/** Retry-After is seconds or an HTTP date. */
export const parseRetryAfter = (header: string | null, now = Date.now()): number | undefined => {
  if (header === null) return undefined
  const text = header.trim()
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text)
  const date = Date.parse(text)
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - now) / 1000))
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)

/** The URL without credentials or query, for messages and stats. */
const redact = (url: string): string => {
  try {
    const u = new URL(url)
    return `${u.protocol}//${u.host}${u.pathname}`
  } catch {
    return "<unparsable url>"
  }
}

/** Maps a 200 body to a Route, or INTERNAL naming what is wrong with it. */
export const parseAnswer = (resourceId: string, body: string): Route | ResolveError => {
  const bad = (why: string) =>
    new ResolveError({ code: "INTERNAL", message: `route service answered 200 for "${resourceId}" with ${why}` })
  let json: unknown
  try {
    json = JSON.parse(body)
  } catch {
    return bad("a body that is not JSON")
  }
  if (!isObject(json)) return bad("JSON that is not an object")
  if (typeof json.endpoint !== "string") return bad('no "endpoint" string')
  const endpoint = parseEndpoint(json.endpoint)
  if (typeof endpoint === "string") return bad(`a bad ${endpoint}`)
  if (json.metadata !== undefined && json.metadata !== null && !isObject(json.metadata)) {
    return bad('a "metadata" that is not an object')
  }
  if (
    json.timeout !== undefined &&
    json.timeout !== null &&
    (typeof json.timeout !== "number" || !(json.timeout >= 0))
  ) {
    return bad('a "timeout" that is not a number of seconds')
  }
  return {
    resourceId,
    endpoint,
    metadata: (json.metadata as Record<string, unknown> | null | undefined) ?? {},
    timeout: (json.timeout as number | null | undefined) ?? undefined
  }
}

/** The message of an error body (`{ "message": … }`), when the service gave one. */
const messageOf = (body: string): string | undefined => {
  try {
    const json: unknown = JSON.parse(body)
    return isObject(json) && typeof json.message === "string" ? json.message : undefined
  } catch {
    return undefined
  }
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms)
    function done() {
      clearTimeout(timer)
      signal.removeEventListener("abort", done)
      resolve()
    }
    signal.addEventListener("abort", done, { once: true })
  })

export const makeHttpResolver = (options: HttpResolverOptions): ResolverShape => {
  const base = new URL(options.url)
  if (base.protocol !== "http:" && base.protocol !== "https:") {
    throw new Error(`resolver url must be http: or https:, got ${base.protocol}`)
  }
  const where = redact(options.url)
  const timeoutMs = (options.timeout ?? httpResolverDefaults.timeout) * 1000
  const retries = options.retries ?? httpResolverDefaults.retries
  const retryDelayMs = (options.retryDelay ?? httpResolverDefaults.retryDelay) * 1000
  const threshold = options.failureThreshold ?? httpResolverDefaults.failureThreshold
  const cooldownMs = (options.cooldown ?? httpResolverDefaults.cooldown) * 1000
  const headers: Record<string, string> = { accept: "application/json" }
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`

  let lookups = 0
  let requests = 0
  let hits = 0
  let misses = 0
  let errors = 0
  let wakes = 0
  let consecutiveFailures = 0
  let openedAt: number | undefined
  // While half-open exactly one lookup probes the service; the others keep failing fast until it answers.
  let probing = false

  const lookupUrl = (resourceId: string, info?: ConnectionInfo) => {
    const u = new URL(base)
    u.searchParams.set("id", resourceId)
    if (info?.protocol) u.searchParams.set("protocol", info.protocol)
    if (info?.remoteAddress) u.searchParams.set("client", info.remoteAddress)
    return u
  }

  /** One lookup, retries included. Never rejects except when `signal` (the fiber's interruption) aborts. */
  const lookup = async (
    resourceId: string,
    info: ConnectionInfo | undefined,
    signal: AbortSignal
  ): Promise<Outcome> => {
    const url = lookupUrl(resourceId, info)
    for (let attempt = 0; ; attempt++) {
      const deadline = AbortSignal.timeout(timeoutMs)
      let status: number
      let body: string
      let retryAfter: number | undefined
      try {
        requests++
        const res = await fetch(url, { headers, signal: AbortSignal.any([signal, deadline]) })
        status = res.status
        retryAfter = parseRetryAfter(res.headers.get("retry-after"))
        body = await res.text()
      } catch (e) {
        if (signal.aborted) throw e
        if (deadline.aborted) {
          return {
            error: new ResolveError({
              code: "TIMEOUT",
              message: `route service ${where} did not answer for "${resourceId}" within ${timeoutMs / 1000}s`
            }),
            unhealthy: true
          }
        }
        const cause = (e as Error & { cause?: Error }).cause?.message ?? (e as Error).message
        if (attempt < retries) {
          await sleep(retryDelayMs * 2 ** attempt, signal)
          continue
        }
        return {
          error: new ResolveError({
            code: "UNAVAILABLE",
            message: `route service ${where} is unreachable (${cause}) while resolving "${resourceId}"`
          }),
          unhealthy: true
        }
      }
      // 503 with Retry-After is the service's considered answer ("cold, come back"), not a failure to retry.
      const cold = status === 503 && retryAfter !== undefined
      if (status >= 500 && !cold && attempt < retries) {
        await sleep(retryDelayMs * 2 ** attempt, signal)
        continue
      }
      const said = messageOf(body)
      switch (status) {
        case 200: {
          const route = parseAnswer(resourceId, body)
          return route instanceof ResolveError ? { error: route, unhealthy: true } : { route }
        }
        case 404:
          return {
            error: new ResolveError({ code: "NOT_FOUND", message: said ?? `no route for "${resourceId}"` }),
            unhealthy: false
          }
        case 403:
          return {
            error: new ResolveError({ code: "FORBIDDEN", message: said ?? `access to "${resourceId}" is forbidden` }),
            unhealthy: false
          }
        case 503:
          return {
            error: new ResolveError({
              code: "UNAVAILABLE",
              message: said ?? (cold ? `${resourceId} is starting` : `route service ${where} answered 503`),
              retryAfter: retryAfter ?? 1
            }),
            unhealthy: !cold
          }
        default:
          return {
            error: new ResolveError({
              code: "INTERNAL",
              message: `route service ${where} answered ${status} for "${resourceId}"${said ? `: ${said}` : ""}`
            }),
            unhealthy: status >= 500
          }
      }
    }
  }

  /** Fails fast while the breaker is open; otherwise admits the lookup (as the probe when half-open). */
  const admit = (): ResolveError | "closed" | "probe" => {
    if (openedAt === undefined) return "closed"
    const left = openedAt + cooldownMs - Date.now()
    if (left <= 0 && !probing) {
      probing = true
      return "probe"
    }
    return new ResolveError({
      code: "UNAVAILABLE",
      // No retryAfter: that would mean "the backend is cold" and hold the client in the cold-start queue.
      message: `route service ${where} failed ${consecutiveFailures} lookups in a row; not asking it for ${Math.max(1, Math.ceil(left / 1000))}s`
    })
  }

  const settle = (outcome: Outcome) => {
    if ("route" in outcome || !outcome.unhealthy) {
      consecutiveFailures = 0
      openedAt = undefined
    } else {
      consecutiveFailures++
      if (openedAt !== undefined || (threshold > 0 && consecutiveFailures >= threshold)) openedAt = Date.now()
    }
    // hits: the service knew the id (a route, FORBIDDEN, cold); errors: it failed or answered what cannot be read.
    if ("route" in outcome) hits++
    else if (outcome.error.code === "NOT_FOUND") misses++
    else if (outcome.error.code === "FORBIDDEN" || (outcome.error.code === "UNAVAILABLE" && !outcome.unhealthy)) hits++
    else errors++
  }

  const resolve = (resourceId: string, info?: ConnectionInfo): Effect.Effect<Route, ResolveError> =>
    Effect.suspend(() => {
      lookups++
      const gate = admit()
      if (gate instanceof ResolveError) {
        errors++
        return Effect.fail(gate)
      }
      return Effect.tryPromise({
        try: (signal) => lookup(resourceId, info, signal),
        catch: (e) =>
          new ResolveError({
            code: "INTERNAL",
            message: `route service lookup failed: ${String((e as Error)?.message ?? e)}`
          })
      }).pipe(
        Effect.flatMap((outcome) => {
          settle(outcome)
          return "route" in outcome ? Effect.succeed(outcome.route) : Effect.fail(outcome.error)
        }),
        // After settle, so the breaker state is final before another lookup may become the probe.
        Effect.ensuring(
          Effect.sync(() => {
            if (gate === "probe") probing = false
          })
        )
      )
    })

  const wakeUrl = options.wakeUrl
  const wake =
    wakeUrl === undefined
      ? undefined
      : (resourceId: string): Effect.Effect<void> =>
          Effect.ignore(
            Effect.tryPromise({
              try: async (signal) => {
                const u = new URL(wakeUrl)
                u.searchParams.set("id", resourceId)
                wakes++
                const res = await fetch(u, {
                  method: "POST",
                  headers,
                  signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)])
                })
                // Drained so the keep-alive socket is reused; the answer itself changes nothing: readiness is polled.
                await res.arrayBuffer()
              },
              catch: (e) => e
            })
          )

  return {
    resolve,
    track: () => Effect.void,
    wake,
    purge: () => Effect.void,
    getStats: Effect.sync(() => ({
      kind: "http",
      url: where,
      lookups,
      requests,
      hits,
      misses,
      errors,
      wakes,
      breaker: openedAt === undefined ? "closed" : openedAt + cooldownMs > Date.now() ? "open" : "half-open",
      consecutiveFailures
    }))
  }
}

export const layer = (options: HttpResolverOptions): Layer.Layer<Resolver, Error> =>
  Layer.effect(
    Resolver,
    Effect.try({
      try: () => makeHttpResolver(options),
      catch: (e) => new Error(`http resolver: ${(e as Error).message}`)
    })
  )
