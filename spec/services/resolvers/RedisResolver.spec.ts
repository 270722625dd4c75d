// The Redis resolver against a real Redis 7 with a password: value formats, wildcards, outages, and end to end.
import * as net from "node:net"
import { Effect, Exit, Layer } from "effect"
import { Redis } from "ioredis"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import type { ProxyError } from "../../../src/domain/ProxyError.ts"
import { ResolveError } from "../../../src/domain/ResolveError.ts"
import type { Route } from "../../../src/domain/Route.ts"
import { Metrics } from "../../../src/services/Metrics.ts"
import { RoutingCache } from "../../../src/services/RoutingCache.ts"
import {
  candidateFields,
  makeRedisResolver,
  parseRouteValue,
  type RedisResolverShape,
  redactUrl,
  layer as redisLayer
} from "../../../src/services/resolvers/RedisResolver.ts"
import { SharedCache } from "../../../src/services/SharedCache.ts"
import { SsrfGuard } from "../../../src/services/SsrfGuard.ts"
import { type RedisServer, startRedis } from "../../support/backends/index.ts"
import { closedPort, roundTrip } from "../../support/net.ts"
import { startTestProxy } from "../../support/proxy.ts"

const password = "s3cret:with@odd/chars"
const key = "spec:routes"

let redis: RedisServer
let admin: Redis
const opened: Array<RedisResolverShape> = []

const open = async (url = redis.url, extra: { commandTimeout?: number } = {}) => {
  const r = makeRedisResolver({ url, key, connectTimeout: 1, ...extra })
  opened.push(r)
  await r.ready
  return r
}

const resolve = (r: RedisResolverShape, id: string) => Effect.runPromise(Effect.exit(r.resolve(id)))

const route = async (r: RedisResolverShape, id: string): Promise<Route> => {
  const exit = await resolve(r, id)
  if (Exit.isFailure(exit)) throw new Error(`expected a route for ${id}, got ${JSON.stringify(exit.cause)}`)
  return exit.value
}

const failure = async (r: RedisResolverShape, id: string): Promise<ResolveError> => {
  const exit = await resolve(r, id)
  if (Exit.isSuccess(exit)) throw new Error(`expected a failure for ${id}, got ${JSON.stringify(exit.value)}`)
  const reason = exit.cause.reasons[0]
  if (reason?._tag !== "Fail") throw new Error(`expected a Fail, got ${reason?._tag}`)
  return reason.error
}

beforeAll(async () => {
  redis = await startRedis({ password })
  admin = new Redis(redis.url)
})

afterEach(async () => {
  for (const r of opened.splice(0)) await Effect.runPromise(r.close)
})

afterAll(async () => {
  admin?.disconnect()
  await redis?.stop()
})

