// Real `pg` clients → polyproxy's postgres listener in transaction pooling mode → a real PostgreSQL 15 whose role
// `app` has a SCRAM-SHA-256 password. The proxy authenticates each client itself (the role's secret looked up
// through a superuser login), logs in to the server with the keys the client's proof gave it, and runs the clients'
// transactions on a pool of 3 server connections. Where a direct connection can be compared, it is.
import { createHash } from "node:crypto"
import type * as net from "node:net"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { decodeBackendMessage } from "../../src/codec/pg/index.ts"
import { encodeQuery } from "../../src/listeners/postgres/pool/serverMessages.ts"
import { type PostgresServer, startPostgres } from "../support/backends/index.ts"
import { makeCerts } from "../support/certs.ts"
import { superuserClient } from "../support/pgAdmin.ts"
import { copyRoundTrip } from "../support/pgCopy.ts"
import { pooledRoute, startPoolingProxy } from "../support/pgPooling.ts"
import { eventually, type TestProxy } from "../support/proxy.ts"

const SIZE = 3

let db: PostgresServer
let proxy: TestProxy
/** A direct superuser connection to watch the server with. */
let monitor: pg.Client

beforeAll(async () => {
  db = await startPostgres({ databases: ["appdb", "otherdb", "waitdb"] })
  monitor = await superuserClient(db, "postgres")
  proxy = await startPoolingProxy({
    appdb: pooledRoute(db, { size: SIZE }),
    // One server connection, one client waiting at most, for one second at most.
    waitdb: pooledRoute(db, { size: 1, maxWaiting: 1, maxWait: 1 }),
    // A lookup login the server refuses (answers are cached per lookup user: another one than appdb's).
    otherdb: pooledRoute(db, { size: SIZE }, { user: "lookup_ghost", password: "nope" }),
    // Ignores no startup parameter (refused before any lookup: the database need not exist).
    strictdb: pooledRoute(db, { ignoreStartupParameters: [] })
  })
})

afterAll(async () => {
  await proxy?.stop()
  await monitor?.end()
  await db?.stop()
})

const viaProxy = (extra: Partial<pg.ClientConfig> = {}): pg.ClientConfig => ({
  host: "127.0.0.1",
  port: proxy.port("postgres"),
  user: db.user,
  password: db.userPassword,
  database: "appdb",
  ssl: false,
  ...extra
})

const direct = (extra: Partial<pg.ClientConfig> = {}): pg.ClientConfig => ({
  ...viaProxy(),
  host: db.host,
  port: db.port,
  ...extra
})

const connected = async (config: pg.ClientConfig): Promise<pg.Client> => {
  const c = new pg.Client(config)
  await c.connect()
  return c
}

type PgError = Error & { code?: string; severity?: string; hint?: string }

const failure = (p: Promise<unknown>): Promise<PgError> =>
  p.then(
    () => {
      throw new Error("expected an error")
    },
    (e: PgError) => e
  )

const connectError = async (config: pg.ClientConfig): Promise<PgError> => {
  const c = new pg.Client(config)
  c.on("error", () => {})
  return failure(c.connect())
}

/**
 * A `pg` client whose startup message also carries `extra`, as other drivers send (pg has no option for
 * extra_float_digits): its own getStartupConf (not in @types/pg) with the keys added.
 */
