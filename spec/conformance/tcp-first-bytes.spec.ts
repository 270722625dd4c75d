// `listeners.tcp.route: { firstBytes }`: a user extractor picks the resource from the client's first bytes. Real
// ioredis clients with ACL users go through the example extractor (fixtures/extractors/redis-user.mjs) to the one of
// two real Redis servers that holds their user; extractors that refuse, break or never decide are bounded.
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { Effect, Exit, type Layer, Scope } from "effect"
import { Redis } from "ioredis"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ConfigError, decodeConfig } from "../../src/config/decode.ts"
import { applyEnv } from "../../src/config/env.ts"
import { protocolForPort, protocolLabels, protocolTable } from "../../src/domain/Protocols.ts"
import { FirstBytes, type FirstBytesExtractor, runProxy } from "../../src/Proxy.ts"
import { Log } from "../../src/services/Log.ts"
import { type RedisServer, startRedis } from "../support/backends/index.ts"
import { eventually, startTestProxy, type TestProxy } from "../support/proxy.ts"
import { redisClient } from "../support/redis.ts"

const extractor = "./fixtures/extractors/redis-user.mjs#extract"
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "polyproxy-first-bytes-"))
const writeModule = (name: string, text: string) => {
  const file = path.join(dir, name)
  fs.writeFileSync(file, text)
  return file
}

