// Transaction pooling and cancel requests that arrive late (PgBouncer >= 1.18's being_canceled): a client's cancel is
// routed to the server connection running its query, but the query may end before the request reaches PostgreSQL.
// The connection, given back meanwhile, must serve nobody until the request is over, or the next client's query on it
// would be cancelled instead. Real `pg` clients → polyproxy (one server connection) → a gate that can hold cancel
// requests back (spec/support/pgCancelGate.ts) → a real PostgreSQL. Queries wait on advisory locks a direct session
// holds, so each step happens when the spec says, not when the scheduler happens to run it (pgLateCancel.ts).
import type pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  type CancelStage,
  type Keyed,
  keyedClient,
  lateCancel,
  outcome,
  poolOf,
  rawCancel,
  running,
  startCancelStage
} from "../support/pgLateCancel.ts"
import { pooledRoute, startPoolingProxy } from "../support/pgPooling.ts"
import { eventually, type TestProxy } from "../support/proxy.ts"

let stage: CancelStage
let proxy: TestProxy

beforeAll(async () => {
  stage = await startCancelStage()
  proxy = await startPoolingProxy({
    appdb: { ...pooledRoute(stage.db, { size: 1 }), endpoint: `127.0.0.1:${stage.gate.port}` }
  })
})

afterAll(async () => {
  stage?.gate.open()
  await proxy?.stop()
  await stage?.stop()
})

const client = (): Promise<Keyed> => keyedClient(proxy.port("postgres"), stage.db, "appdb")

const pid = async (c: pg.Client): Promise<number> =>
  (await c.query<{ pid: number }>("select pg_backend_pid() as pid")).rows[0]!.pid

describe("transaction pooling: cancel requests in flight", () => {
  it("a cancel that reaches the server after its query ended does not cancel the next client's query", async () => {
    const a = await client()
    const b = await client()
    const serverPid = await pid(a)
    try {
      const adminUrl = proxy.adminUrl
      const scene = { port: proxy.port("postgres"), adminUrl, database: "appdb", stage }
      const { bError, bPid, seen } = await lateCancel({ ...scene, a, b })
      expect(bError?.code).toBeUndefined() // not 57014: the signal reached an idle backend, which ignores it
      expect(bPid).toBe(serverPid) // the same server connection, kept
      // B waited while the connection, given back, was out of service.
      expect(seen).toMatchObject({ open: 1, idle: 0, cancelling: 1, waiting: 1 })
      expect(await poolOf(adminUrl, "appdb")).toMatchObject({ open: 1, idle: 1, cancelling: 0, waiting: 0 })
    } finally {
      await Promise.all([a.end(), b.end()])
    }
  })

  it("a cancel that reaches the running query cancels it (57014); the connection then serves the next client", async () => {
    const a = await client()
    const b = await client()
    const serverPid = await pid(a)
    await stage.locker.query("select pg_advisory_lock(1)")
    try {
      const sql = "select pg_advisory_xact_lock(1)"
      const aDone = outcome(a.query(sql))
      await eventually(async () => (await running(stage.monitor, "appdb", sql, true)) === 1)
      const passed = stage.gate.passed()
      expect(await rawCancel(proxy.port("postgres"), a)).toEqual(Buffer.alloc(0))
      expect(stage.gate.passed()).toBe(passed + 1)
      const e = await aDone
      expect(e?.code).toBe("57014") // query_canceled
      expect(e?.message).toBe("canceling statement due to user request")
      // The cancel's connection closed: its claim is over, and the connection serves B.
      expect(await pid(b)).toBe(serverPid)
      expect(await poolOf(proxy.adminUrl, "appdb")).toMatchObject({ open: 1, idle: 1, cancelling: 0, waiting: 0 })
    } finally {
      await stage.locker.query("select pg_advisory_unlock_all()")
      await Promise.all([a.end(), b.end()])
    }
  })
})