describe("RedisResolver: values", () => {
  beforeAll(async () => {
    await admin.del(key)
    await admin.hset(key, {
      appdb: "127.0.0.1:5432",
      v6db: "[::1]:5433",
      rich: JSON.stringify({ endpoint: "10.0.0.7:6543", metadata: { plan: "gold", wakeable: true }, timeout: 2 }),
      sleepy: JSON.stringify({ status: "cold", retryAfter: 7 }),
      "sleepy-default": JSON.stringify({ status: "cold", endpoint: "127.0.0.1:1" }),
      banned: JSON.stringify({ status: "suspended", message: "invoice overdue" }),
      "*.tenants.example.com": "127.0.0.1:7001",
      "*.eu.tenants.example.com": "127.0.0.1:7002",
      "exact.tenants.example.com": "127.0.0.1:7003",
      broken: "not an endpoint",
      "broken-json": "{ nope",
      "bad-status": JSON.stringify({ endpoint: "127.0.0.1:1", status: "asleep" })
    })
  })

  it("answers a plain host:port value", async () => {
    const r = await open()
    expect(await route(r, "appdb")).toEqual({
      resourceId: "appdb",
      endpoint: { host: "127.0.0.1", port: 5432 },
      metadata: {}
    })
    expect((await route(r, "v6db")).endpoint).toEqual({ host: "::1", port: 5433 })
  })

  it("answers a JSON value with metadata and timeout", async () => {
    const r = await open()
    expect(await route(r, "rich")).toEqual({
      resourceId: "rich",
      endpoint: { host: "10.0.0.7", port: 6543 },
      metadata: { plan: "gold", wakeable: true },
      timeout: 2
    })
  })

  it("falls back to the most specific wildcard field, the exact field first", async () => {
    const r = await open()
    expect(await route(r, "acme.tenants.example.com")).toMatchObject({
      resourceId: "acme.tenants.example.com",
      endpoint: { port: 7001 }
    })
    expect((await route(r, "acme.eu.tenants.example.com")).endpoint.port).toBe(7002)
    expect((await route(r, "exact.tenants.example.com")).endpoint.port).toBe(7003)
    // ids are case-insensitive, as in the static resolver; the route keeps the id as asked
    expect(await route(r, "ACME.Tenants.Example.com")).toMatchObject({
      resourceId: "ACME.Tenants.Example.com",
      endpoint: { port: 7001 }
    })
    expect((await failure(r, "tenants.example.com")).code).toBe("NOT_FOUND")
  })

  it("says NOT_FOUND for a missing field, and for a missing hash", async () => {
    const r = await open()
    const e = await failure(r, "nobody")
    expect(e).toBeInstanceOf(ResolveError)
    expect(e.code).toBe("NOT_FOUND")
    expect(e.message).toContain('"nobody"')
    const other = makeRedisResolver({ url: redis.url, key: "spec:no-such-hash" })
    opened.push(other)
    await other.ready
    expect((await failure(other, "appdb")).code).toBe("NOT_FOUND")
  })

  it("says UNAVAILABLE with retryAfter for a cold entry (default 5 s) and FORBIDDEN for a suspended one", async () => {
    const r = await open()
    expect(await failure(r, "sleepy")).toMatchObject({ code: "UNAVAILABLE", retryAfter: 7 })
    expect(await failure(r, "sleepy-default")).toMatchObject({ code: "UNAVAILABLE", retryAfter: 5 })
    expect(await failure(r, "banned")).toMatchObject({ code: "FORBIDDEN", message: "invoice overdue" })
  })

  it("says INTERNAL, naming the field, for a value it cannot read", async () => {
    const r = await open()
    for (const id of ["broken", "broken-json", "bad-status"]) {
      const e = await failure(r, id)
      expect(e.code).toBe("INTERNAL")
      expect(e.message).toContain(`"${id}"`)
    }
    expect((await failure(r, "bad-status")).message).toContain('"asleep"')
  })

  it("says INTERNAL when the key is not a hash (a configuration mistake, not an outage)", async () => {
    await admin.set("spec:not-a-hash", "x")
    const r = makeRedisResolver({ url: redis.url, key: "spec:not-a-hash" })
    opened.push(r)
    await r.ready
    const e = await failure(r, "appdb")
    expect(e.code).toBe("INTERNAL")
    expect(e.message).toContain("WRONGTYPE")
  })

  it("counts lookups, hits, misses and errors, and reports redis up", async () => {
    const r = await open()
    await route(r, "appdb")
    await failure(r, "nobody")
    await failure(r, "broken")
    await failure(r, "banned")
    const stats = await Effect.runPromise(r.getStats)
    // a suspended entry is an answer (hit); an unreadable one is the store's fault (error)
    expect(stats).toMatchObject({ kind: "redis", key, redis: "up", lookups: 4, hits: 2, misses: 1, errors: 1 })
    // the password never shows
    expect(JSON.stringify(stats)).not.toContain("s3cret")
  })
})

