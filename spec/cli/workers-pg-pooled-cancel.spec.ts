// `workers: 2` and cancel of transaction-pooled clients: each `pg` cancel opens a new connection, which the kernel
// hands to either worker (SO_REUSEPORT), mostly not the one holding the client. The key the client was given names
// its worker, and the primary hands the cancel to that worker, which knows the server connection running the
// client's query now: every query ends with PostgreSQL's 57014. A wrong key gets silence, as PostgreSQL gives it.
import * as net from "node:net"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { encodeCancelRequest } from "../../src/codec/pg/index.ts"
import { type PostgresServer, startPostgres } from "../support/backends/index.ts"
import type { CliProxy } from "../support/cliProxy.ts"
import { superuserClient } from "../support/pgAdmin.ts"
import { startPoolingCli } from "../support/pgPooling.ts"
import { eventually } from "../support/proxy.ts"

/** Clients sleeping at once; each worker's pool has room for all of them. */
const CLIENTS = 12

let db: PostgresServer
let proxy: CliProxy
/** A direct superuser connection to watch the server with. */
let monitor: pg.Client

beforeAll(async () => {
  db = await startPostgres({ databases: ["appdb"] })
  monitor = await superuserClient(db, "postgres")
  proxy = await startPoolingCli(db, "appdb", CLIENTS)
})

afterAll(async () => {
  proxy?.stop()
  await monitor?.end()
  await db?.stop()
})

type PgError = Error & { code?: string }
/** What pg keeps of the BackendKeyData (not in @types/pg). */
type Keyed = pg.Client & { processID: number; secretKey: number }

const config = (): pg.ClientConfig => ({
  host: "127.0.0.1",
  port: proxy.port("postgres"),
  user: db.user,
  password: db.userPassword,
  database: "appdb",
  ssl: false
})

const sleeping = async (): Promise<number> =>
  (
    await monitor.query<{ n: number }>(
      "select count(*)::int as n from pg_stat_activity where datname = 'appdb' and query = 'select pg_sleep(30)'"
    )
  ).rows[0]!.n

/** Sends a CancelRequest as it comes from a client; resolves with every byte the proxy answered before closing. */
const rawCancel = (processId: number, secretKey: Buffer) =>
  new Promise<Buffer>((resolve, reject) => {
    const got: Buffer[] = []
    const s = net.connect(proxy.port("postgres"), "127.0.0.1", () => s.write(encodeCancelRequest(processId, secretKey)))
    s.on("data", (d) => got.push(d))
    s.once("error", reject)
    s.once("close", () => resolve(Buffer.concat(got)))
  })

describe("workers: 2, cancel of transaction-pooled clients", () => {
  it("cancels every client's pg_sleep(30) whichever worker each cancel lands on; a wrong key is ignored", async () => {
    const clients: Keyed[] = []
    // Until both workers hold some clients (a worker's process ids are ≡ its index mod 2).
    await eventually(async () => {
      while (clients.length < CLIENTS) {
        const c = new pg.Client(config()) as Keyed
        c.on("error", () => {}) // the proxy stopped under a failed spec's clients
        await c.connect()
        clients.push(c)
      }
      if (new Set(clients.map((c) => c.processID % 2)).size === 2) return true
      await clients.shift()!.end()
      return false
    }, 20_000)
    const queries = clients.map((c) => {
      const q = new pg.Query("select pg_sleep(30)")
      const failed = new Promise<PgError>((resolve, reject) => {
        q.once("error", resolve)
        q.once("end", () => reject(new Error("pg_sleep(30) was not cancelled")))
      })
      c.query(q)
      return { c, q, failed }
    })
    await eventually(async () => (await sleeping()) === CLIENTS, 10_000)

    // The right process id with a wrong secret, from new connections landing on either worker: silence, and the
    // queries run on.
    for (const { c } of queries) {
      const wrong = Buffer.alloc(4)
      wrong.writeInt32BE(c.secretKey ^ 0x5a5a5a5a)
      expect(await rawCancel(c.processID, wrong)).toEqual(Buffer.alloc(0))
    }
    await new Promise((r) => setTimeout(r, 300))
    expect(await sleeping()).toBe(CLIENTS)

    const started = Date.now()
    for (const { c, q } of queries)
      (new pg.Client(config()) as unknown as { cancel(c: pg.Client, q: pg.Query): void }).cancel(c, q)
    const errors = await Promise.all(queries.map((x) => x.failed))
    for (const e of errors) {
      expect(e.code).toBe("57014") // query_canceled
      expect(e.message).toBe("canceling statement due to user request")
    }
    // Well before the 30 s the queries would have run.
    expect(Date.now() - started).toBeLessThan(15_000)
    // Each client goes on with its next query, on whatever server connection its pool gives it.
    const alive = await Promise.all(clients.map((c) => c.query<{ ok: number }>("select 1 as ok")))
    expect(alive.map((r) => r.rows[0]!.ok)).toEqual(clients.map(() => 1))
    await Promise.all(clients.map((c) => c.end()))
  })
})
