import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer } from "effect"
import { TestClock } from "effect/testing"
import type { ProxyError } from "../../src/domain/ProxyError.ts"
import { ResolveError } from "../../src/domain/ResolveError.ts"
import { Metrics } from "../../src/services/Metrics.ts"
import { type AsyncResolver, Resolver } from "../../src/services/Resolver.ts"
import { RoutingCache } from "../../src/services/RoutingCache.ts"
import { SharedCache } from "../../src/services/SharedCache.ts"
import { SsrfGuard } from "../../src/services/SsrfGuard.ts"

const options = { ttl: 60, negativeTtl: 5, maxEntries: 3, resolveTimeout: 2 }

/** A resolver that counts calls and answers from a mutable table, optionally slowly. */
const counting = (table: Record<string, string>, delayMs = 0) => {
  const calls: Array<string> = []
  const impl: AsyncResolver = {
    resolve: async (id) => {
      calls.push(id)
      if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs))
      const endpoint = table[id]
      if (endpoint === "forbidden") throw new ResolveError({ code: "FORBIDDEN", message: "tenant suspended" })
      if (endpoint === "cold") throw { code: "UNAVAILABLE", message: "waking up", retryAfter: 3 }
      if (endpoint === "boom") throw new Error("database of routes is down")
      if (endpoint === "hang") return new Promise(() => {})
      return endpoint === undefined ? null : { endpoint, metadata: { id } }
    }
  }
  return { calls, impl }
}

const layer = (impl: AsyncResolver, ssrf: Layer.Layer<SsrfGuard> = SsrfGuard.layerTest, o = options) =>
  RoutingCache.layer(o).pipe(
    Layer.provide(Layer.mergeAll(Resolver.layerAsync(impl), ssrf, Metrics.layerTest, SharedCache.layerNone))
  )

const failureOf = (exit: Exit.Exit<unknown, ProxyError>) => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure")
  const reason = exit.cause.reasons[0]
  if (reason?._tag !== "Fail") throw new Error(`expected a Fail, got ${reason?._tag}`)
  return reason.error
}

