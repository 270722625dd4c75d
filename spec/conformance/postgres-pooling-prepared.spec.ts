// Protocol-level named prepared statements through polyproxy's transaction pooling (README "PostgreSQL connection
// pooling"): real `pg` clients → the postgres listener → a pool of 2 server connections of a real PostgreSQL 15.
// A client's statements follow it onto whichever server connection runs its next transaction; what PostgreSQL answers
// a client that names a statement twice, or one it never prepared, is compared message for message with a direct
// connection.
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type PostgresServer, startPostgres } from "../support/backends/index.ts"
import { pooledRoute, startPoolingProxy } from "../support/pgPooling.ts"
import type { TestProxy } from "../support/proxy.ts"

const SIZE = 2

let db: PostgresServer
let proxy: TestProxy

beforeAll(async () => {
  db = await startPostgres({ databases: ["appdb", "tinydb", "refusedb"] })
  proxy = await startPoolingProxy({
    appdb: pooledRoute(db, { size: SIZE }),
    // Each server connection keeps 2 statements at most: the least recently used is closed for a third.
    tinydb: pooledRoute(db, { size: 1, maxPreparedStatements: 2 }),
    refusedb: pooledRoute(db, { size: SIZE, maxPreparedStatements: 0 })
  })
})

afterAll(async () => {
  await proxy?.stop()
  await db?.stop()
})

const config = (where: "proxy" | "direct", database = "appdb"): pg.ClientConfig => ({
  host: "127.0.0.1",
  port: where === "proxy" ? proxy.port("postgres") : db.port,
  user: db.user,
  password: db.userPassword,
  database,
  ssl: false
})

const connected = async (c: pg.ClientConfig): Promise<pg.Client> => {
  const client = new pg.Client(c)
  await client.connect()
  return client
}

type PgError = Error & { code?: string; severity?: string }

const failure = (p: Promise<unknown>): Promise<PgError> =>
  p.then(
    () => {
      throw new Error("expected an error")
    },
    (e: PgError) => e
  )

/** pg's Connection, below the Client: its messages out, and every message in (`_emitMessage`). */
interface Wire {
  parse(m: { name: string; text: string; types?: number[] }): void
  bind(m: { portal?: string; statement: string; values?: unknown[] }): void
  describe(m: { type: "S" | "P"; name: string }): void
  close(m: { type: "S" | "P"; name: string }): void
  execute(m: { portal?: string; rows?: number }): void
  sync(): void
  on(event: "message", f: (msg: { name: string; code?: string; message?: string }) => void): void
  off(event: "message", f: (msg: { name: string }) => void): void
  _emitMessage: boolean
}

/**
 * Runs `send` (extended-protocol messages ending in one Sync) as the client's active query and resolves with the
 * messages the server sent back up to its ReadyForQuery: names, and for an ErrorResponse its SQLSTATE and words.
 */
const exchange = (client: pg.Client, send: (w: Wire) => void): Promise<Array<string>> =>
  new Promise((resolve) => {
    const seen: Array<string> = []
    let wire: Wire | undefined
    // pg drops its active query at an ErrorResponse: the ReadyForQuery is watched here, not through the query.
    const record = (m: { name: string; code?: string; message?: string }) => {
      seen.push(m.name === "error" ? `error ${m.code} ${m.message}` : m.name)
      if (m.name !== "readyForQuery") return
      wire!.off("message", record)
      resolve(seen)
    }
    const noop = () => {}
    const submittable = {
      submit: (w: Wire) => {
        wire = w
        w._emitMessage = true
        w.on("message", record)
        send(w)
      },
      handleReadyForQuery: noop,
      handleError: noop,
      handleRowDescription: noop,
      handleDataRow: noop,
      handleCommandComplete: noop,
      handleEmptyQuery: noop,
      handlePortalSuspended: noop
    }
    client.query(submittable as unknown as pg.QueryConfig)
  })

/** The same exchanges on a fresh client through the proxy and on a direct one: their answers. */
const compared = async (
  steps: ReadonlyArray<(w: Wire) => void>
): Promise<{ proxy: Array<Array<string>>; direct: Array<Array<string>> }> => {
  const out = { proxy: [] as Array<Array<string>>, direct: [] as Array<Array<string>> }
  for (const where of ["proxy", "direct"] as const) {
    const c = await connected(config(where))
    for (const step of steps) out[where].push(await exchange(c, step))
    await c.end()
  }
  return out
}