describe("RedisResolver: behind the RoutingCache", () => {
  it("sees a change in Redis once the TTL passes, or at once after purge", async () => {
    await admin.hset(key, "moving", "127.0.0.1:8001")
    const services = RoutingCache.layer({ ttl: 0.4, negativeTtl: 0.4, maxEntries: 100, resolveTimeout: 2 }).pipe(
      Layer.provide(
        Layer.mergeAll(
          redisLayer({ url: redis.url, key, connectTimeout: 1 }),
          SsrfGuard.layerTest,
          Metrics.layerTest,
          SharedCache.layerNone
        )
      )
    )
    const ports = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const cache = yield* RoutingCache
          const port = Effect.map(cache.get("moving"), (r) => r.target.port)
          const seen: Array<number> = [yield* port]
          yield* Effect.promise(() => admin.hset(key, "moving", "127.0.0.1:8002"))
          seen.push(yield* port) // still cached
          yield* Effect.sleep("500 millis")
          seen.push(yield* port) // TTL passed
          yield* Effect.promise(() => admin.hset(key, "moving", "127.0.0.1:8003"))
          yield* cache.purge("moving")
          seen.push(yield* port)
          return seen
        })
      ).pipe(Effect.provide(services))
    )
    expect(ports).toEqual([8001, 8001, 8002, 8003])
  })

  it("keeps answering fresh entries from the cache while Redis does not answer", async () => {
    await admin.hset(key, "cached", "127.0.0.1:8100")
    const services = RoutingCache.layer({ ttl: 60, negativeTtl: 5, maxEntries: 100, resolveTimeout: 2 }).pipe(
      Layer.provide(
        Layer.mergeAll(
          redisLayer({ url: redis.url, key, connectTimeout: 1, commandTimeout: 0.2 }),
          SsrfGuard.layerTest,
          Metrics.layerTest,
          SharedCache.layerNone
        )
      )
    )
    const [cached, uncached] = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const cache = yield* RoutingCache
          yield* cache.get("cached")
          yield* Effect.promise(() => admin.call("CLIENT", "PAUSE", "800", "ALL"))
          const a = yield* Effect.exit(cache.get("cached"))
          const b = yield* Effect.exit(cache.get("appdb"))
          return [a, b] as const
        })
      ).pipe(Effect.provide(services))
    )
    expect(Exit.isSuccess(cached)).toBe(true)
    expect(Exit.isFailure(uncached)).toBe(true)
    if (Exit.isFailure(uncached)) {
      const e = (uncached.cause.reasons[0] as { error: ProxyError }).error
      expect(e).toMatchObject({ reason: "UNAVAILABLE" })
    }
    await sleep(900)
  })
})

describe("RedisResolver: outages", () => {
  it("says UNAVAILABLE within the command timeout when Redis stops answering", async () => {
    await admin.hset(key, "appdb", "127.0.0.1:5432")
    const r = await open(redis.url, { commandTimeout: 0.25 })
    await route(r, "appdb")
    await admin.call("CLIENT", "PAUSE", "1500", "ALL")
    const started = Date.now()
    const e = await failure(r, "appdb")
    expect(Date.now() - started).toBeLessThan(1_000)
    expect(e).toMatchObject({ code: "UNAVAILABLE" })
    expect(e.message).toMatch(/timed out/i)
    expect(e.message).not.toContain("s3cret")
    await sleep(1_300)
    await route(r, "appdb")
  })

  it("says UNAVAILABLE at once while Redis is stopped, and answers again once it is back", async () => {
    // A TCP relay gives the restarted Redis the address the first one had, as a restart in place would.
    const first = await startRedis({ password })
    const relay = await startRelay(first.host, first.port)
    const second: { server?: RedisServer } = {}
    try {
      const seed = new Redis(first.url)
      await seed.hset(key, "appdb", "127.0.0.1:5432")
      seed.disconnect()
      const url = `redis://:${encodeURIComponent(password)}@127.0.0.1:${relay.port}`
      const r = await open(url, { commandTimeout: 0.3 })
      expect((await route(r, "appdb")).endpoint.port).toBe(5432)

      await first.stop()
      const started = Date.now()
      const e = await failure(r, "appdb")
      expect(Date.now() - started).toBeLessThan(600)
      expect(e).toMatchObject({ code: "UNAVAILABLE" })
      expect(e.message).toContain("unreachable")
      const down = Date.now() + 2_000
      while ((await Effect.runPromise(r.getStats)).redis !== "down" && Date.now() < down) await sleep(20)
      expect(await Effect.runPromise(r.getStats)).toMatchObject({ redis: "down" })
      // still fast on a later try, while ioredis keeps reconnecting in the background
      const again = Date.now()
      expect((await failure(r, "appdb")).code).toBe("UNAVAILABLE")
      expect(Date.now() - again).toBeLessThan(600)

      second.server = await startRedis({ password })
      const reseed = new Redis(second.server.url)
      await reseed.hset(key, "appdb", "127.0.0.1:6543")
      reseed.disconnect()
      relay.retarget(second.server.host, second.server.port)

      const deadline = Date.now() + 10_000
      let answer = await resolve(r, "appdb")
      while (Exit.isFailure(answer) && Date.now() < deadline) {
        await sleep(100)
        answer = await resolve(r, "appdb")
      }
      expect(Exit.isSuccess(answer) && answer.value.endpoint.port).toBe(6543)
      expect(await Effect.runPromise(r.getStats)).toMatchObject({ redis: "up" })
    } finally {
      await relay.close()
      await first.stop()
      await second.server?.stop()
    }
  })

  it("starts (and serves UNAVAILABLE) when Redis is not there at all", async () => {
    const port = await closedPort()
    const started = Date.now()
    const r = makeRedisResolver({ url: `redis://127.0.0.1:${port}`, key, connectTimeout: 0.3 })
    opened.push(r)
    await r.ready
    expect(Date.now() - started).toBeLessThan(2_000)
    expect((await failure(r, "appdb")).code).toBe("UNAVAILABLE")
    expect(await Effect.runPromise(r.getStats)).toMatchObject({ redis: "down" })
  })
})

