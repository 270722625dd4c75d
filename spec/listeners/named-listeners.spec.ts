// Several listeners of one type in one config: two postgres listeners on two ports (real `pg` clients, real
// PostgreSQL 15 servers) and two tcp listeners with fixed routes, each routed by its own keys and counted under its
// own name in /metrics, /readyz and the dashboard; a hot reload adds and removes listeners by name.
import * as net from "node:net"
import { Effect, Exit, Scope } from "effect"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { decodeConfig } from "../../src/config/decode.ts"
import { type ListenerManifest, protocolListener } from "../../src/listeners/manifest.ts"
import { ListenerRegistry } from "../../src/listeners/registry.ts"
import { runProxy } from "../../src/Proxy.ts"
import { Log } from "../../src/services/Log.ts"
import { type PostgresServer, startPostgres } from "../support/backends/index.ts"
import { startTestProxy, type TestProxy } from "../support/proxy.ts"

let db1: PostgresServer
let db2: PostgresServer
let proxy: TestProxy
const servers: Array<net.Server> = []

/** A backend that answers every chunk with its own name in front: which one a connection reached. */
const namedBackend = async (name: string): Promise<number> => {
  const s = net.createServer((c) => c.on("data", (d) => c.write(`${name}:${d}`)))
  servers.push(s)
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r))
  return (s.address() as net.AddressInfo).port
}

/** Sends "hi" and returns the first answer, or the connection's error code. */
const hello = (port: number) =>
  new Promise<string>((resolve) => {
    const s = net.connect(port, "127.0.0.1", () => s.write("hi"))
    s.once("data", (d) => {
      resolve(String(d))
      s.destroy()
    })
    s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message))
  })

let raw: Record<string, unknown>

beforeAll(async () => {
  ;[db1, db2] = await Promise.all([startPostgres({ databases: ["appdb"] }), startPostgres({ databases: ["seconddb"] })])
  const [cachePort, memcachePort] = await Promise.all([namedBackend("cache"), namedBackend("memcache")])
  raw = {
    listeners: {
      "pg-main": { type: "postgres", host: "127.0.0.1", port: 0 },
      // Same type, its own routing key: the tenant after the dot of the user name (the backend sees "app").
      "pg-alt": { type: "postgres", host: "127.0.0.1", port: 0, routeBy: "user-suffix" },
      redis: { type: "tcp", host: "127.0.0.1", port: 0, route: "cache", protocol: "redis" },
      memcache: { type: "tcp", host: "127.0.0.1", port: 0, route: "memcache", protocol: "memcached" }
    },
    routes: {
      appdb: `127.0.0.1:${db1.port}`,
      second: `127.0.0.1:${db2.port}`,
      cache: `127.0.0.1:${cachePort}`,
      memcache: `127.0.0.1:${memcachePort}`
    },
    ssrf: { allow: ["127.0.0.0/8"] }
  }
  proxy = await startTestProxy(raw)
})

afterAll(async () => {
  await proxy?.stop()
  for (const s of servers) s.close()
  await Promise.all([db1?.stop(), db2?.stop()])
})

/** The port of the PostgreSQL server a query reached, as that server reports it. */
const serverPort = async (client: pg.ClientConfig): Promise<number> => {
  const c = new pg.Client({ host: "127.0.0.1", ssl: false, ...client })
  await c.connect()
  try {
    return Number((await c.query("SELECT current_setting('port') AS port")).rows[0].port)
  } finally {
    await c.end()
  }
}

const metrics = async () => (await fetch(`${proxy.adminUrl}/metrics`)).text()
const accepted = (text: string, listener: string) =>
  Number(
    new RegExp(`^polyproxy_connections_accepted_total\\{listener="${listener}",[^}]*\\} (\\d+)$`, "m").exec(text)?.[1]
  )

