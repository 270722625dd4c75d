// Real `pg` clients → polyproxy's postgres listener in transaction pooling mode → a real PostgreSQL 15: a standalone
// BEGIN is answered by the proxy and sent to the server ahead of the client's next statement
// (src/listeners/postgres/pool/deferredBegin.ts, `pool.deferBegin`). The transaction is still one server transaction
// with PostgreSQL's own answers; what changes is that a client sitting after BEGIN holds no server connection.
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { isStandaloneBegin, withBegin, withoutBegin } from "../../src/listeners/postgres/pool/deferredBegin.ts"
import { encodeQuery } from "../../src/listeners/postgres/pool/serverMessages.ts"
import { type PostgresServer, startPostgres } from "../support/backends/index.ts"
import { appClientConfig, superuserClient } from "../support/pgAdmin.ts"
import { pooledRoute, startPoolingProxy } from "../support/pgPooling.ts"
import { type RawSession, rawSession } from "../support/pgRaw.ts"
import { type SplitReplies, startSplitReplies } from "../support/pgSplitReplies.ts"
import { eventually, type TestProxy } from "../support/proxy.ts"

let db: PostgresServer
let proxy: TestProxy
let monitor: pg.Client
let split: SplitReplies

beforeAll(async () => {
  db = await startPostgres({ databases: ["appdb", "plaindb", "splitdb"] })
  // An error and its ReadyForQuery 30 ms apart: time for the client to send more between them.
  split = await startSplitReplies(db.port, 30)
  monitor = await superuserClient(db, "appdb")
  await monitor.query("CREATE TABLE IF NOT EXISTS begin_spec (id int, note text)")
  await monitor.query(`GRANT ALL ON begin_spec TO ${db.user}`)
  proxy = await startPoolingProxy({
    // One server connection: whoever holds it, the others wait.
    appdb: pooledRoute(db, { size: 1 }),
    plaindb: pooledRoute(db, { size: 1, deferBegin: false }),
    splitdb: { ...pooledRoute(db, { size: 1 }), endpoint: `127.0.0.1:${split.port}` }
  })
})

afterAll(async () => {
  await proxy?.stop()
  await split?.close()
  await monitor?.end()
  await db?.stop()
})

/** A client of `database` through the proxy, or at `port` (PostgreSQL itself). */
const connected = async (database = "appdb", port = proxy.port("postgres")): Promise<pg.Client> => {
  const c = new pg.Client(appClientConfig(db, port, database))
  await c.connect()
  return c
}

/** Runs `f` with a client of `database` through the proxy, ended after. */
const withClient = async (f: (c: pg.Client) => Promise<void>, database = "appdb"): Promise<void> => {
  const c = await connected(database)
  try {
    await f(c)
  } finally {
    await c.end()
  }
}

type PgError = Error & { code?: string }

const failure = (p: Promise<unknown>): Promise<PgError> =>
  p.then(
    () => {
      throw new Error("expected an error")
    },
    (e: PgError) => e
  )

/** Whether `p` settles within `ms`. */
const settlesWithin = (p: Promise<unknown>, ms: number): Promise<boolean> =>
  Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))])

