// Real `pg` clients → polyproxy's postgres listener → real PostgreSQL 15 servers with scram-sha-256.
import { createHash } from "node:crypto"
import * as net from "node:net"
import * as tls from "node:tls"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { decodeBackendMessage, decodeErrorFields, encodeStartup } from "../../src/codec/pg/index.ts"
import { ResolveError } from "../../src/domain/ResolveError.ts"
import { Resolver } from "../../src/services/Resolver.ts"
import { type PostgresServer, startPostgres } from "../support/backends/index.ts"
import { type Certs, makeCerts } from "../support/certs.ts"
import { closedPort } from "../support/net.ts"
import { copyRoundTrip } from "../support/pgCopy.ts"
import { eventually, startMtlsProxy, startTestProxy, type TestProxy } from "../support/proxy.ts"
import { expectShownOnlyInLog } from "../support/refusals.ts"

let db1: PostgresServer // appdb, otherdb; serves TLS so the proxy can dial it with upstream TLS
let db2: PostgresServer // seconddb: another server, to prove per-database routing
let certs: Certs
let proxy: TestProxy
let deadPort: number

beforeAll(async () => {
  ;[db1, db2, certs] = await Promise.all([
    startPostgres({ tls: true, databases: ["appdb", "otherdb"] }),
    startPostgres({ databases: ["seconddb"] }),
    makeCerts()
  ])
  deadPort = await closedPort()
  const table: Record<string, string> = {
    appdb: `127.0.0.1:${db1.port}`,
    otherdb: `127.0.0.1:${db1.port}`,
    seconddb: `127.0.0.1:${db2.port}`,
    meta: "169.254.169.254:5432",
    deaddb: `127.0.0.1:${deadPort}`
  }
  // A resolver with one entry per failure the client must be able to read.
  const resolver = Resolver.layerAsync({
    resolve: async (id) => {
      if (id === "colddb")
        throw new ResolveError({ code: "UNAVAILABLE", message: "colddb is waking up", retryAfter: 4 })
      if (id === "slowdb") return new Promise(() => {})
      if (id === "banned") throw new ResolveError({ code: "FORBIDDEN", message: "tenant banned is suspended" })
      if (id === "brokendb") throw new Error("route store unreachable")
      const endpoint = table[id]
      return endpoint ? { endpoint, metadata: id === "otherdb" ? { tls: { ca: certs.ca.cert } } : {} } : null
    }
  })
  proxy = await startTestProxy(
    {
      listeners: {
        postgres: { host: "127.0.0.1", port: 0, tls: { cert: certs.server.certPath, key: certs.server.keyPath } }
      },
      ssrf: { allow: ["127.0.0.0/8"] },
      timeouts: { handshake: 1, resolve: 0.5, connect: 2 },
      coldStart: { timeout: 1 }
    },
    resolver
  )
})

afterAll(async () => {
  await proxy?.stop()
  await Promise.all([db1?.stop(), db2?.stop()])
})

const config = (database: string, extra: Partial<pg.ClientConfig> = {}): pg.ClientConfig => ({
  host: "127.0.0.1",
  port: proxy.port("postgres"),
  user: db1.user,
  // each server has its own password for app: the right one proves the right server answered
  password: database === "seconddb" ? db2.userPassword : db1.userPassword,
  database,
  ssl: false,
  ...extra
})

const withClient = async <A>(
  database: string,
  f: (c: pg.Client) => Promise<A>,
  extra: Partial<pg.ClientConfig> = {}
) => {
  const c = new pg.Client(config(database, extra))
  await c.connect()
  try {
    return await f(c)
  } finally {
    await c.end()
  }
}

const connectError = async (database: string, extra: Partial<pg.ClientConfig> = {}) => {
  const c = new pg.Client(config(database, extra))
  c.on("error", () => {})
  const e = (await c.connect().then(
    () => {
      void c.end()
      return undefined
    },
    (err: unknown) => err
  )) as (Error & { code?: string; hint?: string }) | undefined
  if (e === undefined) throw new Error(`connecting to ${database} succeeded`)
  return e
}

