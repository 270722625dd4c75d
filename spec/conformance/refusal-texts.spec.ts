// What a refused client may read (issue 20): a Resolver that throws (async adapter) or dies (Effect layer) with a
// secret, a backend that refuses the connection, a backend address the SSRF guard refuses. Real clients of every
// listener (psql, pg, mysql2, the mongodb driver, curl, undici, nodemailer) get their protocol's error with the reason
// and a ref, and none of the detail; the proxy's log line with that ref has the detail.
import { execFile } from "node:child_process"
import { Effect, Layer } from "effect"
import { MongoClient } from "mongodb"
import mysql from "mysql2/promise"
import nodemailer from "nodemailer"
import pg from "pg"
import { request } from "undici"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { parseEndpoint } from "../../src/domain/Endpoint.ts"
import { ResolveError } from "../../src/domain/ResolveError.ts"
import { Resolver } from "../../src/services/Resolver.ts"
import { closedPort } from "../support/net.ts"
import { startTestProxy, type TestProxy } from "../support/proxy.ts"
import { expectShownOnlyInLog, refusalLine } from "../support/refusals.ts"

const SECRET = "db driver exploded reading /srv/tenants/secret.db (password hunter2)"

/**
 * A closed port per dead resource ("dead-1", "dead-2", …): one per client and resolver, so that no client meets a
 * circuit breaker another one opened.
 */
const deadPorts = new Map<string, number>()
let deadCount = 0

/** Where each resource goes: the first label of its name picks the case ("crash", "dead-3.example", "meta.test"). */
const endpointOf = (id: string): string | undefined => {
  const key = id.split(".")[0]!
  if (deadPorts.has(key)) return `127.0.0.1:${deadPorts.get(key)}`
  if (key === "meta") return "169.254.169.254:80"
  return undefined
}

const asyncResolver = Resolver.layerAsync({
  resolve: (id) => {
    if (id.startsWith("crash")) throw new Error(`boom: ${SECRET}`)
    const endpoint = endpointOf(id)
    return endpoint === undefined ? null : { endpoint }
  }
})

/** The same resolver as an Effect layer whose lookup dies (a throw inside Effect.sync). */
const effectResolver = Layer.succeed(Resolver, {
  ...Resolver.makeStatic({}),
  resolve: (id) => {
    if (id.startsWith("crash")) {
      return Effect.sync((): never => {
        throw new Error(`boom: ${SECRET}`)
      })
    }
    const endpoint = endpointOf(id) === undefined ? undefined : parseEndpoint(endpointOf(id)!)
    return typeof endpoint === "object"
      ? Effect.succeed({ resourceId: id, endpoint, metadata: {} })
      : Effect.fail(new ResolveError({ code: "NOT_FOUND", message: `no route for "${id}"` }))
  }
})

const config = {
  listeners: {
    postgres: { host: "127.0.0.1", port: 0 },
    mysql: { host: "127.0.0.1", port: 0 },
    mongodb: { host: "127.0.0.1", port: 0 },
    smtp: { host: "127.0.0.1", port: 0 },
    http: { host: "127.0.0.1", port: 0 }
  },
  ssrf: { allow: ["127.0.0.0/8"] },
  timeouts: { connect: 2 }
}

const caught = async (run: () => Promise<unknown>): Promise<Error & Record<string, unknown>> => {
  const e = await run().then(
    () => undefined,
    (err: unknown) => err as Error & Record<string, unknown>
  )
  if (e === undefined) throw new Error("the client was not refused")
  return e
}

/** Each real client: the text it shows its user for resource `name` ("crash", "dead", "meta"). */
const clients: ReadonlyArray<readonly [string, (p: TestProxy, name: string) => Promise<string>]> = [
  [
    "psql",
    (p, name) =>
      new Promise((resolve) =>
        execFile(
          "psql",
          [`host=127.0.0.1 port=${p.port("postgres")} dbname=${name} user=app sslmode=disable connect_timeout=5`],
          { timeout: 10_000, env: { ...process.env, PGPASSWORD: "x" } },
          (_err, _stdout, stderr) => resolve(stderr)
        )
      )
  ],
  [
    "pg",
    async (p, name) => {
      const c = new pg.Client({ host: "127.0.0.1", port: p.port("postgres"), database: name, user: "app" })
      c.on("error", () => {})
      return (await caught(() => c.connect())).message
    }
  ],
  [
    "mysql2",
    async (p, name) =>
      (
        await caught(() =>
          mysql.createConnection({
            host: "127.0.0.1",
            port: p.port("mysql"),
            user: "app",
            password: "x",
            database: name
          })
        )
      ).message
  ],
  [
    "mongodb",
    async (p, name) => {
      const c = new MongoClient(`mongodb://127.0.0.1:${p.port("mongodb")}/${name}?directConnection=true`, {
        serverSelectionTimeoutMS: 5_000
      })
      try {
        return (await caught(() => c.db().collection("x").findOne({}))).message
      } finally {
        await c.close()
      }
    }
  ],
  [
    "nodemailer",
    async (p, name) => {
      const t = nodemailer.createTransport({
        host: "127.0.0.1",
        port: p.port("smtp"),
        secure: false,
        name: `${name}.example`
      })
      try {
        return String((await caught(() => t.sendMail({ from: "a@b.example", to: "c@d.example", text: "x" }))).response)
      } finally {
        t.close()
      }
    }
  ],
  [
    "curl",
    (p, name) =>
      new Promise((resolve, reject) =>
        execFile(
          "curl",
          ["-sS", "-H", `Host: ${name}.test`, `http://127.0.0.1:${p.port("http")}/`],
          { timeout: 10_000 },
          (err, stdout) => (err ? reject(err) : resolve(String(JSON.parse(stdout).error)))
        )
      )
  ],
  [
    "undici",
    async (p, name) => {
      const r = await request(`http://127.0.0.1:${p.port("http")}/`, { headers: { host: `${name}.test` } })
      return String(((await r.body.json()) as { error: unknown }).error)
    }
  ]
]

