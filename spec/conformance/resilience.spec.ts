// Cold starts, circuit breakers and limits with real clients and real servers that sleep, die and come back.
import * as net from "node:net"
import pg from "pg"
import { afterAll, describe, expect, it } from "vitest"
import { ResolveError } from "../../src/domain/ResolveError.ts"
import { Resolver } from "../../src/services/Resolver.ts"
import { type PostgresServer, startPostgres } from "../support/backends/index.ts"
import { echoServer, closedPort as freePort, ping } from "../support/net.ts"
import { eventually, startTestProxy, type TestProxy } from "../support/proxy.ts"

const cleanup: Array<() => Promise<unknown> | unknown> = []
afterAll(async () => {
  for (const c of cleanup.reverse()) await c()
})

/** One raw round trip through the proxy; resolves "closed" when the proxy closes without answering. */

describe("cold start", () => {
  let sleepy: PostgresServer | undefined
  let proxy: TestProxy
  let wakes = 0

  it("holds 100 clients while the resolver's backend starts, wakes it once, and all of them get in", async () => {
    proxy = await startTestProxy(
      {
        listeners: { postgres: { host: "127.0.0.1", port: 0 } },
        ssrf: { allow: ["127.0.0.0/8"] },
        coldStart: { timeout: 20, maxQueue: 500 },
        timeouts: { handshake: 30 }
      },
      Resolver.layerAsync({
        resolve: (id) => {
          if (id === "neverdb") throw new ResolveError({ code: "UNAVAILABLE", message: "asleep", retryAfter: 1 })
          if (id !== "appdb") return null
          if (sleepy === undefined)
            throw new ResolveError({ code: "UNAVAILABLE", message: "appdb is asleep", retryAfter: 2 })
          return { endpoint: `127.0.0.1:${sleepy.port}` }
        },
        wake: async (id) => {
          if (id !== "appdb") return
          wakes++
          // A real PostgreSQL started only now: initdb + start take about a second.
          sleepy = await startPostgres({ databases: ["appdb"] })
          cleanup.push(() => sleepy?.stop())
        }
      })
    )
    cleanup.push(() => proxy.stop())
    const started = Date.now()
    const results = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        // the password is only known once the server exists: wait for it like a retrying client would not need to
        const c = new pg.Client({
          host: "127.0.0.1",
          port: proxy.port("postgres"),
          user: "app",
          database: "appdb",
          password: async () => {
            await eventually(() => sleepy !== undefined, 20_000)
            return sleepy!.userPassword
          }
        })
        await c.connect()
        const r = await c.query("select $1::int as i", [i])
        await c.end()
        return r.rows[0].i
      })
    )
    expect(results).toEqual(Array.from({ length: 100 }, (_, i) => i))
    expect(wakes).toBe(1)
    expect(Date.now() - started).toBeGreaterThan(300)
    const text = await fetch(`${proxy.adminUrl}/metrics`).then((r) => r.text())
    expect(text).toMatch(/polyproxy_cold_start_waits_total\{outcome="ready"\} 100/)
  })

  it("gives all 100 clients 57P03 within the bound when the backend never wakes", async () => {
    const short = await startTestProxy(
      {
        listeners: { postgres: { host: "127.0.0.1", port: 0 } },
        ssrf: { allow: ["127.0.0.0/8"] },
        coldStart: { timeout: 1.5 }
      },
      Resolver.layerAsync({
        resolve: () => {
          throw new ResolveError({ code: "UNAVAILABLE", message: "asleep", retryAfter: 1 })
        }
      })
    )
    cleanup.push(() => short.stop())
    const started = Date.now()
    const codes = await Promise.all(
      Array.from({ length: 100 }, async () => {
        const c = new pg.Client({ host: "127.0.0.1", port: short.port("postgres"), user: "app", database: "neverdb" })
        c.on("error", () => {})
        return ((await c.connect().catch((e) => e)) as { code?: string }).code
      })
    )
    expect(new Set(codes)).toEqual(new Set(["57P03"]))
    // they waited the whole bound, and not much longer
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_400)
    expect(Date.now() - started).toBeLessThan(4_000)
  })

  it("treats a refusing wakeable route as asleep: wakes it and replays the client's bytes", async () => {
    const port = await freePort()
    let woken = 0
    let backend: net.Server | undefined
    const p = await startTestProxy(
      {
        listeners: { tcp: { host: "127.0.0.1", port: 0, route: "fn" } },
        ssrf: { allow: ["127.0.0.0/8"] },
        coldStart: { timeout: 10 },
        breaker: { failureThreshold: 1, cooldown: 30 }
      },
      Resolver.layerAsync({
        resolve: () => ({ endpoint: `127.0.0.1:${port}`, metadata: { wakeable: true } }),
        wake: async () => {
          woken++
          await new Promise((r) => setTimeout(r, 500))
          backend = await echoServer(port)
        }
      })
    )
    cleanup.push(() => p.stop())
    cleanup.push(() => backend?.close())
    const answers = await Promise.all(Array.from({ length: 20 }, () => ping(p.port("tcp"))))
    expect(answers).toEqual(Array.from({ length: 20 }, () => "ping"))
    expect(woken).toBe(1)
  })
})