describe("a standalone BEGIN in transaction pooling", () => {
  it("is answered by the proxy: a client sitting after BEGIN holds no server connection, the next one runs", async () => {
    const a = await connected()
    const b = await connected()
    try {
      const begun = await a.query("begin")
      expect(begun.command).toBe("BEGIN")
      // The pool's one connection is free: b runs at once.
      const quick = b.query("select 1 as v")
      expect(await settlesWithin(quick, 2_000)).toBe(true)
      expect((await quick).rows[0].v).toBe(1)
      // a's transaction now takes it, from its first statement to its end; b waits meanwhile.
      await a.query("insert into begin_spec values (1, 'rolled back')")
      const waiting = b.query("select 2 as v")
      expect(await settlesWithin(waiting, 300)).toBe(false)
      await a.query("rollback")
      expect((await waiting).rows[0].v).toBe(2)
      const rows = await monitor.query("select count(*)::int as n from begin_spec where note = 'rolled back'")
      expect(rows.rows[0].n).toBe(0)
    } finally {
      await a.end()
      await b.end()
    }
  })

  it("runs the statements after it as one server transaction, committed by COMMIT", async () => {
    await withClient(async (c) => {
      await c.query("BEGIN;")
      const first = await c.query("select pg_current_xact_id()::text as x, now()::text as t")
      await c.query("insert into begin_spec values (2, 'committed')")
      const again = await c.query("select pg_current_xact_id()::text as x, now()::text as t")
      expect(again.rows[0]).toEqual(first.rows[0])
      expect((await c.query("commit")).command).toBe("COMMIT")
      const rows = await monitor.query("select count(*)::int as n from begin_spec where note = 'committed'")
      expect(rows.rows[0].n).toBe(1)
    })
  })

  it("keeps PostgreSQL's answers: a second BEGIN's warning, an error aborting the transaction, ROLLBACK", async () => {
    await withClient(async (c) => {
      const notices: Array<{ code: string | undefined; message: string | undefined }> = []
      c.on("notice", (n) => notices.push({ code: (n as PgError).code, message: n.message }))
      await c.query("begin")
      await c.query("begin")
      expect(notices).toEqual([{ code: "25001", message: "there is already a transaction in progress" }])
      expect((await failure(c.query("select 1/0"))).code).toBe("22012")
      const aborted = await failure(c.query("select 1"))
      expect(aborted.code).toBe("25P02")
      expect(aborted.message).toBe("current transaction is aborted, commands ignored until end of transaction block")
      expect((await c.query("rollback")).command).toBe("ROLLBACK")
      expect((await c.query("select 3 as v")).rows[0].v).toBe(3)
    })
  })

  it("sends a BEGIN with options to the server as it is", async () => {
    await withClient(async (c) => {
      await c.query("begin isolation level serializable")
      expect((await c.query("show transaction_isolation")).rows[0].transaction_isolation).toBe("serializable")
      await c.query("commit")
      await c.query("BEGIN READ ONLY")
      expect((await failure(c.query("insert into begin_spec values (3, 'read only')"))).code).toBe("25006")
      await c.query("rollback")
    })
  })

  it("costs nothing when the client ends or commits right after it", async () => {
    const a = await connected()
    await a.query("begin")
    await a.end()
    await withClient(async (c) => {
      await c.query("begin")
      expect((await c.query("commit")).command).toBe("COMMIT")
      expect((await c.query("select 4 as v")).rows[0].v).toBe(4)
    })
  })

  it("runs the transaction on a new server connection when the pool's one died while the client sat after BEGIN", async () => {
    await withClient(async (c) => {
      await c.query("select 1") // the pool's connection is open
      await c.query("begin")
      // Nothing of this transaction is on the server yet: its connection dying loses nothing.
      await monitor.query(
        "select pg_terminate_backend(pid) from pg_stat_activity where datname = 'appdb' and usename = $1",
        [db.user]
      )
      await eventually(async () => {
        const r = await monitor.query(
          "select count(*)::int as n from pg_stat_activity where datname = 'appdb' and usename = $1",
          [db.user]
        )
        return r.rows[0].n === 0
      })
      await new Promise((r) => setTimeout(r, 200)) // the proxy has read the connection's end by now
      await c.query("insert into begin_spec values (6, 'after a dead connection')")
      const xid = await c.query("select pg_current_xact_id()::text as x")
      expect((await c.query("select pg_current_xact_id()::text as x")).rows[0]).toEqual(xid.rows[0])
      await c.query("commit")
      const rows = await monitor.query("select count(*)::int as n from begin_spec where id = 6")
      expect(rows.rows[0].n).toBe(1)
    })
  })

  it("with deferBegin: false, BEGIN takes the server connection itself, as in PgBouncer", async () => {
    const a = await connected("plaindb")
    const b = await connected("plaindb")
    try {
      await a.query("begin")
      const waiting = b.query("select 5 as v")
      expect(await settlesWithin(waiting, 300)).toBe(false)
      await a.query("commit")
      expect((await waiting).rows[0].v).toBe(5)
    } finally {
      await a.end()
      await b.end()
    }
  })
})

