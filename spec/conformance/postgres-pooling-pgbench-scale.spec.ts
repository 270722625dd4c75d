// The transaction-pooling bar of the pooling issue, with pgbench (libpq, SCRAM) → polyproxy in transaction mode, a
// pool of 10 → a real PostgreSQL 15 that accepts only 40 connections: 200 clients, then 50 with prepared statements,
// run with no failed transaction while the server never holds more than 10 backends of the database (sampled every
// 100 ms). Not a benchmark: nothing here is timed. Each run is a fixed number of transactions per client (`-t`), not a
// duration: 200 SCRAM logins on a loaded 2-core machine can take longer than a short `-T` run itself.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DATABASE } from "../../bench/pg/pgbench.ts"
import { type PgbenchPool, startPgbenchPool } from "../support/pgbenchPool.ts"
import { whileSampling } from "../support/pgPooling.ts"

const SIZE = 10
const MAX_CONNECTIONS = 40
const SECONDS = 5
/** pgbench's own deadline for a `-t` run (its args are built for `-T SECONDS`, then `-T` becomes `-t`). */
const BOUND_SECONDS = 90

let bench: PgbenchPool

beforeAll(async () => {
  bench = await startPgbenchPool(SIZE, { maxConnections: MAX_CONNECTIONS })
}, 120_000)

afterAll(() => bench?.stop())

/** `args` with the value after `flag` (present in pgbench.args' command line) replaced. */
const withValue = (args: readonly string[], flag: "-j" | "-M", value: string): string[] => {
  const out = [...args]
  const at = out.indexOf(flag)
  if (at < 0) throw new Error(`no ${flag} in ${out.join(" ")}`)
  out[at + 1] = value
  return out
}

/** `perClient` transactions per client through the proxy: none failed, never more than SIZE server backends. */
const passes = async (args: string[], mode: "simple" | "prepared", perClient: number): Promise<void> => {
  const counted = [...args]
  const at = counted.indexOf("-T")
  if (at < 0) throw new Error(`no -T in ${counted.join(" ")}`)
  counted.splice(at, 2, "-t", String(perClient))
  const clients = Number(counted[counted.indexOf("-c") + 1])
  const { result, max } = await whileSampling(bench.monitor, DATABASE, 100, () =>
    bench.pgbench.run(counted, BOUND_SECONDS)
  )
  expect(result.failed).toBe(0)
  expect(result.transactions).toBe(clients * perClient)
  expect(result.queryMode).toBe(mode)
  expect(max).toBeGreaterThan(0)
  expect(max).toBeLessThanOrEqual(SIZE)
}

describe("pgbench through a transaction-mode pool of 10 to a PostgreSQL with max_connections = 40", () => {
  const target = () => ({ host: "127.0.0.1", port: bench.proxy.port("postgres") })

  it("the server accepts no more than 40 connections: 200 clients could not each have one", async () => {
    const r = await bench.monitor.query<{ max: string }>("select current_setting('max_connections') as max")
    expect(Number(r.rows[0]!.max)).toBe(MAX_CONNECTIONS)
  })

  it("pgbench -S -c 200 -j 4 -t 50: no failed transaction, at most 10 server backends", async () => {
    await passes(withValue(bench.pgbench.args(target(), "select-only", 200, SECONDS), "-j", "4"), "simple", 50)
  }, 180_000)

  it("pgbench -M prepared -S -c 50 -t 200: no failed transaction, at most 10 server backends", async () => {
    await passes(withValue(bench.pgbench.args(target(), "select-only", 50, SECONDS), "-M", "prepared"), "prepared", 200)
  }, 180_000)

  it("pgbench -M prepared TPC-B-like -c 50 -t 20: every transaction commits, at most 10 server backends", async () => {
    await passes(withValue(bench.pgbench.args(target(), "tpcb-like", 50, SECONDS), "-M", "prepared"), "prepared", 20)
  }, 180_000)
})
