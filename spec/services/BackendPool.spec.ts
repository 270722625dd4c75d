// The BackendPool service: its contract (groups of pools keyed by vetted address and variant, one sweep timer, stats
// per owner and backend, close), and a user's layer through runProxy carrying a real HTTP listener's pools.
import { Effect, Exit, Layer, Scope } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { decodeConfig } from "../../src/config/decode.ts"
import type { VettedEndpoint } from "../../src/domain/Endpoint.ts"
import { runProxy } from "../../src/Proxy.ts"
import {
  BackendPool,
  type BackendPoolShape,
  type PoolCounts,
  type PooledBackend
} from "../../src/services/BackendPool.ts"
import { CircuitBreaker } from "../../src/services/CircuitBreaker.ts"
import { Log } from "../../src/services/Log.ts"
import { type Origin, send, startOrigin } from "../listeners/http/support.ts"
import { eventually } from "../support/proxy.ts"

/** A pool that only counts what the service asks of it. */
class Recorded implements PooledBackend {
  sweeps = 0
  closed = 0
  readonly held: PoolCounts
  constructor(held: PoolCounts) {
    this.held = held
  }
  counts = () => this.held
  sweep = () => {
    this.sweeps++
  }
  closeIdle = () => {
    this.closed++
  }
}

const at = (ip: string, port: number, host = ip): VettedEndpoint => ({ host, port, ip, family: 4 })

describe("BackendPool.make", () => {
  it("keys pools by vetted address and variant: a name and its IP share one, another variant gets its own", () => {
    const service = BackendPool.make({ sweepMs: 0 })
    const group = service.group<Recorded>("web")
    const made: Array<Recorded> = []
    const create = () => {
      const p = new Recorded({ open: 1, idle: 1, waiting: 0 })
      made.push(p)
      return p
    }
    const plain = group.get(at("127.0.0.1", 80), "", create)
    expect(group.get(at("127.0.0.1", 80, "localhost"), "", create)).toBe(plain)
    const tls = group.get(at("127.0.0.1", 80), "tls|a", create)
    expect(tls).not.toBe(plain)
    group.get(at("127.0.0.1", 81), "", create)
    expect(made.length).toBe(3)
    // One row per owner and backend: the two variants of 127.0.0.1:80 are added up.
    expect(service.stats()).toEqual([
      { owner: "web", backend: "127.0.0.1:80", open: 2, idle: 2, waiting: 0 },
      { owner: "web", backend: "127.0.0.1:81", open: 1, idle: 1, waiting: 0 }
    ])
    service.closeAll()
  })

  it("a group's close closes its idle connections and forgets its pools, leaving the other groups", () => {
    const service = BackendPool.make({ sweepMs: 0 })
    const a = service.group<Recorded>("a")
    const b = service.group<Recorded>("b")
    const pa = a.get(at("10.0.0.1", 5432), "", () => new Recorded({ open: 1, idle: 0, waiting: 2 }))
    const pb = b.get(at("10.0.0.1", 5432), "", () => new Recorded({ open: 3, idle: 1, waiting: 0 }))
    a.close()
    expect(pa.closed).toBe(1)
    expect(pb.closed).toBe(0)
    expect(service.stats()).toEqual([{ owner: "b", backend: "10.0.0.1:5432", open: 3, idle: 1, waiting: 0 }])
    service.closeAll()
    expect(pb.closed).toBe(1)
    expect(service.stats()).toEqual([])
  })

  it("sweeps every pool of every group on one timer; sweepMs 0 never does", async () => {
    const ticking = BackendPool.make({ sweepMs: 20 })
    const still = BackendPool.make({ sweepMs: 0 })
    const p1 = ticking
      .group<Recorded>("x")
      .get(at("10.0.0.2", 1), "", () => new Recorded({ open: 0, idle: 0, waiting: 0 }))
    const p2 = ticking
      .group<Recorded>("y")
      .get(at("10.0.0.3", 1), "", () => new Recorded({ open: 0, idle: 0, waiting: 0 }))
    const p3 = still
      .group<Recorded>("z")
      .get(at("10.0.0.4", 1), "", () => new Recorded({ open: 0, idle: 0, waiting: 0 }))
    await eventually(() => p1.sweeps >= 2 && p2.sweeps >= 2)
    expect(p3.sweeps).toBe(0)
    ticking.closeAll()
    const after = p1.sweeps
    await new Promise((r) => setTimeout(r, 60))
    expect(p1.sweeps).toBe(after)
    still.closeAll()
  })

  it("hands its groups the CircuitBreaker of the layer", async () => {
    const breaker = await Effect.runPromise(
      Effect.gen(function* () {
        const service = yield* BackendPool
        return service.group("g").breaker
      }).pipe(
        Effect.provide(
          BackendPool.layer({ sweepMs: 0 }).pipe(
            Layer.provide(CircuitBreaker.layer({ failureThreshold: 1, cooldown: 30 }))
          )
        )
      )
    )
    breaker!.failure("10.0.0.9:80", "refused")
    expect(breaker!.admit("10.0.0.9:80")).toEqual({ ok: false, retryAfter: 30 })
  })
})

describe("runProxy({ backendPool })", () => {
  let origin: Origin
  let scope: Scope.Closeable
  let adminPort: number
  let httpPort: number
  const owners: Array<string> = []

  beforeAll(async () => {
    origin = await startOrigin("A")
    // The user's layer: the built-in pools, and a record of who asks for a group.
    const recording = Layer.effect(
      BackendPool,
      Effect.map(
        Effect.service(BackendPool),
        (inner): BackendPoolShape => ({
          ...inner,
          group: (owner) => {
            owners.push(owner)
            return inner.group(owner)
          }
        })
      )
    ).pipe(Layer.provide(BackendPool.layer()))
    const config = decodeConfig(
      {
        admin: { host: "127.0.0.1", port: 0 },
        listeners: { web: { type: "http", host: "127.0.0.1", port: 0 } },
        routes: { "a.test": `127.0.0.1:${origin.port}` },
        ssrf: { allow: ["127.0.0.0/8"] }
      },
      process.cwd()
    )
    scope = Effect.runSync(Scope.make())
    const handle = await Effect.runPromise(
      runProxy(config, { log: Log.layerTest([]), backendPool: recording }).pipe(Scope.provide(scope))
    )
    adminPort = handle.admin!.port
    httpPort = handle.listeners.find((l) => l.name === "web")!.port
  })
  afterAll(async () => {
    if (scope) await Effect.runPromise(Scope.close(scope, Exit.void))
    await origin?.close()
  })

  it("the HTTP listener takes its pools from the user's layer, and /admin/stats shows what they hold", async () => {
    expect(owners).toEqual(["web"])
    expect((await send(httpPort, { host: "a.test" })).status).toBe(200)
    const stats = (await (await fetch(`http://127.0.0.1:${adminPort}/admin/stats`)).json()) as { pools: unknown }
    expect(stats.pools).toEqual([{ owner: "web", backend: `127.0.0.1:${origin.port}`, open: 1, idle: 1, waiting: 0 }])
  })
})