describe("RedisResolver: end to end", () => {
  it("routes a raw TCP client to the backend Redis names", async () => {
    const echo = net.createServer((s) => s.pipe(s))
    await new Promise<void>((res) => echo.listen(0, "127.0.0.1", res))
    const echoPort = (echo.address() as net.AddressInfo).port
    await admin.hset("e2e:routes", "*.tenants.test", JSON.stringify({ endpoint: `127.0.0.1:${echoPort}` }))
    const proxy = await startTestProxy({
      listeners: { tcp: { host: "127.0.0.1", port: 0, route: "echo.tenants.test" } },
      resolver: { type: "redis", url: redis.url, key: "e2e:routes" },
      ssrf: { allow: ["127.0.0.0/8"] }
    })
    try {
      expect(await roundTrip(proxy.port("tcp"), "hello through redis")).toBe("hello through redis")
    } finally {
      await proxy.stop()
      echo.close()
    }
  })
})

describe("RedisResolver: pure parts", () => {
  it("lists the exact field, then wildcards from most to least specific", () => {
    expect(candidateFields("a.b.example.com")).toEqual(["a.b.example.com", "*.b.example.com", "*.example.com", "*.com"])
    expect(candidateFields("appdb")).toEqual(["appdb"])
  })

  it("reads a value's formats", () => {
    expect(parseRouteValue("x", "x", " 127.0.0.1:1 ")).toMatchObject({ endpoint: { host: "127.0.0.1", port: 1 } })
    expect(parseRouteValue("x", "x", JSON.stringify({ status: "cold", retryAfter: "soon" }))).toMatchObject({
      code: "INTERNAL"
    })
    expect(parseRouteValue("x", "x", JSON.stringify({ endpoint: "h:1", metadata: [1] }))).toMatchObject({
      code: "INTERNAL"
    })
    expect(parseRouteValue("x", "x", JSON.stringify({ endpoint: "h:1", status: "active" }))).toMatchObject({
      endpoint: { host: "h", port: 1 }
    })
  })

  it("never shows the password of a URL", () => {
    expect(redactUrl("redis://:pw@10.0.0.1:6380/2")).toBe("redis://10.0.0.1:6380/2")
    expect(redactUrl("rediss://user:pw@cache.internal:6379")).toBe("rediss://cache.internal:6379")
  })
})

/** Relays TCP to a target that can change, so a replacement server can appear at the old address. */
const startRelay = async (host: string, port: number) => {
  let target = { host, port }
  const sockets = new Set<net.Socket>()
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host)
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on("close", () => sockets.delete(s))
      s.on("error", () => {
        client.destroy()
        upstream.destroy()
      })
    }
    client.pipe(upstream).pipe(client)
    upstream.on("close", () => client.destroy())
    client.on("close", () => upstream.destroy())
  })
  await new Promise<void>((res) => server.listen(0, "127.0.0.1", res))
  return {
    port: (server.address() as net.AddressInfo).port,
    retarget: (h: string, p: number) => {
      target = { host: h, port: p }
    },
    close: () =>
      new Promise<void>((res) => {
        for (const s of sockets) s.destroy()
        server.close(() => res())
      })
  }
}

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms))