describe("named prepared statements in transaction pooling", () => {
  it("runs pg named queries of many clients interleaved on 2 server connections, each on several of them", async () => {
    const clients = await Promise.all(Array.from({ length: 8 }, () => connected(config("proxy"))))
    const pids = new Map<number, Set<number>>()
    await Promise.all(
      clients.map(async (c, i) => {
        const seen = new Set<number>()
        pids.set(i, seen)
        const q1 = `select $1::int * ${i + 1} as v, pg_backend_pid() as pid`
        for (let round = 0; round < 12; round++) {
          // One name, a different statement per client: each client's "q1" is its own.
          const r = await c.query({ name: "q1", text: q1, values: [round] })
          expect(r.rows[0].v).toBe(round * (i + 1))
          seen.add(r.rows[0].pid)
          const t = await c.query({ name: "q2", text: "select $1::text || $2::text as s", values: [`c${i}`, round] })
          expect(t.rows[0].s).toBe(`c${i}${round}`)
        }
        // In a transaction too, where the statements were prepared on another server connection.
        await c.query("begin")
        expect((await c.query({ name: "q1", text: q1, values: [2] })).rows[0].v).toBe(2 * (i + 1))
        await c.query("commit")
      })
    )
    const all = new Set([...pids.values()].flatMap((s) => [...s]))
    expect(all.size).toBeLessThanOrEqual(SIZE)
    // Which server connection served which query above is up to scheduling; this part is not. `a` holds one server
    // connection in a transaction, `b` prepares "qx" on the other, `c` then holds that one, `a` lets go of its own:
    // `b`'s next "qx" can only run on the connection where it was never prepared.
    const [a, b, c] = clients as [pg.Client, pg.Client, pg.Client]
    const pid = async (client: pg.Client): Promise<number> =>
      (await client.query("select pg_backend_pid() as pid")).rows[0].pid
    const qx = "select $1::int + 100 as v, pg_backend_pid() as pid"
    await a.query("begin")
    const held = await pid(a)
    const prepared = await b.query({ name: "qx", text: qx, values: [1] })
    expect(prepared.rows[0]).toEqual({ v: 101, pid: expect.any(Number) })
    expect(prepared.rows[0].pid).not.toBe(held)
    await c.query("begin")
    expect(await pid(c)).toBe(prepared.rows[0].pid)
    await a.query("commit")
    const elsewhere = await b.query({ name: "qx", text: qx, values: [2] })
    expect(elsewhere.rows[0]).toEqual({ v: 102, pid: held })
    await c.query("commit")
    await Promise.all(clients.map((client) => client.end()))
  })

  it("answers a name prepared twice with 42P05 and an unknown one with 26000, as PostgreSQL does", async () => {
    const { proxy, direct } = await compared([
      (w) => {
        w.parse({ name: "s1", text: "select 1" })
        w.parse({ name: "s1", text: "select 2" })
        w.sync()
      },
      (w) => {
        w.bind({ statement: "nope" })
        w.execute({})
        w.sync()
      },
      (w) => {
        w.describe({ type: "S", name: "nope" })
        w.sync()
      },
      // s1 is still the first one.
      (w) => {
        w.bind({ statement: "s1" })
        w.execute({})
        w.sync()
      }
    ])
    expect(proxy).toEqual(direct)
    expect(proxy[0]).toEqual(["parseComplete", 'error 42P05 prepared statement "s1" already exists', "readyForQuery"])
    expect(proxy[1]).toEqual(['error 26000 prepared statement "nope" does not exist', "readyForQuery"])
  })

  it("Close answers in its turn, forgets the name, and a Close of nothing is no error", async () => {
    const { proxy, direct } = await compared([
      (w) => {
        w.parse({ name: "a", text: "select $1::int as n" })
        w.describe({ type: "S", name: "a" })
        w.close({ type: "S", name: "a" })
        w.close({ type: "S", name: "a" })
        w.bind({ statement: "a", values: ["1"] })
        w.sync()
      },
      // The name is free again.
      (w) => {
        w.parse({ name: "a", text: "select 2 as n" })
        w.bind({ statement: "a" })
        w.execute({})
        w.close({ type: "S", name: "a" })
        w.sync()
      }
    ])
    expect(proxy).toEqual(direct)
    expect(proxy[0]).toEqual([
      "parseComplete",
      "parameterDescription",
      "rowDescription",
      "closeComplete",
      "closeComplete",
      'error 26000 prepared statement "a" does not exist',
      "readyForQuery"
    ])
  })

  it("what a failed or skipped message would have done is not done: names stay as on a direct connection", async () => {
    const { proxy, direct } = await compared([
      // A Parse that fails creates nothing…
      (w) => {
        w.parse({ name: "x", text: "selec 1" })
        w.sync()
      },
      (w) => {
        w.parse({ name: "x", text: "select 1" })
        w.sync()
      },
      // …nor one skipped after an error; a Close skipped so closes nothing.
      (w) => {
        w.bind({ statement: "nope" })
        w.parse({ name: "y", text: "select 1" })
        w.close({ type: "S", name: "x" })
        w.sync()
      },
      (w) => {
        w.parse({ name: "y", text: "select 2" })
        w.describe({ type: "S", name: "x" })
        w.sync()
      }
    ])
    expect(proxy).toEqual(direct)
    expect(proxy[3]).toEqual(["parseComplete", "parameterDescription", "rowDescription", "readyForQuery"])
  })

  it("keeps at most maxPreparedStatements per server connection, closing the least recently used", async () => {
    // Two clients with two statements each on one server connection that keeps two: each turn prepares again what
    // the other's closed.
    const [a, b, monitor] = await Promise.all([1, 2, 3].map(() => connected(config("proxy", "tinydb"))))
    for (let round = 0; round < 3; round++) {
      for (const [c, base] of [
        [a!, 0],
        [b!, 10]
      ] as const) {
        for (const n of [base + 1, base + 2]) {
          const r = await c.query({ name: `s${n % 10}`, text: `select ${n} as n`, values: [] })
          expect(r.rows).toEqual([{ n }])
        }
      }
      const prepared = await monitor!.query("select count(*)::int as n from pg_prepared_statements")
      expect(prepared.rows[0].n).toBeLessThanOrEqual(2)
    }
    // Past its limit a client is refused, in a statement of its own, and goes on.
    const e = await failure(a!.query({ name: "s3", text: "select 3 as n", values: [] }))
    expect([e.code, e.message]).toEqual(["53400", "too many prepared statements: 2 is this pool's limit per client"])
    expect((await a!.query({ name: "s1", text: "select 1 as n", values: [] })).rows).toEqual([{ n: 1 }])
    await Promise.all([a!.end(), b!.end(), monitor!.end()])
  })

  it("a client's DEALLOCATE ALL or DISCARD ALL on a shared server connection breaks no other client's statements", async () => {
    const [a, b] = await Promise.all([1, 2].map(() => connected(config("proxy", "tinydb"))))
    const s9 = { name: "s9", text: "select 9 as n", values: [] }
    expect((await a!.query(s9)).rows).toEqual([{ n: 9 }])
    await b!.query("deallocate all")
    expect((await a!.query(s9)).rows).toEqual([{ n: 9 }])
    await b!.query("discard all")
    expect((await a!.query(s9)).rows).toEqual([{ n: 9 }])
    await Promise.all([a!.end(), b!.end()])
  })

  it("with maxPreparedStatements 0 refuses a named Parse with 0A000, the transaction aborted as after a failed Parse", async () => {
    const c = await connected(config("proxy", "refusedb"))
    const e = await failure(c.query({ name: "s1", text: "select $1::int as v", values: [1] }))
    expect([e.severity, e.code, e.message]).toEqual([
      "ERROR",
      "0A000",
      "named prepared statements are not supported in transaction pooling mode"
    ])
    expect((await c.query("select 2 as v")).rows).toEqual([{ v: 2 }])
    await c.query("begin")
    expect((await failure(c.query({ name: "s2", text: "select 3 as v" }))).code).toBe("0A000")
    expect((await failure(c.query("select 1"))).code).toBe("25P02")
    await c.query("rollback")
    expect((await c.query("select $1::int as v", [4])).rows).toEqual([{ v: 4 }])
    await c.end()
  })
})