/** Raw bytes in, everything the proxy answers until it closes. */
const rawExchange = (bytes: Buffer | undefined) =>
  new Promise<Buffer>((resolve, reject) => {
    const s = net.connect(proxy.port("postgres"), "127.0.0.1", () => {
      if (bytes) s.write(bytes)
    })
    const parts: Array<Buffer> = []
    s.on("data", (d) => parts.push(d))
    s.once("close", () => resolve(Buffer.concat(parts)))
    s.once("error", reject)
  })

const errorFields = (answer: Buffer) => {
  const m = decodeBackendMessage(answer)
  if (m._tag !== "Frame" || m.value.type !== "E")
    throw new Error(`expected an ErrorResponse, got ${answer.toString("hex")}`)
  const f = decodeErrorFields(m.value.body)
  if (f._tag !== "Frame") throw new Error("bad ErrorResponse")
  return f.value.fields
}

describe("postgres listener: the protocol through the proxy", () => {
  it("simple and extended queries, prepared statements, transactions", async () => {
    await withClient("appdb", async (c) => {
      expect((await c.query("select current_database() as db")).rows).toEqual([{ db: "appdb" }])
      await c.query("create table if not exists items (id int primary key, name text)")
      await c.query("truncate items")
      await c.query("begin")
      await c.query({ name: "ins", text: "insert into items values ($1, $2)", values: [1, "one"] })
      await c.query({ name: "ins", text: "insert into items values ($1, $2)", values: [2, "two"] })
      await c.query("rollback")
      expect((await c.query("select count(*)::int as n from items")).rows[0].n).toBe(0)
      await c.query("begin")
      await c.query({ name: "ins2", text: "insert into items values ($1, $2)", values: [3, "three"] })
      await c.query("commit")
      const r = await c.query({ text: "select name from items where id = $1", values: [3] })
      expect(r.rows).toEqual([{ name: "three" }])
      // a query error inside the session is Postgres's own, and the session goes on
      const e = (await c.query("select * from no_such_table").catch((x) => x)) as { code: string }
      expect(e.code).toBe("42P01")
      expect((await c.query("select 1 as ok")).rows).toEqual([{ ok: 1 }])
    })
  })

  it("streams 100k rows", async () => {
    await withClient("appdb", async (c) => {
      const r = await c.query("select g as id, md5(g::text) as h from generate_series(1, 100000) g")
      expect(r.rows.length).toBe(100_000)
      expect(r.rows[99_999]).toEqual({ id: 100_000, h: createHash("md5").update("100000").digest("hex") })
    })
  })

  it("COPY FROM STDIN and COPY TO STDOUT carry a few MB intact", async () => {
    await withClient("appdb", async (c) => {
      const { sent, back } = await copyRoundTrip(c, "blobs")
      expect(sent.length).toBeGreaterThan(3_000_000)
      expect(createHash("sha256").update(back).digest("hex")).toBe(createHash("sha256").update(sent).digest("hex"))
    })
  })

  it("LISTEN/NOTIFY across two proxied connections", async () => {
    const listener = new pg.Client(config("appdb"))
    await listener.connect()
    await listener.query("listen jobs")
    const got = new Promise<string | undefined>((r) => listener.once("notification", (n) => r(n.payload)))
    await withClient("appdb", (c) => c.query("select pg_notify('jobs', 'job-42')"))
    expect(await got).toBe("job-42")
    await listener.end()
  })

  it("routes two databases on two different servers in the same run", async () => {
    const [a, b] = await Promise.all([
      withClient("appdb", (c) => c.query("select current_setting('port') as port")),
      withClient("seconddb", (c) => c.query("select current_database() as db, current_setting('port') as port"))
    ])
    expect(Number(a.rows[0].port)).toBe(db1.port)
    expect(b.rows[0]).toEqual({ db: "seconddb", port: String(db2.port) })
  })

  it("cancels pg_sleep(30) within 2 s with the pg client's cancel", async () => {
    const c = new pg.Client(config("appdb"))
    await c.connect()
    const started = Date.now()
    const q = new pg.Query("select pg_sleep(30)")
    const failed = new Promise<{ code?: string }>((r) => q.once("error", r))
    c.query(q)
    await new Promise((r) => setTimeout(r, 300))
    // pg's Client#cancel(client, query) opens a new connection and sends a CancelRequest (not in @types/pg).
    ;(new pg.Client(config("appdb")) as unknown as { cancel(c: pg.Client, q: pg.Query): void }).cancel(c, q)
    expect((await failed).code).toBe("57014") // query_canceled
    expect(Date.now() - started).toBeLessThan(2_000)
    expect((await c.query("select 1 as alive")).rows).toEqual([{ alive: 1 }])
    await c.end()
  })

  it("drops a cancel request with an unknown key silently, as Postgres does", async () => {
    const packet = Buffer.alloc(16)
    packet.writeInt32BE(16, 0)
    packet.writeInt32BE(80877102, 4)
    packet.writeInt32BE(12345, 8)
    packet.writeInt32BE(67890, 12)
    expect((await rawExchange(packet)).length).toBe(0)
  })

  it("passes authentication through: a wrong password is Postgres's own 28P01", async () => {
    const e = await connectError("appdb", { password: "wrong" })
    expect(e.code).toBe("28P01")
    expect(e.message).toContain('password authentication failed for user "app"')
  })

  it("serves 50 concurrent clients", async () => {
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        withClient(i % 2 ? "appdb" : "seconddb", async (c) => (await c.query("select $1::int + 1 as v", [i])).rows[0].v)
      )
    )
    expect(results).toEqual(Array.from({ length: 50 }, (_, i) => i + 1))
  })
})

