// The two rules that keep bench/run.ts from flattering: a round in which other processes used more than the noise
// limit is discarded and rerun (kept and marked only in development runs), and a variant whose rate comes within
// 15 % of the bare backend's in a round is "bound": its ratios are printed as such and no target counts it.
import { spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import {
  checkPoolBound,
  directClients,
  PG_OPT_IN_VARIANTS,
  POOLED_WORKLOADS,
  pooledWorkloadOf,
  runsPinned,
  startPooledVariant
} from "../../bench/pg/pooled.ts"
import { PG_VARIANTS, plannedPgSeconds } from "../../bench/pg/scenario.ts"
import { interleave, type Measurement, type ScenarioResult, type Workload } from "../../bench/support/interleave.ts"
import { parentOf, pin, pinLayout, pinnedCommand, processTree } from "../../bench/support/pin.ts"
import { renderScenario, scenarioChecks, summarize } from "../../bench/support/report.ts"
import { readmeTable, renderTargets, targets, verdict } from "../../bench/support/targets.ts"
import { variantInfos } from "../../bench/support/variant.ts"
import type { PostgresServer } from "../../spec/support/backends/postgres.ts"

const workload: Workload = {
  id: "conn",
  label: "new connections",
  kind: "rate",
  unit: "conn/s",
  displayDivisor: 1,
  cpuPer: 1000,
  cpuUnit: "CPU s / 1k conn"
}
const variants = [{ name: "direct" }, { name: "polyproxy-1" }, { name: "haproxy" }]

/** A measure function whose foreign share is given per call, in call order. */
const measuring = (shares: number[]) => {
  let call = 0
  return async (v: { name: string }, round: number, position: number) => ({
    variant: v.name,
    round,
    position,
    rate: 1000,
    foreignShare: shares[call++] ?? 0
  })
}

describe("bench noise rule", () => {
  it("discards a noisy round and runs it again until it is quiet", async () => {
    const runs = await interleave({
      workload,
      variants,
      rounds: 2,
      noise: { limit: 0.1, retries: 2, keep: false },
      measure: measuring([0, 0.5, 0, 0, 0, 0, 0, 0, 0]),
      log: () => {}
    })
    expect(runs).toHaveLength(9)
    expect(runs.slice(0, 3).every((m) => m.discarded?.startsWith("attempt 1: other processes used 50 %"))).toBe(true)
    expect(runs.slice(3).every((m) => m.discarded === undefined && m.noisy === undefined)).toBe(true)
    expect(runs.slice(3).map((m) => m.round)).toEqual([1, 1, 1, 2, 2, 2])
  })

  it("loses a round that stays noisy past its retries; a development run keeps it, marked", async () => {
    const lost = await interleave({
      workload,
      variants,
      rounds: 1,
      noise: { limit: 0.1, retries: 0, keep: false },
      measure: measuring([0.2, 0, 0]),
      log: () => {}
    })
    const result = scenario(lost)
    expect(scenarioChecks(result)).toMatchObject({ lost: ["conn round 1"], reruns: 1 })
    expect(summarize(result)[0]!.variants).toEqual([])

    const kept = await interleave({
      workload,
      variants,
      rounds: 1,
      noise: { limit: 0.1, retries: 3, keep: true },
      measure: measuring([0.2, 0, 0]),
      log: () => {}
    })
    expect(kept.map((m) => m.noisy)).toEqual([true, undefined, undefined])
    expect(renderScenario(scenario(kept)).join("\n")).toContain("1 noisy run(s) kept")
  })
})

const run = (variant: string, round: number, rate: number, cpu: number): Measurement => ({
  workload: "conn",
  variant,
  round,
  position: 0,
  rate,
  ops: rate,
  cpuPerUnit: cpu
})

const scenario = (measurements: Measurement[]): ScenarioResult => ({
  scenario: "tcp",
  title: "tcp",
  workloads: [workload],
  variants: ["direct", "polyproxy-1", "haproxy"].map((name) => ({ name, label: name, description: "" })),
  reference: "direct",
  compareTo: "haproxy",
  measurements,
  setup: {},
  notes: []
})

describe("bench headroom check", () => {
  it("calls a variant bound when it comes within 15 % of direct in any round, and so its ratios", () => {
    const result = scenario([
      run("direct", 1, 10_000, 0),
      run("polyproxy-1", 1, 5_000, 0.2),
      run("haproxy", 1, 8_000, 0.1),
      run("direct", 2, 10_000, 0),
      run("polyproxy-1", 2, 5_000, 0.2),
      run("haproxy", 2, 8_600, 0.1) // 0.86 of direct: bound
    ])
    const [s] = summarize(result)
    const by = (name: string) => s!.variants.find((v) => v.variant === name)!
    expect(by("haproxy").bound).toBe(true)
    expect(by("polyproxy-1")).toMatchObject({ bound: false, compareBound: true })
    const t = targets({ tcp: result }).find((x) => x.name.startsWith("tcp new connections"))!
    expect(verdict(t)).toBe("bound")
    const md = renderScenario(result).join("\n")
    expect(md).toContain("| haproxy | 8300 | 8000–8600 | bound (0.83×) | bound |")
    expect(md).toContain("| polyproxy-1 | 5000 | 5000–5000 | 0.50× (0.50–0.50) | bound |")
    expect(md).toContain("**Bound: conn haproxy.**")
  })

  it("judges a target when neither side is bound", () => {
    const result = scenario([
      run("direct", 1, 10_000, 0),
      run("polyproxy-1", 1, 6_000, 0.2),
      run("haproxy", 1, 8_000, 0.1)
    ])
    const t = targets({ tcp: result }).find((x) => x.name.startsWith("tcp new connections"))!
    expect(t.ratio?.median).toBeCloseTo(0.75)
    expect(verdict(t)).toBe("meets")
  })
})

describe("bench --compare", () => {
  it("pairs each compared variant with the same one now, round by round, for rate and CPU per operation", () => {
    const result: ScenarioResult = {
      ...scenario([
        run("direct", 1, 10_000, 0),
        run("polyproxy-1", 1, 6_000, 0.2),
        run("polyproxy-1@abc1234", 1, 5_000, 0.25),
        run("haproxy", 1, 8_000, 0.1),
        run("direct", 2, 10_000, 0),
        run("polyproxy-1", 2, 6_600, 0.2),
        run("polyproxy-1@abc1234", 2, 6_000, 0.2),
        run("haproxy", 2, 8_000, 0.1)
      ]),
      variants: variantInfos(
        ["direct", "polyproxy-1", "haproxy"],
        ["direct", "polyproxy-1", "haproxy", "polyproxy-1@abc1234"].map((name) => ({
          name,
          info: { name, label: name, description: "" }
        }))
      )
    }
    expect(result.variants.map((v) => v.name)).toEqual(["direct", "polyproxy-1", "polyproxy-1@abc1234", "haproxy"])
    const by = (name: string) => summarize(result)[0]!.variants.find((v) => v.variant === name)!
    expect(by("polyproxy-1").change).toBeUndefined()
    const change = by("polyproxy-1@abc1234").change!
    expect(change).toMatchObject({ now: "polyproxy-1", bound: false })
    // Rounds: 6000/5000 = 1.2 and 6600/6000 = 1.1; CPU 0.2/0.25 = 0.8 and 0.2/0.2 = 1.
    expect(change.rate).toMatchObject({ median: 1.15, min: 1.1, n: 2 })
    expect(change.rate?.max).toBeCloseTo(1.2)
    expect(change.cpuPerUnit).toMatchObject({ median: 0.9, min: 0.8, max: 1, n: 2 })
    // The compared variant keeps its own ratios to the baselines.
    expect(by("polyproxy-1@abc1234").vsCompare?.median).toBeCloseTo(0.6875)
    const md = renderScenario(result).join("\n")
    expect(md).toContain("Before/after (`--compare`)")
    expect(md).toContain(
      "| new connections (conn/s) | polyproxy-1 | abc1234 | 6300 | 5500 | 1.15× (1.10–1.20) | " +
        "0.200 CPU s / 1k conn | 0.225 CPU s / 1k conn | 0.90× (0.80–1.00) |"
    )
  })

  it("says nothing of a before/after when no revision was compared", () => {
    const result = scenario([run("direct", 1, 10_000, 0), run("polyproxy-1", 1, 6_000, 0.2)])
    expect(renderScenario(result).join("\n")).not.toContain("Before/after")
  })
})

describe("bench pg transaction pooling", () => {
  const pooled = pooledWorkloadOf("select-only", 100, 10)
  const pgRun = (workload: string, variant: string, round: number, rate: number, cpu: number): Measurement => ({
    ...run(variant, round, rate, cpu),
    workload
  })
  const pgResult = (measurements: Measurement[]): ScenarioResult => ({
    scenario: "pg",
    title: "pg",
    workloads: [{ ...workload, id: "select-only-c10", label: "select-only c10" }, pooled],
    variants: ["direct", "polyproxy", "haproxy", "polyproxy-transaction", "pgbouncer-transaction"].map((name) => ({
      name,
      label: name,
      description: ""
    })),
    reference: "direct",
    compareTo: "haproxy",
    measurements,
    setup: {},
    notes: []
  })

  it("compares the pooled workloads with PgBouncer in transaction mode, in a table and targets of their own", () => {
    const result = pgResult([
      pgRun("select-only-c10", "direct", 1, 10_000, 0),
      pgRun("select-only-c10", "polyproxy", 1, 5_000, 0.04),
      pgRun("select-only-c10", "haproxy", 1, 5_000, 0.03),
      pgRun(pooled.id, "direct", 1, 14_000, 0),
      pgRun(pooled.id, "polyproxy-transaction", 1, 9_000, 0.048),
      pgRun(pooled.id, "pgbouncer-transaction", 1, 10_000, 0.03)
    ])
    const [usual, pool] = summarize(result)
    expect(usual!.variants.find((v) => v.variant === "polyproxy")!.vsCompare?.median).toBe(1)
    expect(pool!.variants.find((v) => v.variant === "polyproxy-transaction")!.vsCompare?.median).toBeCloseTo(0.9)
    const md = renderScenario(result).join("\n")
    expect(md).toContain("| ÷ direct | ÷ haproxy | proxy CPU (median) |")
    expect(md).toContain("| ÷ direct | ÷ pgbouncer-transaction | proxy CPU (median) |")
    expect(md).toContain(`| ${pooled.label} (TPS) | polyproxy-transaction | 9000 | (1 run) | 0.64× | 0.90× |`)
    const t = targets({ pg: result }).find((x) => x.name.startsWith("pgbench -S c=100 transaction pooling"))!
    expect(t).toMatchObject({ issue: 21, name: expect.stringContaining("polyproxy ÷ pgbouncer-transaction") })
    expect(t.detail).toContain("pgbouncer-transaction 0.030 CPU s / 1k tx")
    expect(verdict(t)).toBe("misses")
    expect(renderTargets(targets({ pg: result }))[0]).toBe("## Targets (issues 21, 24)")
    expect(readmeTable({ pg: result }).join("\n")).toContain("| pgbouncer-transaction 10,000 TPS | 0.90× |")
  })

  it("runs the pooled workloads only when a pooled variant is asked for, with direct and the pooled ones", () => {
    const o = { rounds: 1, duration: 4, warmup: 1, clients: [1, 10, 50], poolSize: 10 }
    const perRun = 4 + 1 + 1.5
    const poolers = ["direct", "polyproxy-transaction", "pgbouncer-transaction"] as const
    // 2 kinds × 3 client counts × 2 variants; the pooled variants' 2 workloads × 3 (with direct), and on two cores
    // or more the same 2 again pinned.
    expect(plannedPgSeconds({ ...o, variants: ["direct", "polyproxy"] }, 2)).toBe(30 + 12 * perRun)
    expect(plannedPgSeconds({ ...o, variants: [...poolers] }, 1)).toBe(30 + 6 * perRun)
    expect(plannedPgSeconds({ ...o, variants: [...poolers] }, 2)).toBe(30 + 12 * perRun)
    expect(plannedPgSeconds({ ...o, variants: ["direct", "polyproxy", "pgbouncer-transaction"] }, 2)).toBe(
      30 + 12 * perRun + 4 * perRun + 4 * perRun
    )
    // The two-process poolers do not fit on the pooler's one core: not pinned, and no pinned workload for direct alone.
    expect(plannedPgSeconds({ ...o, variants: ["direct", "polyproxy-transaction-2"] }, 2)).toBe(30 + 4 * perRun)
    expect(plannedPgSeconds({ ...o, variants: [...poolers, "pgbouncer-transaction-2"] }, 2)).toBe(
      30 + 8 * perRun + 6 * perRun
    )
  })

  it("names the pinned workloads apart, and gives the pooler the last core and everything else the others", () => {
    const pinned = pooledWorkloadOf("tpcb-like", 50, 10, true)
    expect(pinned.id).toBe("pooled-tpcb-like-c50-pinned")
    expect(pinned.label).toContain("the pooler on a core of its own")
    expect(pooledWorkloadOf("tpcb-like", 50, 10).id).toBe("pooled-tpcb-like-c50")
    expect(POOLED_WORKLOADS.filter((w) => w.pinned).map((w) => `${w.kind} ${w.clients}`)).toEqual(
      POOLED_WORKLOADS.filter((w) => !w.pinned).map((w) => `${w.kind} ${w.clients}`)
    )
    expect(pinLayout(1)).toBeUndefined()
    expect(pinLayout(2)).toEqual({ proxy: "1", rest: "0", all: "0-1" })
    expect(pinLayout(8)).toEqual({ proxy: "7", rest: "0-6", all: "0-7" })
    expect(runsPinned("polyproxy-transaction@abc1234")).toBe(true)
    expect(runsPinned("pgbouncer-transaction-2")).toBe(false)
    expect(pinnedCommand("0", "/usr/bin/pgbench", ["-S"])).toEqual(["taskset", ["-c", "0", "/usr/bin/pgbench", "-S"]])
  })

  it("pins every thread of a process tree and undoes it", async () => {
    // A shell with a child: the pin reaches both, as it reaches the postmaster's backends.
    const shell = spawn("sh", ["-c", "sleep 30 & wait"], { stdio: "ignore" })
    try {
      let tree = processTree(shell.pid!)
      for (let i = 0; i < 100 && tree.length < 2; i++) {
        await new Promise((r) => setTimeout(r, 50))
        tree = processTree(shell.pid!)
      }
      expect(tree.length).toBe(2)
      const allowed = (pid: number) =>
        /^Cpus_allowed_list:\s+(\S+)$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]
      const before = allowed(shell.pid!)
      await pin(tree, "0")
      for (const pid of tree) expect(allowed(pid)).toBe("0")
      await pin(tree, before!)
      for (const pid of tree) expect(allowed(pid)).toBe(before)
      expect(parentOf(tree[1]!)).toBe(shell.pid)
    } finally {
      for (const pid of processTree(shell.pid!).reverse()) process.kill(pid, "SIGKILL")
    }
  })

  it("runs direct at the pool size in the pooled workloads, the poolers at the workload's clients", () => {
    expect(directClients("direct", 100, 10)).toBe(10)
    expect(directClients("polyproxy-transaction", 100, 10)).toBe(100)
    expect(directClients("pgbouncer-transaction", 50, 10)).toBe(50)
    expect(pooled.label).toContain("direct at 10 clients")
  })

  it("runs the two-process poolers only when named, and refuses a pool they cannot split", async () => {
    expect(PG_OPT_IN_VARIANTS).toEqual(["polyproxy-transaction-2", "pgbouncer-transaction-2"])
    for (const v of PG_OPT_IN_VARIANTS) expect(PG_VARIANTS).toContain(v)
    for (const name of ["polyproxy-transaction-2", "pgbouncer-transaction-2"] as const) {
      // Refused before anything starts: the server is never reached.
      const start = startPooledVariant({
        name,
        entry: { form: "dist", root: "/nonexistent" },
        dir: "/nonexistent",
        server: {} as PostgresServer,
        poolSize: 9,
        ready: async () => {}
      })
      await expect(start).rejects.toThrow(/--pg-pool-size 9 cannot be split evenly between 2 processes/)
    }
  })

  it("fails a pooled variant's run when the server held more backends than the pool size", () => {
    expect(() => checkPoolBound("polyproxy-transaction", 11, 10)).toThrow(/held 11 backends .* pool size 10/)
    expect(() => checkPoolBound("pgbouncer-transaction@abc1234", 12, 10)).toThrow(/held 12/)
    expect(() => checkPoolBound("polyproxy-transaction", 10, 10)).not.toThrow()
    expect(() => checkPoolBound("direct", 100, 10)).not.toThrow()
  })
})
