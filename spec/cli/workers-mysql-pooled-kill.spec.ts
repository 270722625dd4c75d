// `workers: 2` and KILL of transaction-pooled MySQL clients (a listener that checks logins itself, README "MySQL
// transaction pooling"): a pooled client's server connection changes with each transaction, so no table mirrors it;
// the proxy id names the worker that greeted the client (ids ≡ its index mod 2), and the primary asks that worker
// which server connection the client holds now. Every KILL below comes from a new connection that the other worker
// accepted than the one holding its target.
import { randomBytes } from "node:crypto"
import mysql from "mysql2/promise"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type MariaDbServer, startMariaDb } from "../support/backends/index.ts"
import { type CliProxy, startCliProxy } from "../support/cliProxy.ts"
import { ended, errorOf, type MysqlError, mariadbOptions, workerOf } from "../support/mysql.ts"
import { eventually } from "../support/proxy.ts"

/** Clients sleeping at once; each worker's pool has room for all of them and their killers. */
const CLIENTS = 8
const poolerPassword = randomBytes(12).toString("hex")

let db: MariaDbServer
let proxy: CliProxy
/** A direct login of the clients' user: sees its sessions on the server. */
let monitor: mysql.Connection

beforeAll(async () => {
  db = await startMariaDb({
    databases: ["appdb"],
    setup: [`CREATE USER 'pooler'@'%' IDENTIFIED BY '${poolerPassword}'`, "GRANT SELECT ON mysql.* TO 'pooler'@'%'"]
  })
  monitor = await mysql.createConnection(mariadbOptions(db))
  proxy = await startCliProxy(`workers: 2
admin: { host: 127.0.0.1, port: 0 }
listeners:
  mysql:
    host: 127.0.0.1
    port: 0
    auth: { route: users, user: pooler, password: "${poolerPassword}" }
routes:
  users: { endpoint: "127.0.0.1:${db.port}" }
  appdb:
    endpoint: "127.0.0.1:${db.port}"
    metadata:
      pool: { mode: transaction, size: ${2 * CLIENTS + 4} }
ssrf: { allow: ["127.0.0.0/8"] }
log: { format: json, connections: false }
`)
  await eventually(() => proxy.output().includes('"event":"workers ready"'), 20_000)
}, 120_000)

afterAll(async () => {
  proxy?.stop()
  await monitor?.end()
  await db?.stop()
})

const connect = async () => {
  const c = await mysql.createConnection(mariadbOptions(db, { port: proxy.port("mysql") }))
  c.on("error", () => {})
  return c
}

/** A new connection that the other worker than `target`'s accepted (the others opened on the way are closed). */
const fromTheOtherWorker = async (target: mysql.Connection): Promise<mysql.Connection> => {
  let found: mysql.Connection | undefined
  await eventually(async () => {
    const c = await connect()
    if (workerOf(c) !== workerOf(target)) found = c
    else await c.end()
    return found !== undefined
  }, 20_000)
  return found!
}

/** Clients until both workers hold some. */
const clientsOnBothWorkers = async (n: number): Promise<mysql.Connection[]> => {
  const clients: mysql.Connection[] = []
  await eventually(async () => {
    while (clients.length < n) clients.push(await connect())
    if (new Set(clients.map(workerOf)).size === 2) return true
    await clients.shift()!.end()
    return false
  }, 20_000)
  return clients
}

const sleeping = async (): Promise<number> => {
  const [rows] = await monitor.query<mysql.RowDataPacket[]>(
    "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(30)'"
  )
  return Number(rows[0]!.n)
}

describe("workers: 2, KILL of transaction-pooled MySQL clients", () => {
  it("KILL QUERY from the other worker ends every client's SLEEP(30) with 1317; the clients go on", async () => {
    const clients = await clientsOnBothWorkers(CLIENTS)
    const queries = clients.map((c) =>
      c.query("SELECT SLEEP(30)").then(
        () => new Error("SLEEP(30) was not killed") as MysqlError,
        (e: unknown) => e as MysqlError
      )
    )
    await eventually(async () => (await sleeping()) === CLIENTS, 10_000)

    const started = Date.now()
    for (const c of clients) {
      const killer = await fromTheOtherWorker(c)
      await killer.query(`KILL QUERY ${c.threadId}`)
      await killer.end()
    }
    const errors = await Promise.all(queries)
    for (const e of errors) {
      expect(e.errno).toBe(1317)
      expect(e.message).toBe("Query execution was interrupted")
    }
    // Well before the 30 s the queries would have run.
    expect(Date.now() - started).toBeLessThan(15_000)
    const alive = await Promise.all(clients.map((c) => c.query<mysql.RowDataPacket[]>("SELECT 1 AS ok")))
    expect(alive.map(([rows]) => rows[0]!.ok)).toEqual(clients.map(() => 1))
    await Promise.all(clients.map((c) => c.end()))
  }, 90_000)

  it("KILL from the other worker closes a client mid-query, and one that holds no server connection", async () => {
    const [busy, idle] = await clientsOnBothWorkers(2)
    const query = busy!.query("SELECT SLEEP(30)").then(
      () => undefined,
      (e: unknown) => e as MysqlError
    )
    await eventually(async () => (await sleeping()) === 1, 10_000)
    for (const target of [busy!, idle!]) {
      const gone = ended(target)
      const killer = await fromTheOtherWorker(target)
      await killer.query(`KILL ${target.threadId}`)
      await gone
      // Once gone, its id names nothing, in MariaDB's words.
      const e = await errorOf(killer.query(`KILL QUERY ${target.threadId}`))
      expect([e.errno, e.message]).toEqual([1094, `Unknown thread id: ${target.threadId}`])
      await killer.end()
    }
    expect(await query).toBeDefined()
    await eventually(async () => (await sleeping()) === 0, 10_000)
  }, 60_000)
})
