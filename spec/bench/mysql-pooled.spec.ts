// The mysql scenario's transaction-pooling row (bench/mysql/pooled.ts): when it runs, who runs it, the pool-size
// check on the server's connections, and the notes under its table.
import { describe, expect, it } from "vitest"
import {
  checkMysqlPoolBound,
  isMysqlPooledVariant,
  pooledNotes,
  pooledSetup,
  pooledWorkloadOf
} from "../../bench/mysql/pooled.ts"
import { plannedMysqlSeconds } from "../../bench/mysql/scenario.ts"
import type { Measurement } from "../../bench/support/interleave.ts"

describe("bench mysql transaction pooling", () => {
  const o = { rounds: 1, duration: 3, clients: [1, 10, 50] }
  const perRun = 3 + 0.3 + 1.5

  it("runs the pooled row only when the pooled variant is asked for, with direct and the pooled one", () => {
    // 2 queries × 3 client counts × 3 variants.
    expect(plannedMysqlSeconds({ ...o, variants: ["direct", "polyproxy", "haproxy"] })).toBeCloseTo(20 + 18 * perRun)
    // Only the pooled row, by direct and polyproxy-transaction.
    expect(plannedMysqlSeconds({ ...o, variants: ["direct", "polyproxy-transaction"] })).toBeCloseTo(20 + 2 * perRun)
    expect(
      plannedMysqlSeconds({ ...o, variants: ["direct", "polyproxy", "haproxy", "polyproxy-transaction"] })
    ).toBeCloseTo(20 + 18 * perRun + 2 * perRun)
    expect(isMysqlPooledVariant("polyproxy-transaction@abc1234")).toBe(true)
    expect(isMysqlPooledVariant("polyproxy")).toBe(false)
  })

  it("fails a pooled run when the server held more connections of the bench user than the pool size", () => {
    expect(() => checkMysqlPoolBound("polyproxy-transaction", 11, 10)).toThrow(/held 11 connections .* pool size 10/)
    expect(() => checkMysqlPoolBound("polyproxy-transaction@abc1234", 12, 10)).toThrow(/held 12/)
    expect(() => checkMysqlPoolBound("polyproxy-transaction", 10, 10)).not.toThrow()
    expect(() => checkMysqlPoolBound("direct", 200, 10)).not.toThrow()
  })

  it("gives MariaDB room for direct's 200 connections, a lookup login limited to mysql.user, and a monitor", () => {
    const sql = pooledSetup({ lookupPassword: "l", monitorPassword: "m" }).join(";\n")
    expect(sql).toContain("SET GLOBAL max_connections = 300")
    expect(sql).toContain("GRANT SELECT ON mysql.user TO 'pooler'@'%'")
    expect(sql).toContain("GRANT PROCESS ON *.* TO 'benchmon'@'%'")
  })

  it("notes the most server connections and MariaDB's CPU per 1k queries of each variant", () => {
    const workload = pooledWorkloadOf(200, 10)
    const run = (variant: string, round: number, max: number, backend: number): Measurement => ({
      workload: workload.id,
      variant,
      round,
      position: 0,
      rate: 10_000,
      ops: 100_000,
      serverConnectionsMax: max,
      backendCpuSeconds: backend
    })
    const notes = pooledNotes(
      workload,
      [run("direct", 1, 200, 6), run("direct", 2, 199, 5), run("polyproxy-transaction", 1, 10, 3)],
      (v) => v
    )
    expect(workload.label).toContain("200 clients, transaction pool of 10")
    expect(notes).toEqual([
      `${workload.label}: the server's connections of the bench user, most sampled (every 100 ms) in a run: ` +
        "direct: 200; polyproxy-transaction: 10.",
      `${workload.label}: MariaDB's CPU s / 1k queries (median): direct 0.050; polyproxy-transaction 0.030.`
    ])
  })
})