/** What a client reads of each statement of `script`: its results and notices, or its error. */
const outcomes = async (c: pg.Client, script: ReadonlyArray<string>): Promise<Array<unknown>> => {
  const notices: Array<string> = []
  c.on("notice", (n) => notices.push(`${(n as PgError).code} ${n.message}`))
  const out: Array<unknown> = []
  for (const sql of script) {
    try {
      const r = (await c.query(sql)) as pg.QueryResult | Array<pg.QueryResult>
      out.push((Array.isArray(r) ? r : [r]).map((x) => ({ command: x.command, rows: x.rows })))
    } catch (e) {
      const { code, message, position } = e as PgError & { position?: string }
      out.push({ code, message, position })
    }
    out.push(notices.splice(0))
  }
  return out
}

describe("the BEGIN sent in the text of the client's next Query", () => {
  it.each([
    ["a syntax error (nothing ran, not even the BEGIN)", ["BEGIN", "SELEC 1", "SELECT 2 AS v", "ROLLBACK"]],
    ["an unknown column, its cursor position", ["BEGIN", "SELECT nocol FROM begin_spec", "ROLLBACK"]],
    ["a division by zero", ["BEGIN", "SELECT 1/0", "SELECT 2 AS v", "ROLLBACK"]],
    ["an error in a Query's second statement", ["BEGIN", "SELECT 1 AS a; SELECT nocol FROM begin_spec", "ROLLBACK"]],
    ["an empty Query", ["BEGIN", "", "SELECT 1 AS v", "ROLLBACK"]],
    ["a Query that starts with a comment", ["BEGIN", "-- first\nSELECT 1 AS v", "ROLLBACK"]],
    ["two statements in one Query", ["BEGIN", "SELECT 1 AS a; SELECT 2 AS b;", "ROLLBACK"]],
    ["COMMIT right after", ["BEGIN", "COMMIT", "SELECT 1 AS v"]],
    ["a ROLLBACK too many (its warning)", ["BEGIN", "ROLLBACK", "ROLLBACK"]],
    ["what cannot run in a transaction", ["BEGIN", "VACUUM begin_spec", "ROLLBACK"]],
    ["a second BEGIN", ["BEGIN", "BEGIN", "SELECT 1 AS v", "COMMIT"]]
  ])("gives what PostgreSQL gives: %s", async (_, script) => {
    const direct = await connected("appdb", db.port)
    try {
      const expected = await outcomes(direct, script)
      await withClient(async (c) => {
        expect(await outcomes(c, script)).toEqual(expected)
      })
    } finally {
      await direct.end()
    }
  })

  it("runs the BEGIN and the statement as one Query: the one difference a client can read is its text", async () => {
    await withClient(async (c) => {
      await c.query("BEGIN")
      expect((await c.query("SELECT current_query() AS q")).rows[0].q).toBe("BEGIN;SELECT current_query() AS q")
      await c.query("COMMIT")
      await c.query("BEGIN")
      // A text that starts with a comment keeps its own Query, the BEGIN one of its own before it.
      const text = "/* mine */ SELECT current_query() AS q"
      expect((await c.query(text)).rows[0].q).toBe(text)
      await c.query("COMMIT")
    })
  })

  const role = () => ({ user: db.user, password: db.userPassword })
  const q = encodeQuery

  /**
   * Writes `first`, then after `gap` `second`, on a raw session to `port` and `database`; the labels up to `readies`
   * ReadyForQuery.
   */
  const exchange = async (
    port: number,
    first: Buffer,
    second: Buffer,
    gap: number,
    readies: number,
    database = "appdb"
  ) => {
    const raw: RawSession = await rawSession(port, role(), database)
    try {
      raw.write(first)
      if (gap >= 0) await new Promise((r) => setTimeout(r, gap))
      raw.write(second)
      return await raw.untilReady(readies)
    } finally {
      raw.close()
    }
  }

  /** Labels as rawLabel writes them, `|` between. */
  const labels = (text: string): Array<string> => text.split("|")
  const failing = labels("C BEGIN|Z T|E 42601 at 1|Z E|E 25P02|Z E|C ROLLBACK|Z I|T|D|C SELECT 1|Z I")
  const failingFirst = Buffer.concat([q("BEGIN"), q("SELEC 1")])
  const failingSecond = Buffer.concat([q("SELECT 2"), q("ROLLBACK"), q("SELECT 3")])
  const ended = labels("C BEGIN|Z T|C COMMIT|Z I|T|D|C SELECT 1|Z I|C BEGIN|Z T|C ROLLBACK|Z I")
  const endedFirst = Buffer.concat([q("BEGIN"), q("COMMIT")])
  const endedSecond = Buffer.concat([q("SELECT 3"), q("BEGIN"), q("ROLLBACK")])
  it.each([
    ["behind a Query that fails before the BEGIN ran, in the same tick", failingFirst, failingSecond, -1, failing],
    ["behind a Query that fails before the BEGIN ran, 0 ms after", failingFirst, failingSecond, 0, failing],
    ["behind a Query that fails before the BEGIN ran, 5 ms after", failingFirst, failingSecond, 5, failing],
    [
      "while the Query carrying the BEGIN runs (then in the same transaction)",
      Buffer.concat([q("BEGIN"), q("SELECT pg_sleep(0.2)")]),
      Buffer.concat([q("SELECT nocol FROM begin_spec"), q("ROLLBACK")]),
      20,
      ["C BEGIN", "Z T", "T", "D", "C SELECT 1", "Z T", "E 42703 at 8", "Z E", "C ROLLBACK", "Z I"]
    ],
    ["behind a Query that ends the transaction it began, in the same tick", endedFirst, endedSecond, -1, ended],
    ["behind a Query that ends the transaction it began, 0 ms after", endedFirst, endedSecond, 0, ended]
  ])("keeps what a client sends %s in order, as PostgreSQL does", async (_, first, second, gap, expected) => {
    const readies = expected.filter((label) => label.startsWith("Z")).length
    const real = await exchange(db.port, first, second, gap, readies)
    expect(real).toEqual(expected)
    expect(await exchange(proxy.port("postgres"), first, second, gap, readies)).toEqual(real)
  })

  it("holds what comes between a failing Query's error and its ReadyForQuery until the two went again", async () => {
    // Through splitdb the error reaches the proxy 30 ms before its ReadyForQuery; the rest comes 15 ms after it.
    const real = await exchange(db.port, failingFirst, failingSecond, 15, 5)
    expect(real).toEqual(failing)
    expect(await exchange(proxy.port("postgres"), failingFirst, failingSecond, 15, 5, "splitdb")).toEqual(real)
  })
})

