// pgbench (libpq, SCRAM) → polyproxy's postgres listener in transaction pooling mode, a pool of 5 → a real
// PostgreSQL 15: 20 clients share 5 server connections with no failed transaction, and the server never sees more
// than 5 backends of the database while they run (sampled). Not a benchmark: nothing here is timed.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DATABASE, makePgbench } from "../../bench/pg/pgbench.ts"
import { type PostgresServer, startPostgres } from "../support/backends/index.ts"
import { superuserClient } from "../support/pgAdmin.ts"
import { pooledRoute, startPoolingProxy } from "../support/pgPooling.ts"
import type { TestProxy } from "../support/proxy.ts"

const SIZE = 5

let db: PostgresServer
let proxy: TestProxy
let monitor: pg.Client
let home: string
let pgbench: ReturnType<typeof makePgbench>

beforeAll(async () => {
  db = await startPostgres({ databases: [DATABASE] })
  home = mkdtempSync(join(tmpdir(), "pgbench-"))
  pgbench = makePgbench(db, home)
  await pgbench.init(1)
  monitor = await superuserClient(db, "postgres")
  proxy = await startPoolingProxy({ [DATABASE]: pooledRoute(db, { size: SIZE }) })
}, 120_000)

afterAll(async () => {
  await proxy?.stop()
  await monitor?.end()
  await db?.stop()
  if (home) rmSync(home, { recursive: true, force: true })
})

/** Runs `f` while sampling the database's backends; resolves with its result and the highest count seen. */
const sampled = async <A>(f: () => Promise<A>): Promise<{ result: A; max: number }> => {
  let max = 0
  let running = true
  const loop = (async () => {
    while (running) {
      const r = await monitor.query<{ n: number }>(
        "select count(*)::int as n from pg_stat_activity where datname = $1 and backend_type = 'client backend'",
        [DATABASE]
      )
      max = Math.max(max, r.rows[0]!.n)
      await new Promise((r) => setTimeout(r, 20))
    }
  })()
  try {
    return { result: await f(), max }
  } finally {
    running = false
    await loop
  }
}

describe("pgbench through a transaction-mode pool", () => {
  const target = () => ({ host: "127.0.0.1", port: proxy.port("postgres") })

  it("pgbench -S -c 20 -T 5 on a pool of 5: no failed transaction, at most 5 server backends", async () => {
    const { result, max } = await sampled(() => pgbench.run(pgbench.args(target(), "select-only", 20, 5), 5))
    expect(result.failed).toBe(0)
    expect(result.transactions).toBeGreaterThan(0)
    expect(max).toBeGreaterThan(0)
    expect(max).toBeLessThanOrEqual(SIZE)
  }, 90_000)

  it("pgbench -M extended (the unnamed statement), plain and in a libpq pipeline: no failed transaction", async () => {
    const extended = pgbench.args(target(), "select-only", 10, 2).map((a) => (a === "simple" ? "extended" : a))
    const plain = await sampled(() => pgbench.run(extended, 2))
    expect(plain.result.failed).toBe(0)
    expect(plain.result.transactions).toBeGreaterThan(0)
    expect(plain.result.queryMode).toBe("extended")
    // Three statements sent before the one Sync that ends the pipeline: the server connection is held throughout.
    const script = join(home, "pipeline.sql")
    writeFileSync(
      script,
      "\\startpipeline\nSELECT 1;\nSELECT 2 + 2;\nSELECT abalance FROM pgbench_accounts WHERE aid = 1;\n\\endpipeline\n"
    )
    const fileArgs = extended.filter((a) => a !== "-S")
    fileArgs.splice(fileArgs.indexOf("-h"), 0, "-f", script)
    const piped = await sampled(() => pgbench.run(fileArgs, 2))
    expect(piped.result.failed).toBe(0)
    expect(piped.result.transactions).toBeGreaterThan(0)
    expect(Math.max(plain.max, piped.max)).toBeLessThanOrEqual(SIZE)
  }, 90_000)

  it("pgbench TPC-B-like -c 10 -T 3 on the same pool: its BEGIN…END transactions all commit", async () => {
    const { result, max } = await sampled(() => pgbench.run(pgbench.args(target(), "tpcb-like", 10, 3), 3))
    expect(result.failed).toBe(0)
    expect(result.transactions).toBeGreaterThan(0)
    expect(max).toBeLessThanOrEqual(SIZE)
  }, 90_000)
})
