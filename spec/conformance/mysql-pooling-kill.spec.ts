// Transaction pooling and a KILL that arrives late: a pooled client's `KILL [QUERY] <id>` is translated to the server
// connection that client holds at that moment, but its query may end, and the connection go back to the pool, before
// the KILL reaches MariaDB. The connection must serve nobody until the KILL has been answered, or the next client's
// query on it would be killed instead (src/listeners/mysql/killClaim.ts). Real mysql2 clients → polyproxy (pools of
// one server connection) → a gate that can hold KILL statements back (spec/support/mysqlKillGate.ts) → a real MariaDB
// 10.11. The first query waits on a row lock a direct session holds, so each step happens when the spec says.
import { randomBytes } from "node:crypto"
import mysql from "mysql2/promise"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type MariaDbServer, startMariaDb } from "../support/backends/index.ts"
import type { MysqlError } from "../support/mysql.ts"
import { type KillGate, startKillGate } from "../support/mysqlKillGate.ts"
import { poolOf } from "../support/pgLateCancel.ts"
import { eventually, startTestProxy, type TestProxy } from "../support/proxy.ts"

const poolerPassword = randomBytes(12).toString("hex")

let db: MariaDbServer
let gate: KillGate
let proxy: TestProxy
/** Direct sessions: one holds the row lock, one (PROCESS) sees every session on the server. */
let locker: mysql.Connection
let monitor: mysql.Connection

beforeAll(async () => {
  db = await startMariaDb({
    databases: ["killdb", "issuerdb"],
    setup: [
      `CREATE USER 'pooler'@'%' IDENTIFIED BY '${poolerPassword}'`,
      "GRANT SELECT ON mysql.* TO 'pooler'@'%'",
      "GRANT PROCESS ON *.* TO 'app'@'%'"
    ]
  })
  gate = await startKillGate(db)
  // Both pools go through the gate: the issuer's KILL must reach the same server address as its target's connection.
  const pooled = { endpoint: `127.0.0.1:${gate.port}`, metadata: { pool: { mode: "transaction", size: 1 } } }
  proxy = await startTestProxy({
    listeners: {
      mysql: { host: "127.0.0.1", port: 0, auth: { route: "users", user: "pooler", password: poolerPassword } }
    },
    routes: { users: { endpoint: `127.0.0.1:${db.port}` }, killdb: pooled, issuerdb: pooled },
    ssrf: { allow: ["127.0.0.0/8"] }
  })
  const direct = { host: "127.0.0.1", port: db.port, user: db.user, password: db.password, database: "killdb" }
  locker = await mysql.createConnection(direct)
  monitor = await mysql.createConnection(direct)
  await locker.query("CREATE TABLE t (id INT PRIMARY KEY)")
  await locker.query("INSERT INTO t VALUES (1)")
}, 120_000)

afterAll(async () => {
  gate?.open()
  await locker?.end()
  await monitor?.end()
  await proxy?.stop()
  await gate?.close()
  await db?.stop()
})

const connect = async (database: string): Promise<mysql.Connection> => {
  const c = await mysql.createConnection({
    host: "127.0.0.1",
    port: proxy.port("mysql"),
    user: db.user,
    password: db.password,
    database
  })
  c.on("error", () => {})
  return c
}

const outcome = <A>(p: Promise<A>): Promise<A | MysqlError> => p.catch((e: unknown) => e as MysqlError)

/** Server sessions running `sql` now. */
const running = async (sql: string): Promise<number> => {
  const [rows] = await monitor.query<mysql.RowDataPacket[]>(
    "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO = ?",
    [sql]
  )
  return Number(rows[0]!.n)
}

type Row = mysql.RowDataPacket & { id: number; v: number }

const bSql = "SELECT CONNECTION_ID() AS id, SLEEP(1) AS v"

/**
 * A's query runs on the pool's one server connection; C's `kill` of A is translated and held at the gate; A's query
 * ends; B asks for the connection. Then the gate lets the KILL through. Returns B's row, what C's KILL got, A's server
 * connection id and the pool as B waited (undefined: B's query ran at once, before the KILL reached the server).
 */
