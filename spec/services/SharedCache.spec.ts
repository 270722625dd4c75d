// The routing cache shared through a real Redis by two "processes" (two independent RoutingCache instances, each with
// its own resolver and its own in-process cache).
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { ProxyError } from "../../src/domain/ProxyError.ts"
import { Metrics } from "../../src/services/Metrics.ts"
import { type AsyncResolver, Resolver } from "../../src/services/Resolver.ts"
import { type CachedRoute, RoutingCache } from "../../src/services/RoutingCache.ts"
import { SharedCache } from "../../src/services/SharedCache.ts"
import { SsrfGuard } from "../../src/services/SsrfGuard.ts"
import { type RedisServer, startRedis } from "../support/backends/index.ts"
import { eventually } from "../support/proxy.ts"

let redis: RedisServer
let n = 0
beforeAll(async () => {
  redis = await startRedis({ password: "pw" })
})
afterAll(async () => redis?.stop())

/** One proxy process: its own resolver (counting calls), its own L1, the shared Redis as L2. */
const proxyProcess = async (table: Record<string, string>, prefix: string) => {
  const calls: Array<string> = []
  const impl: AsyncResolver = {
    resolve: (id) => {
      calls.push(id)
      return table[id] ? { endpoint: table[id]! } : null
    }
  }
  const layer = Layer.provideMerge(
    RoutingCache.layer({ ttl: 60, negativeTtl: 60, maxEntries: 100, resolveTimeout: 2 }),
    Layer.mergeAll(
      Resolver.layerAsync(impl),
      SsrfGuard.layerTest,
      Metrics.layerTest,
      SharedCache.layer({ url: redis.url, prefix })
    )
  )
  const scope = Effect.runSync(Scope.make())
  const ctx = await Effect.runPromise(Layer.buildWithScope(layer, scope))
  const get = (id: string): Promise<Exit.Exit<CachedRoute, ProxyError>> =>
    Effect.runPromise(
      Effect.exit(
        Effect.provideContext(
          Effect.gen(function* () {
            return yield* (yield* RoutingCache).get(id)
          }),
          ctx
        )
      )
    )
  const purge = (id: string) =>
    Effect.runPromise(
      Effect.provideContext(
        Effect.gen(function* () {
          yield* (yield* RoutingCache).purge(id)
        }),
        ctx
      )
    )
  const claim = (id: string) =>
    Effect.runPromise(
      Effect.provideContext(
        Effect.gen(function* () {
          return yield* (yield* SharedCache).claimWake(id, 5)
        }),
        ctx
      )
    )
  const status = () =>
    Effect.runSync(
      Effect.provideContext(
        Effect.gen(function* () {
          return (yield* SharedCache).status()
        }),
        ctx
      )
    )
  await eventually(() => status() === "up", 5_000)
  return { calls, get, purge, claim, status, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

const portOf = (exit: Exit.Exit<CachedRoute, ProxyError>) =>
  Exit.isSuccess(exit) ? exit.value.target.port : exit.cause
const reasonOf = (exit: Exit.Exit<CachedRoute, ProxyError>) => {
  if (Exit.isSuccess(exit)) return "ok"
  const r = exit.cause.reasons[0]
  return r?._tag === "Fail" ? r.error.reason : "?"
}

describe("SharedCache (Redis) behind RoutingCache", () => {
  it("one process's answer serves the others, negative answers included", async () => {
    const prefix = `spec${++n}:`
    const a = await proxyProcess({ app: "127.0.0.1:7001" }, prefix)
    const b = await proxyProcess({ app: "127.0.0.1:9999" }, prefix)
    try {
      expect(portOf(await a.get("app"))).toBe(7001)
      // b never asks its own resolver: a's answer is in Redis
      expect(portOf(await b.get("app"))).toBe(7001)
      expect(b.calls).toEqual([])
      expect(reasonOf(await a.get("ghost"))).toBe("NOT_FOUND")
      expect(reasonOf(await b.get("ghost"))).toBe("NOT_FOUND")
      expect(b.calls).toEqual([])
    } finally {
      await a.close()
      await b.close()
    }
  })

  it("a purge in one process reaches every process", async () => {
    const prefix = `spec${++n}:`
    const table = { app: "127.0.0.1:7001" }
    const a = await proxyProcess(table, prefix)
    const b = await proxyProcess({ app: "127.0.0.1:7002" }, prefix)
    try {
      expect(portOf(await a.get("app"))).toBe(7001)
      expect(portOf(await b.get("app"))).toBe(7001)
      await a.purge("app")
      // b dropped its own copy (pub/sub) and, Redis being empty, asks its resolver
      let seen: unknown
      for (let i = 0; i < 50 && seen !== 7002; i++) {
        seen = portOf(await b.get("app"))
        if (seen !== 7002) await new Promise((r) => setTimeout(r, 20))
      }
      expect(seen).toBe(7002)
      expect(b.calls).toEqual(["app"])
    } finally {
      await a.close()
      await b.close()
    }
  })

  it("claims a wake-up for exactly one process", async () => {
    const prefix = `spec${++n}:`
    const a = await proxyProcess({}, prefix)
    const b = await proxyProcess({}, prefix)
    try {
      const claims = await Promise.all([a.claim("db"), b.claim("db"), a.claim("db"), b.claim("db")])
      expect(claims.filter(Boolean).length).toBe(1)
    } finally {
      await a.close()
      await b.close()
    }
  })

  it("keeps serving from the resolver while Redis is down", async () => {
    const prefix = `spec${++n}:`
    const down = await startRedis()
    const table = { app: "127.0.0.1:7001", other: "127.0.0.1:7003" }
    const calls: Array<string> = []
    const layer = Layer.provideMerge(
      RoutingCache.layer({ ttl: 60, negativeTtl: 60, maxEntries: 100, resolveTimeout: 2 }),
      Layer.mergeAll(
        Resolver.layerAsync({
          resolve: (id) => {
            calls.push(id)
            return { endpoint: table[id as keyof typeof table] }
          }
        }),
        SsrfGuard.layerTest,
        Metrics.layerTest,
        SharedCache.layer({ url: down.url, prefix })
      )
    )
    const scope = Effect.runSync(Scope.make())
    const ctx = await Effect.runPromise(Layer.buildWithScope(layer, scope))
    const get = (id: string) =>
      Effect.runPromise(
        Effect.exit(
          Effect.provideContext(
            Effect.gen(function* () {
              return yield* (yield* RoutingCache).get(id)
            }),
            ctx
          )
        )
      )
    try {
      await down.stop()
      const started = Date.now()
      expect(portOf(await get("other"))).toBe(7003)
      expect(Date.now() - started).toBeLessThan(1_500)
      expect(calls).toEqual(["other"])
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
  })
})