const clientSending = (config: pg.ClientConfig, extra: Readonly<Record<string, string>>): pg.Client => {
  const c = new pg.Client(config)
  const own = c as unknown as { getStartupConf: () => Record<string, string> }
  const base = own.getStartupConf.bind(c)
  own.getStartupConf = () => ({ ...base(), ...extra })
  return c
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Server backends of the pooled database and role, now. */
const serverBackends = async (): Promise<number> =>
  (
    await monitor.query<{ n: number }>(
      "select count(*)::int as n from pg_stat_activity where datname = 'appdb' and usename = 'app'"
    )
  ).rows[0]!.n

/** Samples serverBackends until the returned function is called; it resolves with the highest count seen. */
const sampleBackends = () => {
  let max = 0
  let stopped = false
  const loop = (async () => {
    while (!stopped) {
      max = Math.max(max, await serverBackends())
      await sleep(10)
    }
  })()
  return async () => {
    stopped = true
    await loop
    return max
  }
}

/**
 * Runs pg_sleep(30) on `c`, and once the server runs it, cancels it with pg's Client#cancel, which opens a new
 * connection with `config` and sends a CancelRequest (not in @types/pg). Resolves with the query's error.
 */
const cancelledSleep = async (c: pg.Client, config: pg.ClientConfig): Promise<PgError> => {
  const q = new pg.Query("select pg_sleep(30)")
  const failed = new Promise<PgError>((r) => q.once("error", r))
  c.query(q)
  await eventually(async () => {
    const r = await monitor.query("select count(*)::int as n from pg_stat_activity where query = 'select pg_sleep(30)'")
    return r.rows[0].n === 1
  })
  ;(new pg.Client(config) as unknown as { cancel(c: pg.Client, q: pg.Query): void }).cancel(c, q)
  return failed
}

describe("transaction pooling through the postgres listener", () => {
  it("authenticates a SCRAM client itself and runs its queries on the real server", async () => {
    const c = await connected(viaProxy())
    const r = await c.query("select current_user as who, current_database() as db, $1::text as echo", ["hi"])
    expect(r.rows).toEqual([{ who: "app", db: "appdb", echo: "hi" }])
    await c.end()
  })

  it("tells the client its server's ParameterStatus values and a BackendKeyData of the proxy's own", async () => {
    const login = async (config: pg.ClientConfig) => {
      const c = new pg.Client(config)
      const params = new Map<string, string>()
      const connection = (c as unknown as { connection: NodeJS.EventEmitter }).connection
      connection.on("parameterStatus", (m: { parameterName: string; parameterValue: string }) =>
        params.set(m.parameterName, m.parameterValue)
      )
      await c.connect()
      const processId = (c as unknown as { processID: number }).processID
      const serverPid = (await c.query<{ pid: number }>("select pg_backend_pid() as pid")).rows[0]!.pid
      await c.end()
      return { params, processId, serverPid }
    }
    const [mine, real] = [
      await login(viaProxy({ application_name: "pooled" })),
      await login(direct({ application_name: "pooled" }))
    ]
    expect([...mine.params.keys()].sort()).toEqual([...real.params.keys()].sort())
    for (const name of [
      "server_version",
      "server_encoding",
      "client_encoding",
      "DateStyle",
      "TimeZone",
      "IntervalStyle",
      "integer_datetimes",
      "standard_conforming_strings",
      "is_superuser",
      "session_authorization",
      "application_name"
    ]) {
      expect([name, mine.params.get(name)]).toEqual([name, real.params.get(name)])
    }
    // The key is the proxy's: no server process has that id.
    expect(mine.processId).toBeGreaterThan(0)
    expect(mine.processId).not.toBe(mine.serverPid)
  })

  it("refuses a wrong password and an unknown role with PostgreSQL's own 28P01, word for word", async () => {
    for (const [user, password] of [
      [db.user, "wrong"],
      ["nobody", "whatever"]
    ] as const) {
      const mine = await connectError(viaProxy({ user, password }))
      const real = await connectError(direct({ user, password }))
      expect([mine.severity, mine.code, mine.message]).toEqual([real.severity, real.code, real.message])
      expect(mine.code).toBe("28P01")
      expect(mine.message).toBe(`password authentication failed for user "${user}"`)
    }
  })

  it("answers 08006 without naming the lookup login when the lookup itself fails", async () => {
    const e = await connectError(viaProxy({ database: "otherdb" }))
    expect(e.code).toBe("08006")
    expect(e.message).toMatch(/^polyproxy: cannot connect to the backend of "otherdb" \(ref [0-9a-f]{12}\)$/)
    expect(e.message).not.toMatch(/lookup_ghost|password|pg_authid|127\.0\.0\.1/)
  })

  it("refuses clients past the pool's limits: 53300 when the queue is full, 57P03 once maxWait has passed", async () => {
    const waitdb = viaProxy({ database: "waitdb" })
    const holder = await connected(waitdb)
    await holder.query("begin")
    await holder.query("select 1") // holds the pool's only server connection (from its first statement on)
    const waiting = await connected(waitdb)
    waiting.on("error", () => {})
    const waited = failure(waiting.query("select 1"))
    await sleep(500) // its query has reached the pool's queue
    const third = await connected(waitdb)
    third.on("error", () => {})
    const full = await failure(third.query("select 1"))
    expect([full.severity, full.code, full.message]).toEqual(["FATAL", "53300", "sorry, too many clients already"])
    const late = await waited
    expect([late.severity, late.code]).toEqual(["FATAL", "57P03"])
    expect(late.hint).toMatch(/retry later/)
    // The holder's transaction was never disturbed.
    expect((await holder.query("select 1 as one")).rows).toEqual([{ one: 1 }])
    await holder.query("commit")
    await holder.end()
  })

  it("refuses a startup parameter it cannot keep per client, in PgBouncer's words", async () => {
    const e = await connectError(viaProxy({ statement_timeout: 1000 }))
    expect([e.code, e.message]).toEqual(["08P01", "unsupported startup parameter: statement_timeout"])
  })

  it("accepts pgjdbc's startup parameters, dropping extra_float_digits (pool.ignoreStartupParameters' default)", async () => {
    // What pgjdbc before 42.7.6 sends at startup besides user, database and client_encoding (which pg sends itself).
    const jdbc = {
      DateStyle: "ISO",
      TimeZone: "UTC",
      extra_float_digits: "2",
      application_name: "PostgreSQL JDBC Driver"
    }
    const c = clientSending(viaProxy(), jdbc)
    await c.connect()
    try {
      const r = await c.query("select current_setting('extra_float_digits') as efd, current_setting('TimeZone') as tz")
      // Not forwarded: the server's own default, on whichever server connection ran the query.
      expect(r.rows).toEqual([{ efd: "1", tz: "UTC" }])
    } finally {
      await c.end()
    }
    // Case-insensitive, as PostgreSQL reads parameter names.
    const upper = clientSending(viaProxy(), { EXTRA_FLOAT_DIGITS: "3" })
    await upper.connect()
    expect((await upper.query("select 1 as one")).rows).toEqual([{ one: 1 }])
    await upper.end()
  })

  it("still refuses a startup parameter not in pool.ignoreStartupParameters", async () => {
    const refused = async (config: pg.ClientConfig, extra: Record<string, string>) => {
      const c = clientSending(config, extra)
      c.on("error", () => {})
      return failure(c.connect())
    }
    const geqo = await refused(viaProxy(), { extra_float_digits: "2", geqo: "off" })
    expect([geqo.severity, geqo.code, geqo.message]).toEqual(["FATAL", "08P01", "unsupported startup parameter: geqo"])
    // A route that ignores none refuses even extra_float_digits.
    const strict = await refused(viaProxy({ database: "strictdb" }), { extra_float_digits: "2" })
    expect([strict.code, strict.message]).toEqual(["08P01", "unsupported startup parameter: extra_float_digits"])
  })

  it("runs 20 interleaved clients on 3 server connections, one per transaction from BEGIN to COMMIT", async () => {
    const clients = await Promise.all(Array.from({ length: 20 }, () => connected(viaProxy())))
    const maxBackends = sampleBackends()
    const pids = new Set<number>()
    await Promise.all(
      clients.map(async (c, i) => {
        for (let round = 0; round < 5; round++) {
          expect((await c.query(`select ${i} + ${round} as v`)).rows[0].v).toBe(i + round)
          // Parameterized: the unnamed statement of the extended protocol.
          expect((await c.query("select $1::int * 2 as v", [i])).rows[0].v).toBe(i * 2)
          await c.query("begin")
          const first = (await c.query<{ pid: number }>("select pg_backend_pid() as pid")).rows[0]!.pid
          await c.query("select pg_sleep(0.005)")
          const again = (await c.query<{ pid: number }>("select pg_backend_pid() as pid, $1::int as r", [round]))
            .rows[0]!.pid
          expect(again).toBe(first)
          pids.add(first)
          await c.query("commit")
        }
      })
    )
    const max = await maxBackends()
    await Promise.all(clients.map((c) => c.end()))
    expect(max).toBeGreaterThan(0)
    expect(max).toBeLessThanOrEqual(SIZE)
    expect(pids.size).toBeLessThanOrEqual(SIZE)
  })

  it("holds a 300 KB message sent while every server connection is busy, and runs it once one is free", async () => {
    // Past the 16 KB a waiting client may send before the proxy pauses it (sharedReads.ts `holdLimit`).
    const holders = await Promise.all(Array.from({ length: SIZE }, () => connected(viaProxy())))
    for (const h of holders) {
      await h.query("begin")
      await h.query("select 1") // a transaction holds its server connection from its first statement on
    }
    const waiting = await connected(viaProxy())
    const big = "x".repeat(300 * 1024)
    const answer = waiting.query<{ n: number; tail: string }>("select length($1)::int as n, right($1, 3) as tail", [
      `${big}end`
    ])
    await sleep(300)
    for (const h of holders) await h.query("commit")
    expect((await answer).rows[0]).toEqual({ n: big.length + 3, tail: "end" })
    expect((await waiting.query("select 1 as one")).rows[0].one).toBe(1)
    await Promise.all([...holders, waiting].map((c) => c.end()))
  })

  it("passes PostgreSQL's errors through, and the client goes on", async () => {
    const c = await connected(viaProxy())
    const [mine, real] = [
      await failure(c.query("selec 1")),
      await failure(connected(direct()).then((d) => d.query("selec 1").finally(() => d.end())))
    ]
    expect([mine.code, mine.message]).toEqual([real.code, real.message])
    expect(mine.code).toBe("42601")
    expect((await c.query("select 1 as one")).rows).toEqual([{ one: 1 }])
    expect((await failure(c.query("select $1::int", ["x"]))).code).toBe("22P02")
    // A failed transaction stays failed, on its server connection, until the client rolls it back.
    await c.query("begin")
    expect((await failure(c.query("select 1/0"))).code).toBe("22012")
    expect((await failure(c.query("select 1"))).code).toBe("25P02")
    await c.query("rollback")
    expect((await c.query("select 2 as two")).rows).toEqual([{ two: 2 }])
    await c.end()
  })

  it("runs named prepared statements (more in postgres-pooling-prepared.spec.ts), errors in PostgreSQL's words", async () => {
    const c = await connected(viaProxy())
    for (let i = 0; i < 4; i++) {
      expect((await c.query({ name: "s1", text: "select $1::int as v", values: [i] })).rows).toEqual([{ v: i }])
    }
    await c.query("begin")
    expect((await c.query({ name: "s1", text: "select $1::int as v", values: [7] })).rows).toEqual([{ v: 7 }])
    // A Parse the server refuses aborts the transaction, as on a direct connection.
    expect((await failure(c.query({ name: "s2", text: "selec 3" }))).code).toBe("42601")
    expect((await failure(c.query("select 1"))).code).toBe("25P02")
    await c.query("rollback")
    expect((await c.query({ name: "s2", text: "select 3 as v" })).rows).toEqual([{ v: 3 }])
    await c.end()
  })

  it("keeps each client's application_name and SET TimeZone whichever server connection runs it", async () => {
    const clients = await Promise.all(
      Array.from({ length: 6 }, (_, i) => connected(viaProxy({ application_name: `client-${i}` })))
    )
    await clients[0]!.query("set timezone to 'Asia/Tokyo'")
    await Promise.all(
      clients.map(async (c, i) => {
        for (let round = 0; round < 8; round++) {
          const r = await c.query(
            "select current_setting('application_name') as app, current_setting('TimeZone') as tz"
          )
          expect(r.rows[0].app).toBe(`client-${i}`)
          if (i === 0) expect(r.rows[0].tz).toBe("Asia/Tokyo")
          else expect(r.rows[0].tz).not.toBe("Asia/Tokyo")
        }
      })
    )
    await Promise.all(clients.map((c) => c.end()))
  })

  it("brings a server connection back in line after a client's SET when the others' startup values are all alike", async () => {
    // Alike clients share one set of tracked values: a server connection that served one of them needs no SET for the
    // next (session.ts `dropServer`), unless that client changed a value since.
    const clients = await Promise.all(Array.from({ length: 6 }, () => connected(viaProxy({}))))
    const before = (await clients[1]!.query("select current_setting('TimeZone') as tz")).rows[0].tz
    await clients[0]!.query("set timezone to 'Asia/Tokyo'")
    await Promise.all(
      clients.map(async (c, i) => {
        for (let round = 0; round < 8; round++) {
          const r = await c.query("select current_setting('TimeZone') as tz")
          expect(r.rows[0].tz).toBe(i === 0 ? "Asia/Tokyo" : before)
        }
      })
    )
    await Promise.all(clients.map((c) => c.end()))
  })

  it("keeps a client that stops reading in order: its results and the queries behind them wait, the others run", async () => {
    // pg logs in; then its socket is the test's: pg's reader removed, paused. Queries one by one, each a transaction of
    // its own answered in one server read: once the client's buffers are full, a transaction's last bytes wait in the
    // proxy and the client's reads are paused (session.ts `transactionEnded`). Then a big result, which fills them
    // mid-transaction (the server connection paused).
    const c = await connected(viaProxy())
    c.on("error", () => {}) // its socket is destroyed below, under pg's feet
    const stream = (c as unknown as { connection: { stream: net.Socket } }).connection.stream
    stream.removeAllListeners("data")
    stream.pause()
    const sizes = [...Array.from({ length: 800 }, (_, i) => 7_000 + i), 4_000_000, 10]
    for (const n of sizes) {
      stream.write(encodeQuery(`select repeat('x', ${n}) as x`))
      await sleep(1)
    }
    // While its replies wait in the kernel's and the proxy's buffers, the other clients are served.
    const others = await Promise.all([connected(viaProxy()), connected(viaProxy())])
    for (let i = 0; i < 5; i++) {
      const r = await Promise.all(others.map((o) => o.query("select 1 as one")))
      expect(r.map((x) => x.rows[0].one)).toEqual([1, 1])
    }
    // Now it reads: every message in order, every row whole.
    const types: string[] = []
    const rows: number[] = []
    let buf = Buffer.alloc(0)
    await new Promise<void>((resolve, reject) => {
      stream.on("data", (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk])
        for (;;) {
          const d = decodeBackendMessage(buf, 16 * 1024 * 1024)
          if (d._tag === "Invalid") return reject(new Error(d.reason))
          if (d._tag === "Need") return
          buf = buf.subarray(d.size)
          types.push(d.value.type)
          if (d.value.type === "D") rows.push(d.value.body.readInt32BE(2))
          if (types.filter((t) => t === "Z").length === sizes.length) resolve()
        }
      })
      stream.resume()
    })
    expect(types).toEqual(sizes.flatMap(() => ["T", "D", "C", "Z"]))
    expect(rows).toEqual(sizes)
    stream.destroy()
    await Promise.all(others.map((o) => o.end()))
  })

  it("COPY FROM STDIN and COPY TO STDOUT carry a few MB intact", async () => {
    const c = await connected(viaProxy())
    const { sent, back } = await copyRoundTrip(c, "pooled_blobs")
    expect(createHash("sha256").update(back).digest("hex")).toBe(createHash("sha256").update(sent).digest("hex"))
    await c.end()
  })

  it("cancels pg_sleep(30): the cancel reaches the server connection running the client's query", async () => {
    const c = await connected(viaProxy())
    const started = Date.now()
    expect((await cancelledSleep(c, viaProxy())).code).toBe("57014") // query_canceled
    expect(Date.now() - started).toBeLessThan(10_000)
    expect((await c.query("select 1 as alive")).rows).toEqual([{ alive: 1 }])
    await c.end()
  })

  it("closes the server connection of a client gone mid-transaction: its transaction is rolled back", async () => {
    const c = await connected(viaProxy())
    c.on("error", () => {})
    await c.query("create table if not exists pooled_gone (v int)")
    await c.query("truncate pooled_gone")
    await c.query("begin")
    await c.query("insert into pooled_gone values (1)")
    const pid = (await c.query<{ pid: number }>("select pg_backend_pid() as pid")).rows[0]!.pid
    ;(c as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy()
    await eventually(async () => {
      const r = await monitor.query("select count(*)::int as n from pg_stat_activity where pid = $1", [pid])
      return r.rows[0].n === 0
    })
    const d = await connected(viaProxy())
    expect((await d.query("select count(*)::int as n from pooled_gone")).rows).toEqual([{ n: 0 }])
    await d.end()
  })

  it("tells a client whose server connection dies mid-transaction, closes it, and serves the others on", async () => {
    const c = await connected(viaProxy())
    const heard: Array<PgError> = []
    c.on("error", (e: PgError) => heard.push(e))
    await c.query("begin")
    const pid = (await c.query<{ pid: number }>("select pg_backend_pid() as pid")).rows[0]!.pid
    await monitor.query("select pg_terminate_backend($1)", [pid])
    await eventually(() => heard.length >= 2)
    // The server's own FATAL first (terminating connection due to administrator command), then the proxy's.
    expect(heard.slice(0, 2).map((e) => [e.severity, e.code])).toEqual([
      ["FATAL", "57P01"],
      ["FATAL", "08006"]
    ])
    expect((await failure(c.query("select 1"))).message).toMatch(/not queryable|terminated|ended/i)
    const d = await connected(viaProxy())
    expect((await d.query("select 1 as one")).rows).toEqual([{ one: 1 }])
    await d.end()
  })

  it("serves a client that logs in over TLS the same way: SCRAM, queries, a transaction, cancel", async () => {
    const certs = await makeCerts()
    const tlsProxy = await startPoolingProxy(
      { appdb: pooledRoute(db, { size: SIZE }) },
      { tls: { cert: certs.server.certPath, key: certs.server.keyPath } }
    )
    try {
      const config = viaProxy({ port: tlsProxy.port("postgres"), ssl: { ca: certs.ca.cert, servername: "localhost" } })
      const c = await connected(config)
      expect((c as unknown as { connection: { stream: { encrypted?: boolean } } }).connection.stream.encrypted).toBe(
        true
      )
      await c.query("begin")
      expect((await c.query("select $1::text as v", ["over tls"])).rows).toEqual([{ v: "over tls" }])
      await c.query("commit")
      expect((await cancelledSleep(c, config)).code).toBe("57014")
      await c.end()
    } finally {
      await tlsProxy.stop()
    }
  })

  it("gives the server connections back when clients end: none left busy or in a transaction", async () => {
    const clients = await Promise.all(Array.from({ length: 5 }, () => connected(viaProxy())))
    await Promise.all(clients.map((c) => c.query("select 1")))
    await Promise.all(clients.map((c) => c.end()))
    await eventually(async () => {
      const r = await monitor.query(
        "select count(*)::int as n from pg_stat_activity where datname = 'appdb' and usename = 'app' and state <> 'idle'"
      )
      return r.rows[0].n === 0
    })
    expect(await serverBackends()).toBeLessThanOrEqual(SIZE)
  })
})