describe("postgres listener: TLS", () => {
  it("sslmode=require with certificate verification terminates TLS at the proxy", async () => {
    const r = await withClient("seconddb", (c) => c.query("select ssl from pg_stat_ssl where pid = pg_backend_pid()"), {
      ssl: { ca: certs.ca.cert, servername: "localhost" }
    })
    // TLS ended at the proxy; the hop to db2 (which has no TLS) is plain.
    expect(r.rows).toEqual([{ ssl: false }])
  })

  it("refuses a client that does not trust the proxy's certificate", async () => {
    const e = await connectError("appdb", { ssl: { ca: certs.rogueCa.cert, servername: "localhost" } })
    expect(e.message).toMatch(/self[- ]signed|unable to verify|certificate/i)
  })

  it("opens TLS to the backend when the route asks for it (metadata.tls)", async () => {
    const r = await withClient("otherdb", (c) => c.query("select ssl from pg_stat_ssl where pid = pg_backend_pid()"))
    expect(r.rows).toEqual([{ ssl: true }])
  })

  it("supports PostgreSQL 17 direct TLS (ALPN postgresql)", async () => {
    const answer = await new Promise<Buffer>((resolve, reject) => {
      const s = tls.connect(
        {
          port: proxy.port("postgres"),
          host: "127.0.0.1",
          ca: certs.ca.cert,
          servername: "localhost",
          ALPNProtocols: ["postgresql"]
        },
        () => s.write(encodeStartup({ user: "app", database: "appdb" }))
      )
      s.once("data", (d) => {
        resolve(d)
        s.destroy()
      })
      s.once("error", reject)
    })
    // AuthenticationSASL from the real server: the startup reached appdb's backend over direct TLS.
    const m = decodeBackendMessage(answer)
    expect(m._tag === "Frame" && m.value.type).toBe("R")
    expect(answer.toString("latin1")).toContain("SCRAM-SHA-256")
  })
})