describe("RoutingCache", () => {
  it.live("100 concurrent connections for one cold key make one resolver call", () => {
    const { calls, impl } = counting({ appdb: "127.0.0.1:5432" }, 50)
    return Effect.gen(function* () {
      const cache = yield* RoutingCache
      const results = yield* Effect.all(
        Array.from({ length: 100 }, () => cache.get("appdb")),
        { concurrency: "unbounded" }
      )
      expect(calls).toEqual(["appdb"])
      expect(new Set(results.map((r) => `${r.target.ip}:${r.target.port}`))).toEqual(new Set(["127.0.0.1:5432"]))
      expect(results[0]?.route.metadata).toEqual({ id: "appdb" })
      expect((yield* cache.stats).misses).toBeGreaterThanOrEqual(1)
    }).pipe(Effect.provide(layer(impl)))
  })

  it.effect("reuses an answer for ttl seconds, then asks again", () => {
    const { calls, impl } = counting({ a: "127.0.0.1:1" })
    return Effect.gen(function* () {
      const cache = yield* RoutingCache
      yield* cache.get("a")
      yield* TestClock.adjust("59 seconds")
      yield* cache.get("a")
      expect(calls.length).toBe(1)
      expect((yield* cache.stats).hits).toBe(1)
      yield* TestClock.adjust("2 seconds")
      yield* cache.get("a")
      expect(calls.length).toBe(2)
    }).pipe(Effect.provide(layer(impl)))
  })

  it.effect("keeps NOT_FOUND for negativeTtl only, and a fixed route shows up after it", () => {
    const table: Record<string, string> = {}
    const { calls, impl } = counting(table)
    return Effect.gen(function* () {
      const cache = yield* RoutingCache
      expect(failureOf(yield* Effect.exit(cache.get("new"))).reason).toBe("NOT_FOUND")
      table.new = "127.0.0.1:2"
      expect(failureOf(yield* Effect.exit(cache.get("new"))).reason).toBe("NOT_FOUND")
      expect(calls.length).toBe(1)
      yield* TestClock.adjust("6 seconds")
      expect((yield* cache.get("new")).route.endpoint.port).toBe(2)
      expect(calls.length).toBe(2)
    }).pipe(Effect.provide(layer(impl)))
  })

  it.effect("maps every resolver failure to its reason, with retry-after for cold backends", () => {
    const { impl } = counting({ f: "forbidden", c: "cold", b: "boom", bad: "not-an-endpoint" })
    return Effect.gen(function* () {
      const cache = yield* RoutingCache
      const f = failureOf(yield* Effect.exit(cache.get("f")))
      expect([f.reason, f.source, f.message]).toEqual(["FORBIDDEN", "resolver", "tenant suspended"])
      const c = failureOf(yield* Effect.exit(cache.get("c")))
      expect([c.reason, c.retryAfter, c.retryable]).toEqual(["UNAVAILABLE", 3, true])
      const b = failureOf(yield* Effect.exit(cache.get("b")))
      expect([b.reason, b.message]).toEqual(["INTERNAL", "resolver failed for b: database of routes is down"])
      const bad = failureOf(yield* Effect.exit(cache.get("bad")))
      expect(bad.reason).toBe("INTERNAL")
      expect(bad.message).toContain("not-an-endpoint")
    }).pipe(Effect.provide(layer(impl)))
  })

  it.effect("fails with TIMEOUT when the resolver does not answer in time", () => {
    const { impl } = counting({ h: "hang" })
    return Effect.gen(function* () {
      const cache = yield* RoutingCache
      const fiber = yield* Effect.forkChild(Effect.exit(cache.get("h")))
      yield* TestClock.adjust("3 seconds")
      const e = failureOf(yield* Fiber.join(fiber))
      expect(e.reason).toBe("TIMEOUT")
      expect(e.message).toContain("within 2s")
    }).pipe(Effect.provide(layer(impl)))
  })

  it.effect("vets every answer: an endpoint the SSRF guard refuses is FORBIDDEN", () => {
    const { impl } = counting({ meta: "169.254.169.254:80" })
    return Effect.gen(function* () {
      const cache = yield* RoutingCache
      const e = failureOf(yield* Effect.exit(cache.get("meta")))
      expect(e.reason).toBe("FORBIDDEN")
      expect(e.message).toContain("169.254.169.254")
    }).pipe(Effect.provide(layer(impl, SsrfGuard.layer({ allow: ["127.0.0.0/8"] }) as Layer.Layer<SsrfGuard>)))
  })

  it.effect("purge drops the entry so the next connection asks the resolver", () => {
    const { calls, impl } = counting({ a: "127.0.0.1:1" })
    return Effect.gen(function* () {
      const cache = yield* RoutingCache
      yield* cache.get("a")
      yield* cache.purge("a")
      yield* cache.get("a")
      expect(calls).toEqual(["a", "a"])
    }).pipe(Effect.provide(layer(impl)))
  })

  it.effect("holds at most maxEntries keys", () => {
    const { impl } = counting({
      a: "127.0.0.1:1",
      b: "127.0.0.1:2",
      c: "127.0.0.1:3",
      d: "127.0.0.1:4",
      e: "127.0.0.1:5"
    })
    return Effect.gen(function* () {
      const cache = yield* RoutingCache
      for (const k of ["a", "b", "c", "d", "e"]) yield* cache.get(k)
      expect((yield* cache.stats).size).toBeLessThanOrEqual(3)
    }).pipe(Effect.provide(layer(impl)))
  })

  it.live("peekNow answers at once only what get would, counting nothing until hit", () => {
    const { calls, impl } = counting({ a: "127.0.0.1:1" })
    return Effect.gen(function* () {
      const cache = yield* RoutingCache
      expect(cache.peekNow("a")).toBeUndefined()
      yield* cache.get("a")
      const peeked = cache.peekNow("a")
      expect(peeked?.target).toMatchObject({ ip: "127.0.0.1", port: 1 })
      expect(peeked).toBe(yield* cache.get("a"))
      expect(yield* cache.stats).toMatchObject({ hits: 1, misses: 1 })
      cache.hit("a")
      expect(yield* cache.stats).toMatchObject({ hits: 2, misses: 1 })
      // A failed answer is get's to give, and so is a purged one.
      yield* Effect.exit(cache.get("gone"))
      expect(cache.peekNow("gone")).toBeUndefined()
      yield* cache.purge("a")
      expect(cache.peekNow("a")).toBeUndefined()
      expect(calls).toEqual(["a", "gone"])
    }).pipe(Effect.provide(layer(impl)))
  })

  it.live("peekNow forgets an answer once its ttl has passed", () => {
    const { impl } = counting({ a: "127.0.0.1:1" })
    return Effect.gen(function* () {
      const cache = yield* RoutingCache
      yield* cache.get("a")
      expect(cache.peekNow("a")).toBeDefined()
      yield* Effect.sleep("150 millis")
      expect(cache.peekNow("a")).toBeUndefined()
    }).pipe(Effect.provide(layer(impl, SsrfGuard.layerTest, { ...options, ttl: 0.1 })))
  })

  it.effect("evicts the least recently used key: one used by get or by hit stays", () => {
    const { calls, impl } = counting({ a: "127.0.0.1:1", b: "127.0.0.1:2", c: "127.0.0.1:3", d: "127.0.0.1:4" })
    return Effect.gen(function* () {
      const cache = yield* RoutingCache
      for (const k of ["a", "b", "c"]) yield* cache.get(k)
      yield* cache.get("a")
      cache.hit("b")
      yield* cache.get("d")
      expect((yield* cache.stats).size).toBe(3)
      yield* cache.get("a")
      yield* cache.get("b")
      expect(calls).toEqual(["a", "b", "c", "d"])
      yield* cache.get("c")
      expect(calls).toEqual(["a", "b", "c", "d", "c"])
    }).pipe(Effect.provide(layer(impl)))
  })

  it.effect("keeps a transient failure one second only", () => {
    const table: Record<string, string> = { c: "cold" }
    const { calls, impl } = counting(table)
    return Effect.gen(function* () {
      const cache = yield* RoutingCache
      expect(failureOf(yield* Effect.exit(cache.get("c"))).reason).toBe("UNAVAILABLE")
      table.c = "127.0.0.1:3"
      expect(failureOf(yield* Effect.exit(cache.get("c"))).reason).toBe("UNAVAILABLE")
      expect(calls.length).toBe(1)
      yield* TestClock.adjust("1100 millis")
      expect((yield* cache.get("c")).target.port).toBe(3)
      expect(calls.length).toBe(2)
    }).pipe(Effect.provide(layer(impl)))
  })

  it.live("a connection that gives up does not cancel the lookup the others wait for", () => {
    const { calls, impl } = counting({ a: "127.0.0.1:1" }, 50)
    return Effect.gen(function* () {
      const cache = yield* RoutingCache
      const leaving = yield* Effect.forkChild(cache.get("a"))
      const staying = yield* Effect.forkChild(cache.get("a"))
      yield* Effect.sleep("10 millis")
      yield* Fiber.interrupt(leaving)
      expect((yield* Fiber.join(staying)).target.port).toBe(1)
      expect(cache.peekNow("a")?.target.port).toBe(1)
      expect(calls).toEqual(["a"])
    }).pipe(Effect.provide(layer(impl)))
  })

  it.live("a purge while the resolver works: the waiters get its answer, the next connection asks again", () => {
    const { calls, impl } = counting({ a: "127.0.0.1:1" }, 50)
    return Effect.gen(function* () {
      const cache = yield* RoutingCache
      const waiting = yield* Effect.forkChild(cache.get("a"))
      yield* Effect.sleep("10 millis")
      yield* cache.purge("a")
      expect((yield* Fiber.join(waiting)).target.port).toBe(1)
      expect(cache.peekNow("a")).toBeUndefined()
      yield* cache.get("a")
      expect(calls).toEqual(["a", "a"])
    }).pipe(Effect.provide(layer(impl)))
  })
})