/** RESP: a command as a client library writes it. */
const resp = (...args: Array<string>) =>
  Buffer.from(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`)

/** Raw bytes in (chunks 20 ms apart); what came back once the proxy closed (or `quietMs` after the last byte). */
const exchange = (port: number, bytes: Buffer | ReadonlyArray<Buffer>, quietMs = 0) =>
  new Promise<{ data: string; ms: number; closed: boolean }>((resolve, reject) => {
    const started = Date.now()
    const s = net.connect(port, "127.0.0.1", async () => {
      for (const chunk of Buffer.isBuffer(bytes) ? [bytes] : bytes) {
        if (s.destroyed) return
        s.write(chunk)
        await new Promise((r) => setTimeout(r, 20))
      }
    })
    let data = ""
    let timer: NodeJS.Timeout | undefined
    const done = (closed: boolean) => {
      clearTimeout(timer)
      s.destroy()
      resolve({ data, ms: Date.now() - started, closed })
    }
    s.on("data", (d) => {
      data += d
      if (quietMs > 0) {
        clearTimeout(timer)
        timer = setTimeout(() => done(false), quietMs)
      }
    })
    s.once("close", () => done(true))
    s.once("error", reject)
  })

let redisA: RedisServer
let redisB: RedisServer
let proxy: TestProxy
const clients: Array<Redis> = []

const client = (port: number, username: string, password: string) => redisClient(clients, port, username, password)

/** The port of the Redis server a connection reached, as that server reports it. */
const serverPort = async (c: Redis) => Number(((await c.config("GET", "port")) as Array<string>)[1])

beforeAll(async () => {
  ;[redisA, redisB] = await Promise.all([startRedis(), startRedis()])
  // The servers' default user has no password: the admin connections log in as it.
  const admin = [redisA, redisB].map((r) => {
    const c = new Redis({ host: r.host, port: r.port, lazyConnect: true })
    clients.push(c)
    return c
  })
  await admin[0]!.call("ACL", "SETUSER", "alice", "on", ">pw-alice", "~*", "+@all")
  await admin[1]!.call("ACL", "SETUSER", "bob", "on", ">pw-bob", "~*", "+@all")
  await admin[1]!.call("ACL", "SETUSER", "carol", "on", ">pw-carol", "~*", "+@all")
  proxy = await startTestProxy({
    listeners: { tcp: { host: "127.0.0.1", port: 0, route: { firstBytes: extractor }, protocol: "redis" } },
    routes: { alice: `127.0.0.1:${redisA.port}`, bob: `127.0.0.1:${redisB.port}` },
    ssrf: { allow: ["127.0.0.0/8"] },
    timeouts: { handshake: 1 }
  })
})

afterAll(async () => {
  for (const c of clients) c.disconnect()
  await proxy?.stop()
  await Promise.all([redisA?.stop(), redisB?.stop()])
  fs.rmSync(dir, { recursive: true, force: true })
})

describe("route: { firstBytes } with the Redis example extractor", () => {
  it("routes ioredis clients by ACL user to the Redis server holding that user", async () => {
    const alice = client(proxy.port("tcp"), "alice", "pw-alice")
    const bob = client(proxy.port("tcp"), "bob", "pw-bob")
    await Promise.all([alice.connect(), bob.connect()])
    expect(await alice.call("ACL", "WHOAMI")).toBe("alice")
    expect(await bob.call("ACL", "WHOAMI")).toBe("bob")
    expect(await serverPort(alice)).toBe(redisA.port)
    expect(await serverPort(bob)).toBe(redisB.port)
    await alice.set("owner", "alice")
    await bob.set("owner", "bob")
    const big = "x".repeat(200_000)
    await alice.set("big", big)
    expect(await alice.get("big")).toBe(big)
    const piped = await bob.pipeline().incr("n").incr("n").get("owner").exec()
    expect(piped?.map(([, v]) => v)).toEqual([1, 2, "bob"])
  })

  it("passes authentication through: Redis itself rejects a wrong password", async () => {
    const wrong = client(proxy.port("tcp"), "alice", "not-her-password")
    // ioredis reports the server's answer as an error event, then the connect() as closed (as it does directly).
    const errors: Array<string> = []
    wrong.on("error", (e: Error) => errors.push(e.message))
    await wrong.connect().catch(() => {})
    expect(errors.join("\n")).toMatch(/^WRONGPASS/m)
  })

  it("routes a RESP3 `HELLO 3 AUTH user pass` by its user", async () => {
    const { data } = await exchange(
      proxy.port("tcp"),
      Buffer.concat([resp("HELLO", "3", "AUTH", "bob", "pw-bob"), resp("CONFIG", "GET", "port")]),
      300
    )
    // A RESP3 map answers HELLO; then CONFIG GET port from server B.
    expect(data.startsWith("%")).toBe(true)
    expect(data).toContain(`$${String(redisB.port).length}\r\n${redisB.port}\r\n`)
  })

  it("refuses a user no route knows (NOT_FOUND), and a first command naming no user (FORBIDDEN)", async () => {
    const unknown = await exchange(proxy.port("tcp"), resp("AUTH", "carol", "pw-carol"))
    expect(unknown).toMatchObject({ data: "", closed: true })
    await eventually(() => proxy.logs.some((l) => l.reason === "NOT_FOUND" && l.resource === "carol"))
    const ping = await exchange(proxy.port("tcp"), resp("PING"))
    expect(ping).toMatchObject({ data: "", closed: true })
    await eventually(() =>
      proxy.logs.some((l) => l.reason === "FORBIDDEN" && String(l.message).includes("found no routing key"))
    )
  })

  it("refuses what the extractor calls an error (not RESP) as BAD_REQUEST with its message", async () => {
    const { data } = await exchange(proxy.port("tcp"), Buffer.from("AUTH alice pw-alice\r\n"))
    expect(data).toBe("")
    await eventually(() =>
      proxy.logs.some((l) => l.reason === "BAD_REQUEST" && String(l.message).includes("inline commands are not routed"))
    )
  })

  it("labels metrics with protocol redis", async () => {
    const text = await fetch(`${proxy.adminUrl}/metrics`).then((r) => r.text())
    expect(text).toMatch(/polyproxy_connections_accepted_total\{listener="tcp",protocol="redis"\} [1-9]/)
  })
})

describe("route: { firstBytes } with defaultRoute", () => {
  let p: TestProxy
  afterAll(async () => p?.stop())

  it("sends clients whose first command names no user to the default route", async () => {
    p = await startTestProxy({
      listeners: { tcp: { host: "127.0.0.1", port: 0, route: { firstBytes: extractor }, defaultRoute: "shared" } },
      routes: { alice: `127.0.0.1:${redisA.port}`, shared: `127.0.0.1:${redisB.port}` },
      ssrf: { allow: ["127.0.0.0/8"] }
    })
    const { data } = await exchange(p.port("tcp"), Buffer.concat([resp("PING"), resp("CONFIG", "GET", "port")]), 300)
    expect(data).toBe(`+PONG\r\n*2\r\n$4\r\nport\r\n$${String(redisB.port).length}\r\n${redisB.port}\r\n`)
    // A port in the protocol table labels the listener (this one listens on a free port: plain tcp).
    expect(p.logs.find((l) => l.event === "listening")).toMatchObject({ protocol: "tcp" })
  })
})

/** Runs the proxy with `options` the way an embedding program does; returns its port, logs and a stop function. */
const embedded = async (
  raw: Record<string, unknown>,
  firstBytes?: FirstBytesExtractor | Layer.Layer<FirstBytes, unknown>
) => {
  const config = decodeConfig({ admin: false, ssrf: { allow: ["127.0.0.0/8"] }, ...raw }, process.cwd())
  const logs: Array<{ level: string; event: string; [k: string]: unknown }> = []
  const scope = Effect.runSync(Scope.make())
  const exit = await Effect.runPromiseExit(
    runProxy(config, { log: Log.layerTest(logs), ...(firstBytes ? { firstBytes } : {}) }).pipe(Scope.provide(scope))
  )
  const stop = () => Effect.runPromise(Scope.close(scope, Exit.void))
  if (Exit.isFailure(exit)) {
    await stop()
    return { error: String((exit.cause.reasons[0] as { error?: { message?: string } })?.error?.message) }
  }
  return { port: exit.value.listeners[0]!.port, logs, stop }
}

const tcp = (route: unknown, extra: Record<string, unknown> = {}) => ({
  listeners: { tcp: { host: "127.0.0.1", port: 0, route, ...extra } },
  routes: { alice: `127.0.0.1:${redisA.port}` },
  timeouts: { handshake: 0.5 }
})

describe("extractors that misbehave", () => {
  it("an extractor returning an Error refuses the client (BAD_REQUEST, message logged)", async () => {
    const file = writeModule("refuse.mjs", `export const extract = () => new Error("tenant header missing")\n`)
    const p = await embedded(tcp({ firstBytes: `${file}#extract` }))
    if ("error" in p) throw new Error(p.error)
    expect((await exchange(p.port, Buffer.from("hello"))).closed).toBe(true)
    await eventually(() =>
      p.logs.some((l) => l.reason === "BAD_REQUEST" && String(l.message).includes("tenant header missing"))
    )
    await p.stop()
  })

  it("one that throws or returns nonsense is a bug: INTERNAL, logged as an error", async () => {
    const file = writeModule(
      "broken.mjs",
      `export default (b) => { if (b[0] === 0x21) throw new TypeError("boom"); return 42 }\n`
    )
    const p = await embedded(tcp({ firstBytes: file }))
    if ("error" in p) throw new Error(p.error)
    await exchange(p.port, Buffer.from("!"))
    await exchange(p.port, Buffer.from("?"))
    await eventually(() => p.logs.filter((l) => l.reason === "INTERNAL" && l.level === "error").length === 2)
    const messages = p.logs.filter((l) => l.reason === "INTERNAL").map((l) => l.message)
    expect(messages).toEqual([
      "first-bytes extractor threw: boom",
      'first-bytes extractor returned number, expected a string, "need-more" or an Error'
    ])
    await p.stop()
  })

  it("one that never decides is bounded by the handshake deadline and by 16 KB (a plain function passed in)", async () => {
    const calls: Array<number> = []
    const p = await embedded(tcp("ignored-by-the-extractor"), (b) => {
      calls.push(b.length)
      return "need-more"
    })
    if ("error" in p) throw new Error(p.error)
    const slow = await exchange(p.port, resp("AUTH", "alice", "pw-alice"))
    expect(slow.closed).toBe(true)
    expect(slow.ms).toBeGreaterThanOrEqual(450)
    await eventually(() => p.logs.some((l) => l.reason === "HANDSHAKE_TIMEOUT"))
    calls.length = 0
    const big = await exchange(
      p.port,
      Array.from({ length: 5 }, () => Buffer.alloc(4_000, 0x61))
    )
    expect(big.closed).toBe(true)
    expect(big.ms).toBeLessThan(450)
    await eventually(() =>
      p.logs.some((l) => l.reason === "BAD_REQUEST" && String(l.message).includes("larger than 16384"))
    )
    // Called again with all the bytes so far each time more arrived, and not asked again past 16 KB.
    expect(calls.length).toBeGreaterThan(1)
    expect(calls.every((n, i) => n % 4_000 === 0 && (i === 0 || n > calls[i - 1]!))).toBe(true)
    expect(calls.at(-1)).toBe(20_000)
    await p.stop()
  })

  it("a FirstBytes layer routes like the config's extractor", async () => {
    const example = path.resolve("fixtures/extractors/redis-user.mjs")
    const { extract } = (await import(pathToFileURL(example).href)) as { extract: FirstBytesExtractor }
    const p = await embedded(tcp("unused"), FirstBytes.layer(extract))
    if ("error" in p) throw new Error(p.error)
    const alice = client(p.port, "alice", "pw-alice")
    await alice.connect()
    expect(await serverPort(alice)).toBe(redisA.port)
    alice.disconnect()
    await p.stop()
  })
})

