// `polyproxy routes [FILE]` as a user runs it: the routes of the file it is given (not the embedded example's), and
// those of its resolver: a real Redis hash listed with HGETALL, an HTTP route service refused by name.
import { Redis } from "ioredis"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type RedisServer, startRedis } from "../support/backends/index.ts"
import { configFolder, runCli as run } from "../support/cliRun.ts"
import { closedPort } from "../support/net.ts"

const { write } = configFolder("routes")

const listeners = "listeners: { tcp: { port: 0, route: appdb } }\n"
const password = "routes:s3cret"
let redis: RedisServer

beforeAll(async () => {
  redis = await startRedis({ password })
  const admin = new Redis(redis.url)
  await admin.hset("spec:routes", {
    "billing.example": "10.0.0.7:5432",
    "*.tenants.example": '{"endpoint":"[fd00::5]:8080","metadata":{"tier":"gold"}}',
    sleepy: '{"status":"cold","endpoint":"10.0.0.9:5432","retryAfter":3}',
    broken: "no-port-here"
  })
  admin.disconnect()
}, 60_000)

afterAll(async () => {
  await redis?.stop()
})

describe("polyproxy routes", () => {
  it("prints the static routes of the FILE it is given, sorted, whichever way FILE is named", async () => {
    const file = write(
      "static.yaml",
      `${listeners}routes:\n  zeta: "10.0.0.1:5432"\n  Alpha: "[fd00::1]:80"\n  "*.shop.example": { endpoint: "10.0.0.2:443", timeout: 2 }\n`
    )
    const expected = "*.shop.example\t10.0.0.2:443\nalpha\t[fd00::1]:80\nzeta\t10.0.0.1:5432\n"
    for (const args of [[file], ["--config", file], [`--config=${file}`]]) {
      const r = await run(["routes", ...args])
      expect(r.stderr).toBe("")
      expect([r.code, r.stdout]).toEqual([0, expected])
    }
    const env = await run(["routes"], { POLYPROXY_CONFIG: file })
    expect(env.stdout).toBe(expected)
    // Without any FILE: the embedded example's.
    const embedded = await run(["routes"])
    expect(embedded.stdout).toBe("*.tenants.example\t127.0.0.1:8081\nappdb\t127.0.0.1:5432\n")
  })

  it("says so on stderr when the file has no routes, and exits 0", async () => {
    const file = write("none.yaml", listeners)
    const r = await run(["routes", file])
    expect([r.code, r.stdout]).toEqual([0, ""])
    expect(r.stderr).toBe(`polyproxy: no static routes in ${file}\n`)
  })

  it("lists a Redis resolver's hash, each entry as a client would get it", async () => {
    const file = write(
      "redis.yaml",
      `${listeners}resolver: { type: redis, url: "${redis.url}", key: "spec:routes" }\nroutes: { ignored: "10.9.9.9:1" }\n`
    )
    const r = await run(["routes", file])
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    expect(r.stdout.split("\n")).toEqual([
      "*.tenants.example\t[fd00::5]:8080",
      "billing.example\t10.0.0.7:5432",
      expect.stringMatching(/^broken\t-\tINTERNAL: redis route "broken" for "broken": /),
      "sleepy\t-\tUNAVAILABLE: sleepy is starting",
      ""
    ])
  })

  it("exits 1 when Redis cannot be reached, naming it without its password", async () => {
    const port = await closedPort()
    const file = write(
      "redis-down.yaml",
      `${listeners}resolver: { type: redis, url: "redis://:${password}@127.0.0.1:${port}", timeout: 1 }\n`
    )
    const r = await run(["routes", file])
    expect(r.code).toBe(1)
    expect(r.stdout).toBe("")
    expect(r.stderr).toContain(
      `polyproxy: cannot list the routes in redis redis://127.0.0.1:${port} hash polyproxy:routes: connect ECONNREFUSED`
    )
    expect(r.stderr).not.toContain(password)
  })

  it("refuses to list an HTTP route service's routes, with exit 2 and why", async () => {
    const file = write(
      "http.yaml",
      `${listeners}resolver: { type: http, url: "https://ops:pw@routes.internal/lookup?env=prod", token: t0k }\n`
    )
    const r = await run(["routes", file])
    expect([r.code, r.stdout]).toEqual([2, ""])
    expect(r.stderr).toBe(
      "polyproxy: the http resolver (https://routes.internal/lookup) answers one resource id at a time and cannot list its routes; list them in the route service itself\n"
    )
  })

  it("refuses a config serve would refuse, like check-config", async () => {
    const file = write("no-listeners.yaml", 'routes: { appdb: "10.0.0.1:5432" }\n')
    const r = await run(["routes", file])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain("listeners: none configured")
  })
})
