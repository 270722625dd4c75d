// pgbench (libpq, SCRAM) → polyproxy's postgres listener in transaction pooling mode, a pool of 5 → a real
// PostgreSQL 15: 20 clients share 5 server connections with no failed transaction, and the server never sees more
// than 5 backends of the database while they run (sampled). Not a benchmark: nothing here is timed.
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DATABASE } from "../../bench/pg/pgbench.ts"
import { type PgbenchPool, startPgbenchPool } from "../support/pgbenchPool.ts"
import { whileSampling } from "../support/pgPooling.ts"

const SIZE = 5

let bench: PgbenchPool

beforeAll(async () => {
  bench = await startPgbenchPool(SIZE)
}, 120_000)

afterAll(() => bench?.stop())

/** Runs `f` while sampling the database's backends; resolves with its result and the highest count seen. */
const sampled = <A>(f: () => Promise<A>) => whileSampling(bench.monitor, DATABASE, 20, f)

/** pgbench's arguments with another query mode (-M), the builtin script or, with `script`, that file instead. */
const withMode = (args: string[], mode: "extended" | "prepared", script?: string): string[] => {
  const out = args.map((a) => (a === "simple" ? mode : a)).filter((a) => script === undefined || a !== "-S")
  if (script !== undefined) out.splice(out.indexOf("-h"), 0, "-f", script)
  return out
}

/** Three statements sent before the one Sync that ends the pipeline: the server connection is held throughout. */
const pipelineScript = (): string => {
  const script = join(bench.home, "pipeline.sql")
  writeFileSync(
    script,
    "\\startpipeline\nSELECT 1;\nSELECT 2 + 2;\nSELECT abalance FROM pgbench_accounts WHERE aid = 1;\n\\endpipeline\n"
  )
  return script
}

/** A pgbench run through the proxy: no failed transaction, in `mode`, never more than SIZE server backends. */
const passes = async (args: string[], seconds: number, mode: string): Promise<void> => {
  const { result, max } = await sampled(() => bench.pgbench.run(args, seconds))
  expect(result.failed).toBe(0)
  expect(result.transactions).toBeGreaterThan(0)
  expect(result.queryMode).toBe(mode)
  expect(max).toBeLessThanOrEqual(SIZE)
}

describe("pgbench through a transaction-mode pool", () => {
  const target = () => ({ host: "127.0.0.1", port: bench.proxy.port("postgres") })

  it("pgbench -S -c 20 -T 5 on a pool of 5: no failed transaction, at most 5 server backends", async () => {
    const { result, max } = await sampled(() =>
      bench.pgbench.run(bench.pgbench.args(target(), "select-only", 20, 5), 5)
    )
    expect(result.failed).toBe(0)
    expect(result.transactions).toBeGreaterThan(0)
    expect(max).toBeGreaterThan(0)
    expect(max).toBeLessThanOrEqual(SIZE)
  }, 90_000)

  it("pgbench -M extended (the unnamed statement), plain and in a libpq pipeline: no failed transaction", async () => {
    const args = bench.pgbench.args(target(), "select-only", 10, 2)
    await passes(withMode(args, "extended"), 2, "extended")
    await passes(withMode(args, "extended", pipelineScript()), 2, "extended")
  }, 90_000)

  it("pgbench -M prepared -S -c 20 -T 5: named statements follow each client across server connections", async () => {
    await passes(withMode(bench.pgbench.args(target(), "select-only", 20, 5), "prepared"), 5, "prepared")
  }, 90_000)

  it("pgbench -M prepared in a libpq pipeline: Parse, Bind and Execute of three statements before one Sync", async () => {
    await passes(
      withMode(bench.pgbench.args(target(), "select-only", 10, 2), "prepared", pipelineScript()),
      2,
      "prepared"
    )
  }, 90_000)

  it("pgbench -M prepared TPC-B-like -c 10 -T 3: prepared BEGIN…END transactions all commit", async () => {
    await passes(withMode(bench.pgbench.args(target(), "tpcb-like", 10, 3), "prepared"), 3, "prepared")
  }, 90_000)

  it("pgbench TPC-B-like -c 10 -T 3 on the same pool: its BEGIN…END transactions all commit", async () => {
    const { result, max } = await sampled(() => bench.pgbench.run(bench.pgbench.args(target(), "tpcb-like", 10, 3), 3))
    expect(result.failed).toBe(0)
    expect(result.transactions).toBeGreaterThan(0)
    expect(max).toBeLessThanOrEqual(SIZE)
  }, 90_000)
})