describe("loading the extractor", () => {
  it("fails the start with the key and why: missing module, missing export, not a function", async () => {
    const notFn = writeModule("not-fn.mjs", "export const extract = 42\nexport const other = () => ''\n")
    const missing = await embedded(tcp({ firstBytes: "./no/such/extractor.mjs#extract" }))
    expect(missing).toMatchObject({ error: expect.stringContaining("listeners.tcp.route.firstBytes: cannot load") })
    const noExport = await embedded(tcp({ firstBytes: `${notFn}#nope` }))
    expect(noExport).toMatchObject({
      error: expect.stringContaining('has no export "nope" (its exports: extract, other)')
    })
    const notAFunction = await embedded(tcp({ firstBytes: `${notFn}#extract` }))
    expect(notAFunction).toMatchObject({ error: expect.stringContaining('export "extract" of') })
  })

  it("checks the form when the config is decoded, and anchors the path at the config file's folder", () => {
    for (const bad of ["", "./x.mjs#", "./x.mjs#1bad", "#extract"]) {
      expect(() => decodeConfig(tcp({ firstBytes: bad }), "/etc/polyproxy")).toThrow(ConfigError)
    }
    expect(() => decodeConfig(tcp({ firstBytes: "./x.mjs", extra: 1 }), "/")).toThrow(/unknown key/)
    expect(() => decodeConfig(tcp("fixed", { defaultRoute: "x" }), "/")).toThrow(/defaultRoute/)
    const c = decodeConfig(tcp({ firstBytes: "extractors/x.mjs#route" }), "/etc/polyproxy")
    expect(c.listeners.tcp?.route).toEqual({ firstBytes: "/etc/polyproxy/extractors/x.mjs#route" })
    expect(decodeConfig(tcp({ firstBytes: "./x.mjs" }), "/srv").listeners.tcp?.route).toEqual({
      firstBytes: "/srv/x.mjs#default"
    })
  })

  it("polyproxy serve exits 1 with the reason; check-config exits 2 on a malformed form or a missing file", () => {
    const cli = path.resolve("src/cli.ts")
    const config = (route: string) =>
      writeModule(
        `c-${Math.random().toString(36).slice(2)}.yaml`,
        `admin: false\nlisteners: { tcp: { host: 127.0.0.1, port: 0, route: { firstBytes: "${route}" } } }\n`
      )
    writeModule("broken.mjs", "export const extract = (\n")
    const serve = spawnSync(process.execPath, [cli, "serve", "--config", config("./broken.mjs#extract")], {
      encoding: "utf8",
      timeout: 20_000
    })
    expect(serve.status).toBe(1)
    expect(serve.stderr).toContain("listeners.tcp.route.firstBytes: cannot load")
    expect(serve.stderr).toContain(path.join(dir, "broken.mjs"))
    const missing = spawnSync(process.execPath, [cli, "check-config", config("./missing.mjs#extract")], {
      encoding: "utf8",
      timeout: 20_000
    })
    expect(missing.status).toBe(2)
    expect(missing.stderr).toContain(`listeners.tcp.route.firstBytes: cannot read ${path.join(dir, "missing.mjs")}`)
    const check = spawnSync(process.execPath, [cli, "check-config", config("./x.mjs#not-an-identifier")], {
      encoding: "utf8",
      timeout: 20_000
    })
    expect(check.status).toBe(2)
    expect(check.stderr).toContain('listeners.tcp.route.firstBytes: expected "<module path>#<export name>"')
  })
})