const lateKill = async (kill: string) => {
  const [a, b, c] = await Promise.all([connect("killdb"), connect("killdb"), connect("issuerdb")])
  try {
    const [[{ id: serverId }]] = (await a.query("SELECT CONNECTION_ID() AS id")) as unknown as [[{ id: number }]]
    await locker.query("BEGIN")
    await locker.query("SELECT id FROM t WHERE id = 1 FOR UPDATE")
    gate.shut()
    const aSql = "SELECT id FROM t WHERE id = 1 FOR UPDATE"
    const aDone = outcome(a.query(aSql))
    await eventually(async () => (await running(aSql)) === 1)
    const killed = outcome(c.query(`${kill} ${a.threadId}`))
    await eventually(() => gate.held() === 1)
    // A's query ends before the KILL reaches the server: the connection is given back.
    await locker.query("COMMIT")
    const aResult = await aDone
    if (aResult instanceof Error) throw aResult
    const bDone = outcome(b.query<Row[]>(bSql))
    let seen: Awaited<ReturnType<typeof poolOf>> | undefined
    await eventually(async () => {
      if ((await running(bSql)) === 1) return true
      const row = await poolOf(proxy.adminUrl, "killdb")
      if (row.cancelling === 1 && row.waiting === 1) seen = row
      return seen !== undefined
    })
    gate.open()
    const killResult = await killed
    const bResult = await bDone
    if (bResult instanceof Error) throw bResult
    // Whether A's own connection outlived the KILL (a KILL QUERY leaves it; a KILL CONNECTION ends it, as MariaDB's).
    const aAfter = await outcome(a.query("SELECT 1"))
    return { b: bResult[0][0]!, killResult, serverId, seen, aAlive: !(aAfter instanceof Error) }
  } finally {
    gate.open()
    await locker.query("ROLLBACK")
    await Promise.all([a, b, c].map((x) => x.end().catch(() => x.destroy())))
  }
}

describe("transaction pooling: a KILL in flight", () => {
  it("KILL QUERY that reaches the server after its query ended does not kill the next client's query", async () => {
    const { b, killResult, serverId, seen, aAlive } = await lateKill("KILL QUERY")
    expect(killResult).not.toBeInstanceOf(Error)
    expect(aAlive).toBe(true)
    expect(b.v).toBe(0) // SLEEP(1) ran to its end: 1 would say it was interrupted
    expect(b.id).toBe(serverId) // the same server connection, kept
    // B waited while the connection, given back, was out of service.
    expect(seen).toMatchObject({ open: 1, idle: 0, cancelling: 1, waiting: 1 })
    expect(await poolOf(proxy.adminUrl, "killdb")).toMatchObject({ open: 1, idle: 1, cancelling: 0, waiting: 0 })
  })

  it("KILL CONNECTION that reaches the server late: the client and its old server connection are closed, the next client gets another", async () => {
    const { b, killResult, serverId, seen, aAlive } = await lateKill("KILL CONNECTION")
    expect(killResult).not.toBeInstanceOf(Error)
    expect(aAlive).toBe(false) // the killed client's connection ends, as on MariaDB
    expect(b.v).toBe(0)
    expect(b.id).not.toBe(serverId)
    expect(seen).toMatchObject({ cancelling: 1, waiting: 1 })
    await eventually(async () => (await poolOf(proxy.adminUrl, "killdb")).cancelling === 0)
  })

  it("a KILL QUERY that reaches its running query kills it; the connection then serves the next client", async () => {
    const [a, b, c] = await Promise.all([connect("killdb"), connect("killdb"), connect("issuerdb")])
    try {
      const [[{ id: serverId }]] = (await a.query("SELECT CONNECTION_ID() AS id")) as unknown as [[{ id: number }]]
      const aSql = "SELECT SLEEP(30) AS v"
      const aDone = outcome(a.query<Row[]>(aSql))
      await eventually(async () => (await running(aSql)) === 1)
      await c.query(`KILL QUERY ${a.threadId}`)
      const aResult = await aDone
      // MariaDB answers a killed SLEEP with its result 1 (interrupted), or ER_QUERY_INTERRUPTED.
      if (aResult instanceof Error) expect(aResult.errno).toBe(1317)
      else expect(aResult[0][0]!.v).toBe(1)
      const [[row]] = (await b.query(bSql)) as unknown as [[Row]]
      expect(row).toMatchObject({ id: serverId, v: 0 })
      expect(await poolOf(proxy.adminUrl, "killdb")).toMatchObject({ open: 1, idle: 1, cancelling: 0, waiting: 0 })
    } finally {
      await Promise.all([a, b, c].map((x) => x.end().catch(() => x.destroy())))
    }
  })
})