describe("two postgres listeners and two tcp fixed routes in one config", () => {
  it("routes each listener by its own keys", async () => {
    const viaMain = await serverPort({
      port: proxy.port("pg-main"),
      user: db1.user,
      password: db1.userPassword,
      database: "appdb"
    })
    expect(viaMain).toBe(db1.port)
    const viaAlt = await serverPort({
      port: proxy.port("pg-alt"),
      user: `${db2.user}.second`,
      password: db2.userPassword,
      database: "seconddb"
    })
    expect(viaAlt).toBe(db2.port)
    // pg-main routes by database: the user's suffix means nothing there.
    const refused = new pg.Client({
      host: "127.0.0.1",
      port: proxy.port("pg-main"),
      user: `${db2.user}.second`,
      password: db2.userPassword,
      database: "seconddb",
      ssl: false
    })
    await expect(refused.connect()).rejects.toMatchObject({ code: "3D000" })
    expect(await hello(proxy.port("redis"))).toBe("cache:hi")
    expect(await hello(proxy.port("memcache"))).toBe("memcache:hi")
  })

  it("counts each under its own name in /metrics, with its type and protocol as labels", async () => {
    const text = await metrics()
    expect(text).toMatch(
      /^polyproxy_connections_accepted_total\{listener="pg-main",protocol="postgresql",type="postgres"\} [1-9]/m
    )
    expect(text).toMatch(
      /^polyproxy_connections_accepted_total\{listener="pg-alt",protocol="postgresql",type="postgres"\} 1$/m
    )
    expect(text).toMatch(/^polyproxy_connections_accepted_total\{listener="redis",protocol="redis",type="tcp"\} 1$/m)
    expect(text).toMatch(
      /^polyproxy_connections_accepted_total\{listener="memcache",protocol="memcached",type="tcp"\} 1$/m
    )
    expect(text).toMatch(/^polyproxy_errors_total\{listener="pg-main",[^}]*reason="not_found"\} 1$/m)
    const before = accepted(text, "pg-alt")
    await serverPort({
      port: proxy.port("pg-alt"),
      user: `${db2.user}.second`,
      password: db2.userPassword,
      database: "seconddb"
    })
    const after = await metrics()
    expect(accepted(after, "pg-alt")).toBe(before + 1)
    expect(accepted(after, "pg-main")).toBe(accepted(text, "pg-main"))
  })

  it("shows each in /readyz and the dashboard by name, with its type and protocol", async () => {
    const ready = (await (await fetch(`${proxy.adminUrl}/readyz`)).json()) as {
      listeners: Record<string, { type: string; protocol: string; port: number }>
    }
    expect(Object.keys(ready.listeners).sort()).toEqual(["memcache", "pg-alt", "pg-main", "redis"])
    expect(ready.listeners["pg-alt"]).toMatchObject({ type: "postgres", protocol: "postgresql" })
    expect(ready.listeners["pg-alt"]?.port).toBe(proxy.port("pg-alt"))
    expect(ready.listeners.memcache).toMatchObject({ type: "tcp", protocol: "memcached" })
    const dashboard = (await (
      await fetch(`${proxy.adminUrl}/admin/dashboard`, { headers: { "x-polyproxy-dashboard": "1" } })
    ).json()) as { listeners: Record<string, { type: string; protocol: string; accepted: number }> }
    expect(dashboard.listeners["pg-main"]).toMatchObject({ type: "postgres", protocol: "postgresql" })
    expect(dashboard.listeners.redis).toMatchObject({ type: "tcp", protocol: "redis", accepted: 1 })
  })

  it("hot reload starts a listener added by name, stops one removed, and leaves the others alone", async () => {
    const listeners = raw.listeners as Record<string, unknown>
    const { memcache: _, ...kept } = listeners
    const next = decodeConfig(
      {
        ...raw,
        admin: { host: "127.0.0.1", port: 0 },
        listeners: { ...kept, "pg-extra": { type: "postgres", host: "127.0.0.1", port: 0, routeBy: "user" } },
        routes: { ...(raw.routes as object), [db1.user]: `127.0.0.1:${db1.port}` }
      },
      process.cwd()
    )
    const memcachePort = proxy.port("memcache")
    const mainPort = proxy.port("pg-main")
    const report = await proxy.handle.ops.reload(next)
    expect(report.applied).toContain("listeners.memcache stopped")
    expect(report.applied.some((a) => a.startsWith("listeners.pg-extra started on 127.0.0.1:"))).toBe(true)
    expect(report.applied.filter((a) => a.startsWith("listeners.pg-main") || a.startsWith("listeners.redis"))).toEqual(
      []
    )
    expect(
      await serverPort({ port: proxy.port("pg-extra"), user: db1.user, password: db1.userPassword, database: "appdb" })
    ).toBe(db1.port)
    expect(await hello(memcachePort)).toBe("ECONNREFUSED")
    expect(proxy.port("pg-main")).toBe(mainPort)
    expect(await hello(proxy.port("redis"))).toBe("cache:hi")
    const text = await metrics()
    expect(text).toMatch(
      /^polyproxy_connections_accepted_total\{listener="pg-extra",protocol="postgresql",type="postgres"\} 1$/m
    )
  })
})

describe("a program's own listener type", () => {
  // Every connection to the backend named by the listener's `options.resource`, the rest left to the pipeline.
  const fixed: ListenerManifest = {
    type: "fixed",
    label: "tcp",
    options: { keys: ["resource"], decode: (o) => ({ options: { resource: o.resource } }) },
    start: protocolListener(async () => (ctx) => ({
      name: "whatever the protocol calls itself",
      readsHandshake: false,
      identify: (conn) => Effect.succeed({ resourceId: String(ctx.listener.options?.resource), client: conn.client }),
      refuse: (client) => client.end()
    }))
  }
  const decoded = () =>
    decodeConfig(
      {
        admin: false,
        listeners: { mine: { type: "fixed", host: "127.0.0.1", port: 0, resource: "cache" } },
        routes: raw.routes,
        ssrf: { allow: ["127.0.0.0/8"] }
      },
      process.cwd(),
      { listeners: [fixed] }
    )
  const run = async (options: Parameters<typeof runProxy>[1]) => {
    const scope = Effect.runSync(Scope.make())
    const exit = await Effect.runPromiseExit(
      runProxy(decoded(), { log: Log.layerTest([]), ...options }).pipe(Scope.provide(scope))
    )
    return { exit, stop: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
  }

  it("starts from a ListenerRegistry layer, under the listener's name", async () => {
    const { exit, stop } = await run({ listeners: ListenerRegistry.layer([fixed]) })
    if (Exit.isFailure(exit)) throw new Error(String(exit.cause))
    const mine = exit.value.status().find((l) => l.name === "mine")
    expect(mine).toMatchObject({ type: "fixed", protocol: "tcp" })
    expect(await hello(mine!.port)).toBe("cache:hi")
    await stop()
  })

  it("is refused at start by a proxy that was not given it, naming the key", async () => {
    const { exit, stop } = await run({})
    expect(Exit.isFailure(exit) && String(exit.cause)).toContain(
      'listeners.mine: no listener type "fixed" in this proxy'
    )
    await stop()
  })
})