describe("config: environment and protocol labels", () => {
  it("takes the route from POLYPROXY_LISTENERS_TCP_ROUTE as a string or JSON (paths against the working directory)", () => {
    const env = (route: string) =>
      decodeConfig(
        applyEnv(
          { listeners: { tcp: { port: 0, route: "x" } } },
          { POLYPROXY_LISTENERS_TCP_ROUTE: route, POLYPROXY_LISTENERS_TCP_DEFAULT_ROUTE: "d" },
          "/work"
        ),
        "/etc"
      ).listeners.tcp
    expect(env("sni")).toMatchObject({ route: "sni", defaultRoute: "d" })
    expect(env('{"firstBytes":"ex/r.mjs#extract"}')).toMatchObject({ route: { firstBytes: "/work/ex/r.mjs#extract" } })
  })

  it("has the 28 protocols of the table, and labels listeners by protocol, port, or the config", () => {
    expect(protocolLabels.length).toBe(28)
    expect(new Set(protocolTable.flatMap((p) => p.ports)).size).toBe(protocolTable.flatMap((p) => p.ports).length)
    expect(protocolForPort(6379)).toBe("redis")
    const label = (name: string, l: Record<string, unknown>) =>
      (
        decodeConfig({ listeners: { [name]: { port: 0, ...l } } }, "/") as {
          listeners: Record<string, { protocol: string }>
        }
      ).listeners[name]!.protocol
    expect(label("tcp", { port: 6379, route: "r" })).toBe("redis")
    expect(label("tcp", { port: 26257, route: "r" })).toBe("cockroachdb")
    expect(label("tcp", { port: 7001, route: "r" })).toBe("tcp")
    expect(label("tcp", { port: 6379, route: "r", protocol: "mqtt" })).toBe("mqtt")
    expect(label("postgres", {})).toBe("postgresql")
    expect(label("postgres", { protocol: "cockroachdb" })).toBe("cockroachdb")
    expect(label("mysql", { port: 4000 })).toBe("mysql")
    expect(() => label("tcp", { route: "r", protocol: "postgress" })).toThrow(
      /listeners.tcp.protocol: expected one of postgresql/
    )
  })
})
