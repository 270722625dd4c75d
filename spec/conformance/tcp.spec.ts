// First end-to-end route: a real `pg` client through the generic TCP listener to a real PostgreSQL.
import * as net from "node:net"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type PostgresServer, startPostgres } from "../support/backends/index.ts"
import { roundTrip } from "../support/net.ts"
import { eventually, startTestProxy, type TestProxy } from "../support/proxy.ts"

let db: PostgresServer
let proxy: TestProxy

beforeAll(async () => {
  db = await startPostgres({ databases: ["appdb"] })
  proxy = await startTestProxy({
    listeners: { tcp: { host: "127.0.0.1", port: 0, route: "appdb" } },
    routes: { appdb: `127.0.0.1:${db.port}` },
    ssrf: { allow: ["127.0.0.0/8"] }
  })
})

afterAll(async () => {
  await proxy?.stop()
  await db?.stop()
})

const client = (port: number) =>
  new pg.Client({ host: "127.0.0.1", port, user: db.user, password: db.userPassword, database: "appdb", ssl: false })

/** A raw TCP client: resolves with what it read when the proxy closes the connection. */
const rawClose = (port: number) =>
  new Promise<{ data: string; ms: number }>((resolve, reject) => {
    const started = Date.now()
    const s = net.connect(port, "127.0.0.1")
    let data = ""
    s.on("data", (d) => (data += d))
    s.once("close", () => resolve({ data, ms: Date.now() - started }))
    s.once("error", reject)
  })

describe("tcp listener → PostgreSQL", () => {
  it("runs queries with scram-sha-256 auth through the proxy", async () => {
    const c = client(proxy.port("tcp"))
    await c.connect()
    const r = await c.query("select current_database() as db, $1::int + 1 as n", [41])
    expect(r.rows).toEqual([{ db: "appdb", n: 42 }])
    await c.query("create table if not exists t (id int primary key, body text)")
    await c.query("insert into t select g, repeat('x', 100) from generate_series(1, 20000) g on conflict do nothing")
    const big = await c.query("select id, body from t order by id")
    expect(big.rows.length).toBe(20000)
    expect(big.rows[19999]).toEqual({ id: 20000, body: "x".repeat(100) })
    await c.end()
  })

  it("serves 20 concurrent clients", async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const c = client(proxy.port("tcp"))
        await c.connect()
        const r = await c.query("select $1::int * 2 as v", [i])
        await c.end()
        return r.rows[0].v
      })
    )
    expect(results).toEqual(Array.from({ length: 20 }, (_, i) => i * 2))
  })

  it("surfaces PostgreSQL's own error for a wrong password", async () => {
    const c = new pg.Client({
      host: "127.0.0.1",
      port: proxy.port("tcp"),
      user: "app",
      password: "wrong",
      database: "appdb"
    })
    const err = (await c.connect().catch((e) => e)) as { code?: string }
    expect(err.code).toBe("28P01")
  })

  it("counts connections and bytes in /metrics", async () => {
    const text = await fetch(`${proxy.adminUrl}/metrics`).then((r) => r.text())
    const accepted = Number(
      /polyproxy_connections_accepted_total\{listener="tcp",protocol="tcp"\} (\d+)/.exec(text)?.[1]
    )
    expect(accepted).toBeGreaterThanOrEqual(22)
    expect(
      Number(/polyproxy_bytes_from_backend_total\{listener="tcp",protocol="tcp"\} (\d+)/.exec(text)?.[1])
    ).toBeGreaterThan(2_000_000)
  })

  it("reports the bound port on /readyz and answers /healthz", async () => {
    const ready = (await fetch(`${proxy.adminUrl}/readyz`).then((r) => r.json())) as {
      ready: boolean
      listeners: Record<string, { port: number }>
    }
    expect(ready.ready).toBe(true)
    expect(ready.listeners.tcp?.port).toBe(proxy.port("tcp"))
    expect((await fetch(`${proxy.adminUrl}/healthz`)).status).toBe(200)
  })
})

