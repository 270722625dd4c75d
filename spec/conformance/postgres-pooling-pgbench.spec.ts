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

/** pgbench's arguments with another query mode (-M), the builtin script or, with `script`, that file instead. */
const withMode = (args: string[], mode: "extended" | "prepared", script?: string): string[] => {
  const out = args.map((a) => (a === "simple" ? mode : a)).filter((a) => script === undefined || a !== "-S")
  if (script !== undefined) out.splice(out.indexOf("-h"), 0, "-f", script)
  return out
}

/** Three statements sent before the one Sync that ends the pipeline: the server connection is held throughout. */
const pipelineScript = (): string => {
  const script = join(home, "pipeline.sql")
  writeFileSync(
    script,
    "\\startpipeline\nSELECT 1;\nSELECT 2 + 2;\nSELECT abalance FROM pgbench_accounts WHERE aid = 1;\n\\endpipeline\n"
  )
  return script
}

/** A pgbench run through the proxy: no failed transaction, in `mode`, never more than SIZE server backends. */
const passes = async (args: string[], seconds: number, mode: string): Promise<void> => {
  const { result, max } = await sampled(() => pgbench.run(args, seconds))
  expect(result.failed).toBe(0)
  expect(result.transactions).toBeGreaterThan(0)
  expect(result.queryMode).toBe(mode)
  expect(max).toBeLessThanOrEqual(SIZE)
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
    const args = pgbench.args(target(), "select-only", 10, 2)
    await passes(withMode(args, "extended"), 2, "extended")
    await passes(withMode(args, "extended", pipelineScript()), 2, "extended")
  }, 90_000)

  it("pgbench -M prepared -S -c 20 -T 5: named statements follow each client across server connections", async () => {
    await passes(withMode(pgbench.args(target(), "select-only", 20, 5), "prepared"), 5, "prepared")
  }, 90_000)

  it("pgbench -M prepared in a libpq pipeline: Parse, Bind and Execute of three statements before one Sync", async () => {
    await passes(withMode(pgbench.args(target(), "select-only", 10, 2), "prepared", pipelineScript()), 2, "prepared")
  }, 90_000)

  it("pgbench -M prepared TPC-B-like -c 10 -T 3: prepared BEGIN…END transactions all commit", async () => {
    await passes(withMode(pgbench.args(target(), "tpcb-like", 10, 3), "prepared"), 3, "prepared")
  }, 90_000)

  it("pgbench TPC-B-like -c 10 -T 3 on the same pool: its BEGIN…END transactions all commit", async () => {
    const { result, max } = await sampled(() => pgbench.run(pgbench.args(target(), "tpcb-like", 10, 3), 3))
    expect(result.failed).toBe(0)
    expect(result.transactions).toBeGreaterThan(0)
    expect(max).toBeLessThanOrEqual(SIZE)
  }, 90_000)
})
