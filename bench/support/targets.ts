// What a run of bench/run.ts is judged by: the targets of issues 24 and 21 (each a ratio to the C baseline, or a
// CPU-per-operation ratio), the README's Performance table made from the same figures, and the chart's panels. A
// ratio that involves a bound variant is "bound", never "meets" or "misses".
import type { ChartPanel } from "./chart.ts"
import type { ScenarioResult } from "./interleave.ts"
import {
  compareOf,
  compareText,
  pairedRatio,
  ratioText,
  type Spread,
  summarize,
  type VariantSummary
} from "./report.ts"

export interface Target {
  /** The issue that set it. */
  readonly issue: number
  readonly name: string
  readonly ratio: Spread | undefined
  /** "≥": the ratio must reach the goal; "≤": it must stay under it (CPU per operation). */
  readonly sense: "≥" | "≤"
  readonly goal: number
  readonly bound: boolean
  readonly detail: string
}

/**
 * One row per target: scenario, workload, polyproxy's variant, the goal. It is compared with the workload's
 * `compareTo` (bench/support/report.ts compareOf): the scenario's baseline, or the workload's own.
 */
interface TargetSpec {
  readonly issue: number
  readonly scenario: string
  readonly workload: string
  readonly variant: string
  readonly name: string
  readonly goal: number
  /** Also a CPU-per-operation target: polyproxy's ÷ the baseline's, at most this. */
  readonly cpuGoal?: number
}

const SPECS: readonly TargetSpec[] = [
  { issue: 24, scenario: "tcp", workload: "conn", variant: "polyproxy-1", name: "tcp new connections/s", goal: 0.7 },
  { issue: 24, scenario: "tcp", workload: "echo", variant: "polyproxy-1", name: "tcp 1 KB echo ops/s", goal: 1.0 },
  { issue: 24, scenario: "tcp", workload: "bulk", variant: "polyproxy-1", name: "tcp bulk 64 KB MB/s", goal: 1.1 },
  {
    issue: 24,
    scenario: "http",
    workload: "get1k",
    variant: "polyproxy",
    name: "HTTP keep-alive GET 1 KB req/s (wrk)",
    goal: 0.8,
    cpuGoal: 1.5
  },
  {
    issue: 24,
    scenario: "pg",
    workload: "select-only-c10",
    variant: "polyproxy",
    name: "pgbench -S c=10, postgres listener",
    goal: 1.0,
    cpuGoal: 1.3
  },
  {
    issue: 24,
    scenario: "mysql",
    workload: "select1-c10",
    variant: "polyproxy",
    name: "mysqlslap SELECT 1 c=10",
    goal: 1.0
  },
  {
    issue: 24,
    scenario: "sni",
    workload: "tls",
    variant: "polyproxy",
    name: "TLS SNI passthrough new connections/s",
    goal: 0.8
  },
  {
    issue: 24,
    scenario: "smtp",
    workload: "64k-c10",
    variant: "polyproxy",
    name: "SMTP 64 KB messages/s (smtp-source), 10 sessions",
    goal: 1.0
  },
  // Issue 21: transaction pooling against PgBouncer's, same pool size (the workloads of bench/pg/pooled.ts).
  {
    issue: 21,
    scenario: "pg",
    workload: "pooled-select-only-c100",
    variant: "polyproxy-transaction",
    name: "pgbench -S c=100 transaction pooling",
    goal: 1.0
  },
  {
    issue: 21,
    scenario: "pg",
    workload: "pooled-tpcb-like-c50",
    variant: "polyproxy-transaction",
    name: "pgbench TPC-B-like c=50 transaction pooling",
    goal: 1.0
  },
  // The same with the pooler on a core of its own (bench/support/pin.ts): its throughput without taking CPU from
  // PostgreSQL and pgbench.
  {
    issue: 21,
    scenario: "pg",
    workload: "pooled-select-only-c100-pinned",
    variant: "polyproxy-transaction",
    name: "pgbench -S c=100 transaction pooling, pooler on its own core",
    goal: 1.0
  },
  {
    issue: 21,
    scenario: "pg",
    workload: "pooled-tpcb-like-c50-pinned",
    variant: "polyproxy-transaction",
    name: "pgbench TPC-B-like c=50 transaction pooling, pooler on its own core",
    goal: 1.0
  }
]

const variantSummary = (r: ScenarioResult, workload: string, variant: string): VariantSummary | undefined =>
  summarize(r)
    .find((s) => s.workload.id === workload)
    ?.variants.find((v) => v.variant === variant)

/** What `workload` of `r` is compared with (the scenario's baseline or the workload's own), if anything. */
const compareOfId = (r: ScenarioResult, workload: string): string | undefined => {
  const w = r.workloads.find((x) => x.id === workload)
  return w === undefined ? r.compareTo : compareOf(r, w)
}

const labelOf = (r: ScenarioResult, name: string) => r.variants.find((v) => v.name === name)?.label ?? name

const cpuText = (r: ScenarioResult, workload: string, variant: string) => {
  const s = variantSummary(r, workload, variant)?.cpuPerUnit
  const unit = r.workloads.find((w) => w.id === workload)?.cpuUnit ?? ""
  return s === undefined ? "–" : `${s.median.toFixed(s.median >= 1 ? 2 : 3)} ${unit}`
}