const resolvers = [
  ["async adapter (throws)", asyncResolver],
  ["Effect layer (dies)", effectResolver]
] as const

const proxies = new Map<string, TestProxy>()
/** What each client showed for a crashing resolver, per resolver, ref taken out: both must read the same. */
const crashTexts = new Map<string, Map<string, string>>()

beforeAll(async () => {
  for (let i = 1; i <= resolvers.length * clients.length; i++) deadPorts.set(`dead-${i}`, await closedPort())
  for (const [name, layer] of resolvers) proxies.set(name, await startTestProxy(config, layer))
})

afterAll(async () => {
  for (const p of proxies.values()) await p.stop()
})

describe.each(resolvers)("refusal texts: resolver as %s", (resolverName) => {
  const proxy = () => proxies.get(resolverName)!

  it.each(clients)(
    "%s: a resolver's exception is an internal error with a ref; the log has the exception",
    async (client, show) => {
      const text = await show(proxy(), "crash")
      expect(text).toMatch(/polyproxy: internal error \(ref [0-9a-f]{12}\)/)
      // psql's own words around ours; pg and the others show ours alone or inside their protocol's framing.
      const line = expectShownOnlyInLog(text, proxy().logs, [SECRET])
      expect(line).toMatchObject({ level: "error", reason: "INTERNAL", source: "resolver" })
      expect(String(line.message)).toMatch(/^resolver failed for crash(\.test|\.example)?: /)
      const texts = crashTexts.get(client) ?? new Map<string, string>()
      // psql names the proxy's port it connected to, which differs between the two proxies.
      texts.set(resolverName, text.replace(/\(ref [0-9a-f]{12}\)/, "(ref)").replace(/port \d+/, "port"))
      crashTexts.set(client, texts)
    }
  )

  it.each(clients)("%s: a backend that refuses the connection is not named to the client", async (_, show) => {
    const name = `dead-${++deadCount}`
    const text = await show(proxy(), name)
    expect(text).toMatch(/polyproxy: cannot connect to the backend/)
    const line = expectShownOnlyInLog(text, proxy().logs, [`127.0.0.1:${deadPorts.get(name)}`, "ECONNREFUSED"])
    expect(line).toMatchObject({ reason: "CONNECT_FAILED", source: "backend" })
  })

  it.each(clients)("%s: an SSRF refusal is the proxy's policy; the address stays in the log", async (_, show) => {
    const text = await show(proxy(), "meta")
    expect(text).toMatch(/polyproxy: the backend of "meta(\.test|\.example)?" is refused by the proxy's policy/)
    const line = expectShownOnlyInLog(text, proxy().logs, ["169.254.169.254"])
    expect(line).toMatchObject({ level: "warn", reason: "FORBIDDEN", source: "policy" })
  })
})

describe("refusal texts: the async adapter and the Effect layer", () => {
  it("word a resolver's failure the same to every client", () => {
    expect(crashTexts.size).toBe(clients.length)
    for (const [client, texts] of crashTexts) {
      expect(texts.size, client).toBe(2)
      const [a, b] = [...texts.values()]
      expect(a, client).toBe(b)
    }
  })

  it("log it the same, with the exception's stack", () => {
    for (const p of proxies.values()) {
      const line = p.logs.find((l) => l.reason === "INTERNAL" && l.resource === "crash")
      expect(line?.message).toBe(`resolver failed for crash: boom: ${SECRET}`)
      expect(String(line?.stack)).toMatch(/^Error: boom: .*\n\s+at /)
    }
  })

  it("the ref of a refusal finds its line", async () => {
    const text = await clients[1]![1](proxies.get(resolvers[0][0])!, "crash")
    expect(refusalLine(proxies.get(resolvers[0][0])!.logs, text).resource).toBe("crash")
  })
})
