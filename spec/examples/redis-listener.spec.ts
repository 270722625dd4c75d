// examples/redis-listener: a listener type of a program's own, added through the public API without editing
// polyproxy. The example is typechecked, then run as its own process (`node examples/redis-listener/main.ts`) in
// front of two real redis-servers; redis-cli and ioredis log in as ACL users and land on their user's server, an
// unknown user hears redis-server's own WRONGPASS, a client that speaks before logging in hears its NOAUTH.
import { execFile, spawnSync } from "node:child_process"
import * as net from "node:net"
import * as path from "node:path"
import { Redis } from "ioredis"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type RedisServer, startRedis } from "../support/backends/index.ts"
import { type CliProxy, startCliProxy } from "../support/cliProxy.ts"
import { redisClient } from "../support/redis.ts"

const example = path.resolve("examples/redis-listener")

let a: RedisServer
let b: RedisServer
/** A Redis with a password (requirepass): what a client that has not logged in hears from redis-server itself. */
let guarded: RedisServer
let proxy: CliProxy
const clients: Array<Redis> = []

beforeAll(async () => {
  ;[a, b, guarded] = await Promise.all([startRedis(), startRedis(), startRedis({ password: "secret" })])
  // The servers' default user has no password: these admin connections log in as it.
  for (const [server, user] of [
    [a, "alice"],
    [b, "bob"]
  ] as const) {
    const admin = new Redis({ host: server.host, port: server.port, lazyConnect: true })
    clients.push(admin)
    await admin.call("ACL", "SETUSER", user, "on", `>pw-${user}`, "~*", "+@all")
  }
  proxy = await startCliProxy(
    `
admin: { host: 127.0.0.1, port: 0 }
log: { format: json }
listeners:
  cache: { type: redis, host: 127.0.0.1, port: 0 }
routes:
  alice: "127.0.0.1:${a.port}"
  bob: "127.0.0.1:${b.port}"
ssrf: { allow: ["127.0.0.0/8"] }
timeouts: { handshake: 2 }
`,
    {},
    (file) => [path.join(example, "main.ts"), file]
  )
}, 120_000)

afterAll(async () => {
  for (const c of clients) c.disconnect()
  proxy?.stop()
  await Promise.all([a?.stop(), b?.stop(), guarded?.stop()])
})

/** What redis-cli printed (stdout, then stderr), through the proxy or to `port`. */
const redisCli = (args: ReadonlyArray<string>, port = proxy.port("cache")) =>
  new Promise<string>((resolve) =>
    execFile("redis-cli", ["-h", "127.0.0.1", "-p", String(port), ...args], (_, out, err) =>
      resolve(`${out}${err}`.trim())
    )
  )

const client = (username: string, password: string) => redisClient(clients, proxy.port("cache"), username, password)

/** What ioredis reports when its login is refused: the server's answer as an error event, then connect() as closed. */
const loginErrors = async (username: string, password: string) => {
  const c = client(username, password)
  const errors: Array<string> = []
  c.on("error", (e: Error) => errors.push(e.message))
  await expect(c.connect()).rejects.toThrow()
  return errors
}

/** Raw bytes in; what came back once the proxy (or `port`) closed, or once nothing more came for `quietMs`. */
const exchange = (bytes: string, port = proxy.port("cache"), quietMs = 300) =>
  new Promise<{ data: string; closed: boolean }>((resolve) => {
    const s = net.connect(port, "127.0.0.1", () => s.write(bytes))
    let data = ""
    let timer = setTimeout(() => done(false), quietMs * 3)
    const done = (closed: boolean) => {
      clearTimeout(timer)
      s.destroy()
      resolve({ data, closed })
    }
    s.on("data", (d) => {
      data += d
      clearTimeout(timer)
      timer = setTimeout(() => done(false), quietMs)
    })
    s.once("close", () => done(true))
    s.once("error", () => done(true))
  })

const WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."