describe("postgres listener: every failure is an ErrorResponse with its SQLSTATE", () => {
  // The last column: what only the proxy's log line (the one with the message's ref) may say.
  it.each([
    ["nosuchdb", "3D000", /^polyproxy: no route for "nosuchdb" \(ref [0-9a-f]{12}\)$/, []],
    ["banned", "28000", /suspended/, []],
    ["meta", "28000", /^polyproxy: the backend of "meta" is refused by the proxy's policy \(ref /, ["169.254.169.254"]],
    ["colddb", "57P03", /colddb did not become ready within 1s/, []],
    ["slowdb", "08006", /did not answer/, []],
    ["deaddb", "08006", /^polyproxy: cannot connect to the backend of "deaddb" \(ref /, ["127.0.0.1:", "ECONNREFUSED"]],
    ["brokendb", "XX000", /^polyproxy: internal error \(ref /, ["route store unreachable"]]
  ])("database %s → %s", async (database, code, message, hidden) => {
    const e = await connectError(database)
    expect(e.code).toBe(code)
    expect(e.message).toMatch(message)
    if (code === "57P03") expect(e.hint).toMatch(/retry in \d+ s/)
    expectShownOnlyInLog(e.message, proxy.logs, hidden)
  })

  // What PostgreSQL itself says to odd first packets is compared case by case in postgres-startup.spec.ts.
  it("a client that sends nothing is closed without a word after the handshake timeout, as PostgreSQL does", async () => {
    const started = Date.now()
    expect((await rawExchange(undefined)).length).toBe(0)
    expect(Date.now() - started).toBeGreaterThanOrEqual(900)
  })

  it("an oversized startup packet and garbage are closed without a word, as PostgreSQL does", async () => {
    const big = Buffer.alloc(12)
    big.writeInt32BE(20_000, 0)
    big.writeInt32BE(196608, 4)
    expect((await rawExchange(big)).length).toBe(0)
    expect((await rawExchange(Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))).length).toBe(0)
  })

  it("a wrong protocol version gets PostgreSQL's own 0A000", async () => {
    const v4 = Buffer.alloc(8)
    v4.writeInt32BE(8, 0)
    v4.writeInt32BE(4 << 16, 4)
    const fields = errorFields(await rawExchange(v4))
    expect(fields.get("C")).toBe("0A000")
    expect(fields.get("M")).toMatch(/^unsupported frontend protocol 4\.0: server supports 3\.0 to 3\.\d+$/)
  })

  it("logs and counts every refusal by reason", async () => {
    await eventually(() => proxy.logs.some((l) => l.reason === "HANDSHAKE_TIMEOUT"))
    const text = await fetch(`${proxy.adminUrl}/metrics`).then((r) => r.text())
    expect(text).toMatch(/polyproxy_errors_total\{[^}]*reason="not_found"[^}]*\} [1-9]/)
    expect(text).toMatch(/polyproxy_errors_total\{[^}]*reason="bad_request"[^}]*\} [1-9]/)
  })
})

describe("postgres listener: mTLS and routing keys", () => {
  let mtls: TestProxy
  afterAll(async () => mtls?.stop())

  it("requireClientCert accepts a client with a valid certificate and passes its subject to the resolver", async () => {
    const subjects: Array<string | undefined> = []
    mtls = await startMtlsProxy("postgres", certs, `127.0.0.1:${db1.port}`, subjects)
    const ssl = { ca: certs.ca.cert, cert: certs.client.cert, key: certs.client.key, servername: "localhost" }
    const r = await withClient("appdb", (c) => c.query("select 1 as ok"), { port: mtls.port("postgres"), ssl })
    expect(r.rows).toEqual([{ ok: 1 }])
    expect(subjects).toContain("CN=tenant-client")
  })

  it("requireClientCert rejects clients without a certificate or with one from another CA", async () => {
    const port = mtls.port("postgres")
    const none = await connectError("appdb", { port, ssl: { ca: certs.ca.cert, servername: "localhost" } })
    // Without a certificate, TLS itself refuses (alert "certificate required")...
    expect(`${none.code} ${none.message}`).toMatch(/CERTIFICATE_REQUIRED|certificate required/i)
    const rogue = await connectError("appdb", {
      port,
      ssl: { ca: certs.ca.cert, cert: certs.rogueClient.cert, key: certs.rogueClient.key, servername: "localhost" }
    })
    // ...with one from an unknown CA, the proxy refuses after the handshake, in words the client can read.
    expect(rogue.code).toBe("28000")
    expect(rogue.message).toContain("a valid client certificate is required")
    await eventually(() => mtls.logs.filter((l) => l.reason === "FORBIDDEN").length >= 2)
  })

  it("routeBy user-suffix routes app.tenant to tenant and logs in as app", async () => {
    const suffix = await startTestProxy({
      listeners: { postgres: { host: "127.0.0.1", port: 0, routeBy: "user-suffix" } },
      routes: { tenant2: `127.0.0.1:${db2.port}` },
      ssrf: { allow: ["127.0.0.0/8"] }
    })
    try {
      const r = await withClient("seconddb", (c) => c.query("select current_user as u, current_database() as db"), {
        port: suffix.port("postgres"),
        user: "app.tenant2"
      })
      expect(r.rows).toEqual([{ u: "app", db: "seconddb" }])
      const e = await connectError("seconddb", { port: suffix.port("postgres"), user: "app" })
      expect(e.code).toBe("28000")
    } finally {
      await suffix.stop()
    }
  })
})
