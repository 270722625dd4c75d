// The late-cancel scenario of transaction pooling (PgBouncer >= 1.18's being_canceled), step by step: client A's
// query waits on an advisory lock; A's cancel is routed to the server connection running it and held back at a gate
// (pgCancelGate.ts); A's query ends (the lock released), so the connection is given back; client B, on the same pool
// of one connection, sends a query that will wait on another lock; once B's query either runs on the server or waits
// in the pool, the gate lets the cancel through. Each step waits for the state the previous one leads to, never for
// time. The specs say what must follow (B not cancelled).
import * as net from "node:net"
import pg from "pg"
import { encodeCancelRequest } from "../../src/codec/pg/index.ts"
import { type PostgresServer, startPostgres } from "./backends/index.ts"
import { appClientConfig, superuserClient } from "./pgAdmin.ts"
import { type CancelGate, startCancelGate } from "./pgCancelGate.ts"
import { eventually } from "./proxy.ts"

export type PgError = Error & { code?: string }
/** What pg keeps of the BackendKeyData (not in @types/pg). */
export type Keyed = pg.Client & { processID: number; secretKey: number }

/** A PostgreSQL with database "appdb", the gate before it, and direct superuser sessions to watch and to lock. */
export interface CancelStage {
  readonly db: PostgresServer
  readonly gate: CancelGate
  /** Watches pg_stat_activity. */
  readonly monitor: pg.Client
  /** Holds the advisory locks the clients' queries wait on (they are per database: it works in "appdb"). */
  readonly locker: pg.Client
  stop(): Promise<void>
}

export const startCancelStage = async (): Promise<CancelStage> => {
  const db = await startPostgres({ databases: ["appdb"] })
  const gate = await startCancelGate(db)
  const monitor = await superuserClient(db, "postgres")
  const locker = await superuserClient(db, "appdb")
  return {
    db,
    gate,
    monitor,
    locker,
    stop: async () => {
      gate.open()
      await locker.end()
      await monitor.end()
      await gate.close()
      await db.stop()
    }
  }
}

/** A `pg` client of `database` logged in through the proxy at `port` as `db`'s app role. */
export const keyedClient = async (port: number, db: PostgresServer, database: string): Promise<Keyed> => {
  const c = new pg.Client(appClientConfig(db, port, database)) as Keyed
  c.on("error", () => {}) // the proxy stopped under a failed spec's clients
  await c.connect()
  return c
}

/** The query's error, or undefined when it succeeded. */
export const outcome = (p: Promise<unknown>): Promise<PgError | undefined> =>
  p.then(
    () => undefined,
    (e: PgError) => e
  )

/** A CancelRequest with `c`'s key, as a client sends it, to `port`; resolves with every byte answered before closing. */
export const rawCancel = (port: number, c: Keyed) =>
  new Promise<Buffer>((resolve, reject) => {
    const secret = Buffer.alloc(4)
    secret.writeInt32BE(c.secretKey)
    const got: Buffer[] = []
    const s = net.connect(port, "127.0.0.1", () => s.write(encodeCancelRequest(c.processID, secret)))
    s.on("data", (d) => got.push(d))
    s.once("error", reject)
    s.once("close", () => resolve(Buffer.concat(got)))
  })

/** Backends of `database` running `sql` now; `onLock`: only those waiting for a lock. */
export const running = async (monitor: pg.Client, database: string, sql: string, onLock = false): Promise<number> =>
  (
    await monitor.query<{ n: number }>(
      `select count(*)::int as n from pg_stat_activity where datname = $1 and state = 'active' and query = $2
       ${onLock ? "and wait_event_type = 'Lock'" : ""}`,
      [database, sql]
    )
  ).rows[0]!.n

export interface PoolRow {
  readonly open: number
  readonly idle: number
  readonly cancelling: number
  readonly waiting: number
}

/** The pool of `database` in GET /admin/pools (summed over the workers). */
export const poolOf = async (adminUrl: string, database: string): Promise<PoolRow> => {
  const res = await fetch(`${adminUrl}/admin/pools`)
  const rows = ((await res.json()) as { pools: Array<PoolRow & { database: string }> }).pools
  return rows.find((r) => r.database === database)!
}

export interface LateCancel {
  /** Where the clients connect (the cancel goes there too), the proxy's admin, the pooled database. */
  readonly port: number
  readonly adminUrl: string
  readonly database: string
  readonly stage: CancelStage
  /** Two clients of one pool of one server connection. */
  readonly a: Keyed
  readonly b: Keyed
  /** Run while A's cancel waits at the gate, routed by the proxy and not yet at the server. */
  readonly whileHeld?: () => Promise<void>
}

export interface LateCancelResult {
  /** B's query's error (undefined: it succeeded), and the server backend it ran on. */
  readonly bError: PgError | undefined
  readonly bPid: number | undefined
  /** The pool while B waited for the connection, if it did (undefined: B's query ran at once). */
  readonly seen: PoolRow | undefined
}

export const lateCancel = async (s: LateCancel): Promise<LateCancelResult> => {
  const { gate, locker, monitor } = s.stage
  const database = s.database
  await locker.query("select pg_advisory_lock(1), pg_advisory_lock(2)")
  gate.shut()
  try {
    const aSql = "select pg_advisory_xact_lock(1)"
    const aDone = outcome(s.a.query(aSql))
    await eventually(async () => (await running(monitor, database, aSql, true)) === 1)
    // A's cancel is routed to the server connection running A's query, and held at the gate.
    const cancelled = rawCancel(s.port, s.a)
    await eventually(() => gate.held() === 1)
    await s.whileHeld?.()
    // A's query ends before its cancel reaches the server: the connection is given back.
    await locker.query("select pg_advisory_unlock(1)")
    const aError = await aDone
    if (aError !== undefined) throw aError

    // B asks for the pool's one connection. Either it runs B's query now (the cancel would hit it), or the pool keeps
    // the connection out of service, B waiting, until the cancel is over.
    const bSql = "select pg_backend_pid() as pid, pg_advisory_xact_lock(2)"
    const bQuery = s.b.query<{ pid: number }>(bSql)
    const bDone = outcome(bQuery)
    let seen: PoolRow | undefined
    await eventually(async () => {
      if ((await running(monitor, database, bSql)) === 1) return true
      const row = await poolOf(s.adminUrl, database)
      if (row.cancelling === 1 && row.waiting === 1) seen = row
      return seen !== undefined
    })

    // The cancel reaches the server, which signals the backend and closes the cancel's connection.
    gate.open()
    const answered = await cancelled
    if (answered.length > 0) throw new Error(`the proxy answered a cancel request: ${answered.toString("hex")}`)
    // B's query gets the connection once the cancel is over (or has failed already).
    let bSettled = false
    void bDone.then(() => {
      bSettled = true
    })
    await eventually(async () => bSettled || (await running(monitor, database, bSql, true)) === 1)
    await locker.query("select pg_advisory_unlock(2)")
    const bError = await bDone
    return { bError, bPid: bError === undefined ? (await bQuery).rows[0]!.pid : undefined, seen }
  } finally {
    gate.open()
    await locker.query("select pg_advisory_unlock_all()")
  }
}
