// A RoutingCache layer of the user's own, passed to runProxy: the listeners (and the admin stats) use it in place of
// the built-in one. Real tcp clients through a real proxy to real backends.
import * as net from "node:net"
import { Effect, Exit, Layer, Scope } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { decodeConfig } from "../../src/config/decode.ts"
import { runProxy } from "../../src/Proxy.ts"
import { Log } from "../../src/services/Log.ts"
import { Resolver } from "../../src/services/Resolver.ts"
import { RoutingCache, type RoutingCacheNeeds } from "../../src/services/RoutingCache.ts"
import { ping } from "../support/net.ts"

const cleanup: Array<() => Promise<unknown> | unknown> = []
afterAll(async () => {
  for (const c of cleanup.reverse()) await c()
})

/** A backend that answers every connection's first bytes with its name, then closes. */
const namedBackend = async (name: string) => {
  const s = net.createServer((c) => c.once("data", () => c.end(name)))
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r))
  cleanup.push(() => s.close())
  return `127.0.0.1:${(s.address() as net.AddressInfo).port}`
}

/** A resolver sending "app" wherever `table.app` says now, counting its calls. */
const resolverOf = (table: { app: string }) => {
  const calls: Array<string> = []
  const layer = Resolver.layerAsync({
    resolve: (id) => {
      calls.push(id)
      return id === "app" ? { endpoint: table.app } : null
    }
  })
  return { calls, layer }
}

const startProxy = async (
  resolver: Layer.Layer<Resolver>,
  routingCache: Layer.Layer<RoutingCache, unknown, RoutingCacheNeeds>
) => {
  const config = decodeConfig(
    {
      admin: { host: "127.0.0.1", port: 0 },
      listeners: { tcp: { host: "127.0.0.1", port: 0, route: "app" } },
      ssrf: { allow: ["127.0.0.0/8"] }
    },
    process.cwd()
  )
  const scope = Effect.runSync(Scope.make())
  const handle = await Effect.runPromise(
    runProxy(config, { log: Log.layerTest([]), resolver, routingCache }).pipe(Scope.provide(scope))
  )
  cleanup.push(() => Effect.runPromise(Scope.close(scope, Exit.void)))
  return { handle, port: handle.listeners[0]!.port }
}

describe("runProxy with a RoutingCache layer of the user's own", () => {
  it("a counting layer around the built-in cache sees every connection; the resolver is asked once", async () => {
    const endpoint = await namedBackend("A")
    const resolver = resolverOf({ app: endpoint })
    const counted = { gets: 0, hits: 0 }
    const counting = Layer.effect(
      RoutingCache,
      Effect.map(RoutingCache.make({ ttl: 60, negativeTtl: 5, maxEntries: 10, resolveTimeout: 2 }), (inner) =>
        RoutingCache.of({
          ...inner,
          get: (id, info) => {
            counted.gets++
            return inner.get(id, info)
          },
          hit: (id) => {
            counted.hits++
            inner.hit(id)
          }
        })
      )
    )
    const { handle, port } = await startProxy(resolver.layer, counting)

    for (let i = 0; i < 5; i++) expect(await ping(port)).toBe("A")
    expect(resolver.calls).toEqual(["app"])
    // Each connection asked the user's layer once: by `get` (cold) or by `peekNow` + `hit` (cached).
    expect(counted.gets).toBeGreaterThanOrEqual(1)
    expect(counted.gets + counted.hits).toBe(5)
    expect((await handle.ops.stats()).cache).toEqual({ hits: 4, misses: 1, size: 1 })
  })

  it("a pass-through of the user's own asks the resolver for every connection: a new route shows at once", async () => {
    const table = { app: await namedBackend("A") }
    const resolver = resolverOf(table)
    const passThrough = Layer.effect(
      RoutingCache,
      Effect.map(RoutingCache.makeLookup({ ttl: 0, negativeTtl: 0, resolveTimeout: 2 }), (lookup) =>
        RoutingCache.of({
          get: lookup,
          purge: () => Effect.void,
          purgeAll: Effect.void,
          purgeLocal: () => Effect.void,
          stats: Effect.succeed({ hits: 0, misses: 0, size: 0 }),
          peek: () => Effect.undefined,
          peekNow: () => undefined,
          hit: () => {}
        })
      )
    )
    const { port } = await startProxy(resolver.layer, passThrough)

    expect(await ping(port)).toBe("A")
    expect(await ping(port)).toBe("A")
    table.app = await namedBackend("B")
    expect(await ping(port)).toBe("B")
    expect(resolver.calls).toEqual(["app", "app", "app"])
  })
})