describe("Resolver", () => {
  it.effect("static routes: exact ids, then the most specific wildcard, case-insensitively", () =>
    Effect.gen(function* () {
      const r = yield* Resolver
      expect((yield* r.resolve("appdb")).endpoint).toEqual({ host: "127.0.0.1", port: 5432 })
      expect((yield* r.resolve("x.eu.example.com")).endpoint.port).toBe(2)
      expect((yield* r.resolve("X.Example.COM")).endpoint.port).toBe(1)
      expect((yield* r.resolve("x.eu.example.com")).resourceId).toBe("x.eu.example.com")
      const miss = yield* Effect.flip(r.resolve("example.com"))
      expect(miss.code).toBe("NOT_FOUND")
      expect(yield* r.getStats).toMatchObject({ kind: "static", routes: 3, misses: 1 })
    }).pipe(
      Effect.provide(
        Resolver.layerStatic({
          appdb: { endpoint: "127.0.0.1:5432" },
          "*.example.com": { endpoint: "[::1]:1" },
          "*.eu.example.com": { endpoint: "127.0.0.1:2" }
        })
      )
    )
  )

  it.effect("the async adapter calls the user's hooks and swallows their failures", () => {
    const seen: Array<string> = []
    const impl: AsyncResolver = {
      resolve: () => ({ endpoint: "127.0.0.1:1" }),
      track: (id) => void seen.push(`track ${id}`),
      onConnect: (id) => void seen.push(`connect ${id}`),
      onDisconnect: () => {
        throw new Error("hook bug")
      },
      getStats: () => ({ custom: 1 })
    }
    return Effect.gen(function* () {
      const r = yield* Resolver
      yield* r.track("a")
      yield* r.onConnect!("a", { protocol: "tcp", remoteAddress: "127.0.0.1", remotePort: 1 })
      yield* r.onDisconnect!({
        protocol: "tcp",
        remoteAddress: "127.0.0.1",
        remotePort: 1,
        resourceId: "a",
        endpoint: "127.0.0.1:1",
        bytesFromBackend: 0,
        bytesFromClient: 0,
        durationMs: 1
      })
      expect(seen).toEqual(["track a", "connect a"])
      expect(yield* r.getStats).toEqual({ custom: 1 })
      expect(r.purge).toBeDefined()
    }).pipe(Effect.provide(Resolver.layerAsync(impl)))
  })
})