describe("withBegin", () => {
  it("puts BEGIN; in front of the text of one whole Query that starts with a keyword, and takes it out again", () => {
    const merged = withBegin([encodeQuery("select 1")])!
    expect(merged).toEqual(encodeQuery("BEGIN;select 1"))
    expect(withoutBegin(merged)).toEqual(encodeQuery("select 1"))
  })
  it.each([
    ["an empty Query", [encodeQuery("")]],
    ["a comment first", [encodeQuery("-- x\nselect 1")]],
    ["a space first", [encodeQuery(" select 1")]],
    ["a Query with a message behind it", [Buffer.concat([encodeQuery("select 1"), encodeQuery("select 2")])]],
    ["a Query not whole", [encodeQuery("select 1").subarray(0, 8)]],
    ["two held reads", [encodeQuery("select 1"), encodeQuery("select 2")]],
    ["a Parse", [Buffer.from([0x50, 0, 0, 0, 8, 0, 0, 0, 0])]]
  ])("leaves %s alone", (_, held) => {
    expect(withBegin(held)).toBeUndefined()
  })
})

describe("isStandaloneBegin", () => {
  const at = (text: string): [Buffer, number, number] => {
    const q = encodeQuery(text)
    return [q, 0, q.readInt32BE(1)]
  }
  it.each(["BEGIN", "begin", "Begin;", "BEGIN;"])("%s is one", (text) => {
    expect(isStandaloneBegin(...at(text))).toBe(true)
  })
  it.each(["BEGIN ;", "BEGIN TRANSACTION", "BEGIX", "begin; select 1", "START TRANSACTION", "BEGIN\n", "ROLLBACK"])(
    "%j is not",
    (text) => {
      expect(isStandaloneBegin(...at(text))).toBe(false)
    }
  )
  it("is not when the message is not whole in the buffer", () => {
    const [q, i, length] = at("BEGIN")
    expect(isStandaloneBegin(q.subarray(0, q.length - 1), i, length)).toBe(false)
  })
})
