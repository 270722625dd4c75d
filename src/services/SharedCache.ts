// The routing cache shared by every proxy process and pod through Redis: an L2 behind each process's own cache.
// One process's resolver answer (or NOT_FOUND/FORBIDDEN) serves all of them until it expires; a purge reaches every
// process through pub/sub. Redis being down never fails a connection: lookups fall through to the Resolver.
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import type { Redis } from "ioredis"
import type { Reason } from "../domain/ProxyError.ts"
import type { Route } from "../domain/Route.ts"

/** What is stored per resource: the route, or the refusal to repeat. */
export type SharedAnswer =
  | { readonly route: Route }
  | { readonly error: { readonly reason: Reason; readonly message: string } }

export interface SharedCacheShape {
  /** undefined: not there, or Redis unavailable (then the Resolver is asked). */
  readonly get: (resourceId: string) => Effect.Effect<SharedAnswer | undefined>
  readonly set: (resourceId: string, answer: SharedAnswer, ttlSeconds: number) => Effect.Effect<void>
  /** Delete and tell every process to drop its own copy. */
  readonly purge: (resourceId: string) => Effect.Effect<void>
  /** Called with each resource another process purged. */
  readonly onPurge: (listener: (resourceId: string) => void) => void
  /** Per-process wake-up lock (cold start): true for exactly one caller cluster-wide per `ttlSeconds`. */
  readonly claimWake: (resourceId: string, ttlSeconds: number) => Effect.Effect<boolean>
  readonly status: () => "up" | "down" | "off"
}

export interface SharedCacheOptions {
  readonly url: string
  /** Key prefix; the purge channel is `${prefix}purge`. */
  readonly prefix?: string
}

const ctx = Context.empty()
const outages = Metric.counter("polyproxy_shared_cache_errors_total", {
  description: "Redis (shared routing cache) commands that failed; the proxy went on without it",
  incremental: true
})
const lookups = Metric.counter("polyproxy_shared_cache_lookups_total", {
  description: "Shared routing cache lookups by result",
  incremental: true
})
const hit = Metric.withAttributes(lookups, { result: "hit" })
const miss = Metric.withAttributes(lookups, { result: "miss" })

const none: SharedCacheShape = {
  get: () => Effect.succeed(undefined),
  set: () => Effect.void,
  purge: () => Effect.void,
  onPurge: () => {},
  claimWake: () => Effect.succeed(true),
  status: () => "off"
}

const reconnectDelay = (attempt: number) => Math.min(50 * 2 ** attempt, 2_000)

export const makeSharedCache = async (options: SharedCacheOptions) => {
  // Loaded only when configured: ioredis is not worth its memory in workers that never talk to Redis.
  const { Redis: RedisClient } = await import("ioredis")
  const prefix = options.prefix ?? "polyproxy:"
  const common = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    retryStrategy: reconnectDelay,
    commandTimeout: 500
  }
  const client: Redis = new RedisClient(options.url, common)
  // A subscribed connection can do nothing else: a second one for purges.
  const subscriber: Redis = new RedisClient(options.url, { ...common, commandTimeout: undefined })
  let up = false
  client.on("ready", () => (up = true))
  client.on("error", () => (up = false))
  client.on("end", () => (up = false))
  subscriber.on("error", () => {})
  const listeners: Array<(id: string) => void> = []
  const channel = `${prefix}purge`
  subscriber.on("ready", () => void subscriber.subscribe(channel).catch(() => {}))
  subscriber.on("message", (ch: string, id: string) => {
    if (ch === channel) for (const l of listeners) l(id)
  })
  const guarded = <A>(work: () => Promise<A>, fallback: A): Effect.Effect<A> =>
    Effect.promise(() =>
      work().catch(() => {
        outages.updateUnsafe(1, ctx)
        return fallback
      })
    )
  const key = (id: string) => `${prefix}route:${id}`
  const shape: SharedCacheShape = {
    get: (id) =>
      guarded(async () => {
        const raw = await client.get(key(id))
        ;(raw === null ? miss : hit).updateUnsafe(1, ctx)
        return raw === null ? undefined : (JSON.parse(raw) as SharedAnswer)
      }, undefined),
    set: (id, answer, ttl) =>
      ttl <= 0
        ? Effect.void
        : guarded(
            async () => void (await client.set(key(id), JSON.stringify(answer), "PX", Math.round(ttl * 1000))),
            undefined
          ),
    purge: (id) =>
      guarded(async () => {
        await client.del(key(id))
        await client.publish(channel, id)
      }, undefined),
    onPurge: (l) => void listeners.push(l),
    // Without Redis every process may wake: better a duplicate wake than none.
    claimWake: (id, ttl) =>
      guarded(
        async () =>
          (await client.set(`${prefix}wake:${id}`, String(process.pid), "PX", Math.round(ttl * 1000), "NX")) === "OK",
        true
      ),
    status: () => (up ? "up" : "down")
  }
  const close = async () => {
    await Promise.allSettled([client.quit(), subscriber.quit()])
    client.disconnect()
    subscriber.disconnect()
  }
  return { shape, close }
}

export class SharedCache extends Context.Service<SharedCache, SharedCacheShape>()("polyproxy/SharedCache") {
  static readonly layer = (options: SharedCacheOptions) =>
    Layer.effect(
      SharedCache,
      Effect.acquireRelease(
        Effect.promise(() => makeSharedCache(options)),
        ({ close }) => Effect.promise(close)
      ).pipe(Effect.map(({ shape }) => shape))
    )
  /** No Redis: every process keeps its own cache. */
  static readonly layerNone = Layer.succeed(SharedCache, none)
  /** No Redis, but a wake-up lock held elsewhere (a cluster worker asks its primary). */
  static readonly layerWakeLock = (claim: (resourceId: string, ttlSeconds: number) => Promise<boolean>) =>
    Layer.succeed(SharedCache, { ...none, claimWake: (id, ttl) => Effect.promise(() => claim(id, ttl)) })
}