export const targets = (scenarios: Readonly<Record<string, ScenarioResult>>): Target[] => {
  const out: Target[] = []
  for (const spec of SPECS) {
    const r = scenarios[spec.scenario]
    const v = r === undefined ? undefined : variantSummary(r, spec.workload, spec.variant)
    const compareTo = r === undefined ? undefined : compareOfId(r, spec.workload)
    if (r === undefined || v === undefined || compareTo === undefined) continue
    const base = labelOf(r, compareTo)
    const relay = variantSummary(r, spec.workload, "node-relay")
    const cpuBeside = `CPU: polyproxy ${cpuText(r, spec.workload, spec.variant)}, ${base} ${cpuText(r, spec.workload, compareTo)}`
    const beside = [cpuBeside, ...(relay ? [`minimal Node relay ÷ ${base} ${compareText(relay)}`] : [])].join("; ")
    out.push({
      issue: spec.issue,
      name: `${spec.name}: polyproxy ÷ ${base}`,
      ratio: v.vsCompare,
      sense: "≥",
      goal: spec.goal,
      bound: v.compareBound,
      detail: beside
    })
    if (spec.cpuGoal !== undefined) {
      out.push({
        issue: spec.issue,
        name: `${spec.name}: polyproxy's CPU per operation ÷ ${base}'s`,
        ratio: pairedRatio(r, spec.workload, spec.variant, compareTo, (m) => m.cpuPerUnit),
        sense: "≤",
        goal: spec.cpuGoal,
        bound: false,
        detail: cpuBeside
      })
    }
  }
  return out
}

export const verdict = (t: Target): string =>
  t.bound
    ? "bound"
    : t.ratio === undefined
      ? "–"
      : (t.sense === "≥" ? t.ratio.median >= t.goal : t.ratio.median <= t.goal)
        ? "meets"
        : "misses"

const issuesText = (list: readonly Target[]) => {
  const issues = [...new Set(list.map((t) => t.issue))].sort((a, b) => a - b)
  return `issue${issues.length > 1 ? "s" : ""} ${issues.join(", ")}`
}

export const renderTargets = (list: readonly Target[]): string[] =>
  list.length === 0
    ? []
    : [
        `## Targets (${issuesText(list)})`,
        "",
        "| target | issue | measured (median of per-round ratios, min–max) | goal | verdict | beside it |",
        "|---|--:|--:|--:|---|---|",
        ...list.map(
          (t) =>
            `| ${t.name} | ${t.issue} | ${t.bound ? "bound" : ratioText(t.ratio)} | ${t.sense} ${t.goal}× | ${verdict(t)} | ${t.detail} |`
        ),
        ""
      ]

/**
 * The README's Performance table, bench rows: for every target scenario, polyproxy's rate against the baseline's,
 * the ratio, the minimal Node relay's ratio where it ran, and both CPU figures per operation.
 */
export const readmeTable = (scenarios: Readonly<Record<string, ScenarioResult>>): string[] => {
  const rows: string[] = [
    "| scenario (1 polyproxy worker vs 1 HAProxy thread / 1 nginx worker / PgBouncer) | polyproxy | baseline | polyproxy ÷ baseline | minimal Node relay ÷ baseline | CPU per operation (polyproxy vs baseline) |",
    "|---|--:|--:|--:|--:|---|"
  ]
  const seen = new Set<string>()
  const specs = [
    ...SPECS,
    {
      scenario: "pg",
      workload: "select-only-c10",
      variant: "polyproxy-tcp",
      name: "pgbench -S c=10, tcp listener",
      goal: 0
    }
  ]
  for (const spec of specs) {
    const r = scenarios[spec.scenario]
    const compareTo = r === undefined ? undefined : compareOfId(r, spec.workload)
    if (r === undefined || compareTo === undefined || seen.has(`${spec.scenario}/${spec.workload}/${spec.variant}`)) {
      continue
    }
    seen.add(`${spec.scenario}/${spec.workload}/${spec.variant}`)
    const w = r.workloads.find((x) => x.id === spec.workload)
    const v = variantSummary(r, spec.workload, spec.variant)
    const b = variantSummary(r, spec.workload, compareTo)
    if (w === undefined || v === undefined) continue
    const rate = (s: VariantSummary | undefined) =>
      s?.rate === undefined ? "–" : `${Math.round(s.rate.median / w.displayDivisor).toLocaleString("en-US")} ${w.unit}`
    const relay = variantSummary(r, spec.workload, "node-relay")
    rows.push(
      `| ${spec.name} | ${rate(v)} | ${labelOf(r, compareTo)} ${rate(b)} | ${compareText(v)} | ` +
        `${relay ? compareText(relay) : "—"} | ${cpuText(r, spec.workload, spec.variant)} vs ${cpuText(r, spec.workload, compareTo)} |`
    )
  }
  return rows
}

/**
 * One panel per scenario with a baseline: every variant's rate ÷ the baseline's, the targets as red ticks. A workload
 * compared with a baseline of its own (PgBouncer in transaction mode) names it in its title.
 */
export const chartPanels = (scenarios: Readonly<Record<string, ScenarioResult>>): ChartPanel[] =>
  Object.values(scenarios).flatMap((r): ChartPanel[] => {
    const base = r.compareTo
    if (base === undefined) return []
    const groups = summarize(r)
      .filter((s) => s.workload.kind === "rate")
      .map((s) => {
        const goal = SPECS.find((t) => t.scenario === r.scenario && t.workload === s.workload.id)?.goal
        const compareTo = s.workload.compareTo ?? base
        return {
          title: compareTo === base ? s.workload.label : `${s.workload.label} (÷ ${labelOf(r, compareTo)})`,
          ...(goal !== undefined ? { target: goal } : {}),
          bars: s.variants
            .filter((v) => v.variant !== r.reference && v.variant !== compareTo)
            .map((v) => ({ label: labelOf(r, v.variant), ratio: v.vsCompare, bound: v.compareBound }))
        }
      })
    return [{ title: `${r.scenario}: rate ÷ ${labelOf(r, base)}`, groups }]
  })