describe("circuit breaker", () => {
  it("opens after the threshold (fast UNAVAILABLE, no dial), and closes once the backend is back", async () => {
    let backend = await echoServer()
    const port = (backend.address() as net.AddressInfo).port
    const p = await startTestProxy({
      listeners: { tcp: { host: "127.0.0.1", port: 0, route: "b" } },
      routes: { b: `127.0.0.1:${port}` },
      ssrf: { allow: ["127.0.0.0/8"] },
      breaker: { failureThreshold: 2, cooldown: 1 }
    })
    cleanup.push(() => p.stop())
    expect(await ping(p.port("tcp"))).toBe("ping")
    await new Promise((r) => backend.close(r))
    for (let i = 0; i < 5; i++) expect(await ping(p.port("tcp"))).toBe("closed")
    const reasons = p.logs.filter((l) => l.event === "connection refused").map((l) => l.reason)
    expect(reasons).toEqual(["CONNECT_FAILED", "CONNECT_FAILED", "UNAVAILABLE", "UNAVAILABLE", "UNAVAILABLE"])
    expect(String(p.logs.at(-1)?.message)).toContain("circuit open")
    const text = await fetch(`${p.adminUrl}/metrics`).then((r) => r.text())
    expect(text).toContain(`polyproxy_backend_breaker_state{backend="127.0.0.1:${port}"} 2`)
    backend = await echoServer(port)
    cleanup.push(() => backend.close())
    await new Promise((r) => setTimeout(r, 1_100))
    expect(await ping(p.port("tcp"))).toBe("ping")
    expect(await ping(p.port("tcp"))).toBe("ping")
  })
})

describe("limits", () => {
  it("refuses a connection over limits.perResource with the protocol's error, and counts it", async () => {
    const db = await startPostgres({ databases: ["appdb"] })
    cleanup.push(() => db.stop())
    const p = await startTestProxy({
      listeners: { postgres: { host: "127.0.0.1", port: 0 } },
      routes: { appdb: `127.0.0.1:${db.port}` },
      ssrf: { allow: ["127.0.0.0/8"] },
      limits: { perResource: 2 }
    })
    cleanup.push(() => p.stop())
    const cfg = {
      host: "127.0.0.1",
      port: p.port("postgres"),
      user: db.user,
      password: db.userPassword,
      database: "appdb"
    }
    const held = [new pg.Client(cfg), new pg.Client(cfg)]
    for (const c of held) await c.connect()
    const third = new pg.Client(cfg)
    third.on("error", () => {})
    const e = (await third.connect().catch((x) => x)) as { code?: string; message: string }
    expect(e.code).toBe("57P03")
    expect(e.message).toContain("limit of 2 connections")
    await held[0]!.end()
    // the slot is free again
    await eventually(() => p.handle.listeners[0]!.open() === 1)
    const fourth = new pg.Client(cfg)
    await fourth.connect()
    await fourth.end()
    await held[1]!.end()
  })

  it("refuses connections over limits.maxConnections", async () => {
    const backend = await echoServer()
    cleanup.push(() => backend.close())
    const p = await startTestProxy({
      listeners: { tcp: { host: "127.0.0.1", port: 0, route: "b" } },
      routes: { b: `127.0.0.1:${(backend.address() as net.AddressInfo).port}` },
      ssrf: { allow: ["127.0.0.0/8"] },
      limits: { maxConnections: 3 }
    })
    cleanup.push(() => p.stop())
    const held = await Promise.all(
      Array.from(
        { length: 3 },
        () =>
          new Promise<net.Socket>((resolve) => {
            const s = net.connect(p.port("tcp"), "127.0.0.1", () => s.write("x"))
            s.once("data", () => resolve(s))
          })
      )
    )
    expect(await ping(p.port("tcp"))).toBe("closed")
    expect(p.logs.some((l) => l.reason === "UNAVAILABLE" && String(l.message).includes("limit of 3"))).toBe(true)
    for (const s of held) s.destroy()
    await eventually(() => p.handle.listeners[0]!.open() === 0)
    expect(await ping(p.port("tcp"))).toBe("ping")
  })
})