describe("examples/redis-listener", () => {
  it("typechecks against the package's public API (its own tsconfig)", () => {
    const tsc = path.resolve("node_modules/typescript/bin/tsc")
    const r = spawnSync(process.execPath, [tsc, "--noEmit", "-p", example], { encoding: "utf8", timeout: 180_000 })
    expect(r.error).toBeUndefined()
    // Only the example's own errors count here: the rest of the tree has its own typecheck.
    expect(r.stdout.split("\n").filter((l) => l.startsWith("examples/") || l.startsWith(example))).toEqual([])
    expect(r.stdout).not.toContain("error TS18003") // no inputs found: the check would prove nothing
  }, 200_000)

  it("routes redis-cli by its AUTH user, RESP2 and RESP3 (HELLO 3 AUTH)", async () => {
    expect(
      await redisCli(["--user", "alice", "--pass", "pw-alice", "--no-auth-warning", "CONFIG", "GET", "port"])
    ).toBe(`port\n${a.port}`)
    expect(await redisCli(["--user", "bob", "--pass", "pw-bob", "--no-auth-warning", "CONFIG", "GET", "port"])).toBe(
      `port\n${b.port}`
    )
    expect(await redisCli(["-3", "--user", "bob", "--pass", "pw-bob", "--no-auth-warning", "ACL", "WHOAMI"])).toBe(
      "bob"
    )
  })

  it("routes ioredis by its user; the backend checks the password", async () => {
    const alice = client("alice", "pw-alice")
    await alice.connect()
    await alice.set("greeting", "hello from alice")
    expect(await alice.get("greeting")).toBe("hello from alice")
    expect(Number(((await alice.config("GET", "port")) as Array<string>)[1])).toBe(a.port)
    const bob = client("bob", "pw-bob")
    await bob.connect()
    expect(await bob.get("greeting")).toBeNull()
    // Known user, wrong password: routed, and refused by the user's own server.
    expect(await loginErrors("alice", "nope")).toContain(WRONGPASS)
  })

  it("answers an unknown user with redis-server's WRONGPASS, then as a server does a client not logged in", async () => {
    expect(await loginErrors("mallory", "x")).toContain(WRONGPASS)
    const cli = ["--user", "mallory", "--pass", "x", "--no-auth-warning", "PING"]
    expect(await redisCli(cli)).toBe(await redisCli(cli, guarded.port))
    expect(await redisCli(cli)).toContain(WRONGPASS)
    for (const bytes of [
      "*3\r\n$4\r\nAUTH\r\n$7\r\nmallory\r\n$1\r\nx\r\n*1\r\n$4\r\nPING\r\n",
      "AUTH x\r\nGET k\r\n",
      "*5\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$7\r\nmallory\r\n$1\r\nx\r\nQUIT\r\n"
    ]) {
      const real = await exchange(bytes, guarded.port)
      expect(real.data.startsWith(`-${WRONGPASS}`)).toBe(true)
      expect(await exchange(bytes)).toEqual(real)
    }
    // The connection has no backend to go to: another login needs another connection.
    const again = await exchange("AUTH mallory x\r\nAUTH bob pw-bob\r\n")
    expect(again).toEqual({
      data: `-${WRONGPASS}\r\n-ERR polyproxy: to log in as another user, connect again\r\n`,
      closed: true
    })
  })

  it("answers commands before the login as a Redis with passwords does, then routes the login", async () => {
    for (const bytes of [
      "PING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\nAUTH a b c\r\n",
      "*1\r\n$4\r\nQUIT\r\n",
      "*1\r\nxx\r\n"
    ]) {
      expect(await exchange(bytes)).toEqual(await exchange(bytes, guarded.port))
    }
    // Redis 7.2's words (7.0 lacked "<proto>").
    expect(await exchange("*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n")).toEqual({
      data: "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n",
      closed: false
    })
    const then = await exchange("PING\r\nAUTH bob pw-bob\r\nPING\r\n")
    expect(then).toEqual({ data: "-NOAUTH Authentication required.\r\n+OK\r\n+PONG\r\n", closed: false })
  })

  it("counts its connections under the listener's name, with its type and label", async () => {
    const text = await (await fetch(`${proxy.adminUrl}/metrics`)).text()
    expect(text).toMatch(
      /^polyproxy_connections_accepted_total\{listener="cache",protocol="redis",type="redis"\} \d+$/m
    )
    expect(text).toMatch(
      /^polyproxy_errors_total\{listener="cache",protocol="redis",type="redis",reason="not_found"\} [1-9]/m
    )
    const ready = (await (await fetch(`${proxy.adminUrl}/readyz`)).json()) as { listeners: Record<string, unknown> }
    expect(ready.listeners.cache).toMatchObject({ type: "redis", protocol: "redis", port: proxy.port("cache") })
  })
})