describe("tcp listener refusals", () => {
  let other: TestProxy
  afterAll(async () => other?.stop())

  it("closes a connection for an unknown resource and logs why", async () => {
    other = await startTestProxy({
      listeners: { tcp: { host: "127.0.0.1", port: 0, route: "nosuchdb" } },
      routes: { appdb: `127.0.0.1:${db.port}` },
      ssrf: { allow: ["127.0.0.0/8"] }
    })
    const { data } = await rawClose(other.port("tcp"))
    expect(data).toBe("")
    await eventually(() => other.logs.some((l) => l.event === "connection refused" && l.reason === "NOT_FOUND"))
    const line = other.logs.find((l) => l.reason === "NOT_FOUND")
    expect(line).toMatchObject({ listener: "tcp", resource: "nosuchdb", source: "resolver" })
    await other.stop()
  })

  it("refuses an endpoint the SSRF guard forbids, without dialing it", async () => {
    // The same backend, but loopback is not allowed here: the default refuses every special-purpose range.
    const seen: Array<net.Socket> = []
    const trap = net.createServer((s) => seen.push(s))
    await new Promise<void>((r) => trap.listen(0, "127.0.0.1", r))
    other = await startTestProxy({
      listeners: { tcp: { host: "127.0.0.1", port: 0, route: "appdb" } },
      routes: { appdb: `127.0.0.1:${(trap.address() as net.AddressInfo).port}` }
    })
    await rawClose(other.port("tcp"))
    await eventually(() => other.logs.some((l) => l.reason === "FORBIDDEN"))
    expect(String(other.logs.find((l) => l.reason === "FORBIDDEN")?.message)).toContain("127.0.0.1")
    expect(seen.length).toBe(0)
    trap.close()
    await other.stop()
  })

  it("closes with CONNECT_FAILED when the backend is down", async () => {
    const dead = net.createServer()
    await new Promise<void>((r) => dead.listen(0, "127.0.0.1", r))
    const port = (dead.address() as net.AddressInfo).port
    await new Promise((r) => dead.close(r))
    other = await startTestProxy({
      listeners: { tcp: { host: "127.0.0.1", port: 0, route: "gone" } },
      routes: { gone: `127.0.0.1:${port}` },
      ssrf: { allow: ["127.0.0.0/8"] }
    })
    await rawClose(other.port("tcp"))
    await eventually(() => other.logs.some((l) => l.reason === "CONNECT_FAILED"))
    expect(String(other.logs.find((l) => l.reason === "CONNECT_FAILED")?.message)).toContain("ECONNREFUSED")
    await other.stop()
  })

  it("refuses connections over listeners.tcp.maxConnections", async () => {
    const backend = net.createServer((s) => s.resume())
    await new Promise<void>((r) => backend.listen(0, "127.0.0.1", r))
    other = await startTestProxy({
      listeners: { tcp: { host: "127.0.0.1", port: 0, route: "b", maxConnections: 2 } },
      routes: { b: `127.0.0.1:${(backend.address() as net.AddressInfo).port}` },
      ssrf: { allow: ["127.0.0.0/8"] }
    })
    const held = [net.connect(other.port("tcp"), "127.0.0.1"), net.connect(other.port("tcp"), "127.0.0.1")]
    await eventually(() => other.handle.listeners[0]!.open() === 2)
    await rawClose(other.port("tcp"))
    await eventually(() => other.logs.some((l) => l.reason === "UNAVAILABLE"))
    for (const s of held) s.destroy()
    backend.close()
    await other.stop()
  })
})

describe("drain", () => {
  it("stops accepting, lets an open connection finish, then closes", async () => {
    const d = await startTestProxy({
      listeners: { tcp: { host: "127.0.0.1", port: 0, route: "appdb" } },
      routes: { appdb: `127.0.0.1:${db.port}` },
      ssrf: { allow: ["127.0.0.0/8"] },
      timeouts: { drain: 10 }
    })
    const port = d.port("tcp")
    const c = client(port)
    await c.connect()
    const stopping = d.stop()
    // New connections are refused at once while the open one keeps working.
    await eventually(() => d.logs.some((l) => l.event === "draining"))
    const refused = await new Promise<string>((resolve) => {
      const s = net.connect(port, "127.0.0.1")
      s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? ""))
      s.once("connect", () => resolve("connected"))
    })
    expect(refused).toBe("ECONNREFUSED")
    expect((await c.query("select 1 as one")).rows).toEqual([{ one: 1 }])
    await c.end()
    await stopping
    expect(d.logs.some((l) => l.event === "drained")).toBe(true)
  })

  it("closes what is still open at the drain deadline", async () => {
    const d = await startTestProxy({
      listeners: { tcp: { host: "127.0.0.1", port: 0, route: "appdb" } },
      routes: { appdb: `127.0.0.1:${db.port}` },
      ssrf: { allow: ["127.0.0.0/8"] },
      timeouts: { drain: 0.5 }
    })
    const c = client(d.port("tcp"))
    await c.connect()
    const ended = new Promise((r) => c.once("error", r).once("end", r))
    const started = Date.now()
    await d.stop()
    await ended
    expect(Date.now() - started).toBeGreaterThanOrEqual(400)
    expect(d.logs.some((l) => l.event === "drain timeout, closing remaining connections")).toBe(true)
  })
})

describe("tcp listener: upstream.sourceAddresses", () => {
  it("dials the backend from each listed source address in turn", async () => {
    const seen: Array<string> = []
    const backend = net.createServer((s) => {
      seen.push(s.remoteAddress ?? "")
      s.pipe(s)
    })
    await new Promise<void>((r) => backend.listen(0, "127.0.0.1", r))
    const spread = await startTestProxy({
      listeners: { tcp: { host: "127.0.0.1", port: 0, route: "echo" } },
      routes: { echo: `127.0.0.1:${(backend.address() as net.AddressInfo).port}` },
      ssrf: { allow: ["127.0.0.0/8"] },
      upstream: { sourceAddresses: ["127.0.0.2", "127.0.0.3", "::1"] }
    })
    try {
      for (let i = 0; i < 4; i++) expect(await roundTrip(spread.port("tcp"), `hello ${i}`)).toBe(`hello ${i}`)
      // IPv4 backend: the IPv6 source is never used for it.
      expect(seen.sort()).toEqual(["127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"])
    } finally {
      await spread.stop()
      backend.close()
    }
  })
})
