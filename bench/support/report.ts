// Summaries of interleaved runs (median, min–max, ratios paired by round, the headroom check) and the markdown tables
// of bench/results/latest.md. The chart is bench/support/chart.ts.
import type { Measurement, ScenarioResult, Workload } from "./interleave.ts"
import { comparedWith } from "./variant.ts"

export const median = (xs: readonly number[]): number | undefined => {
  if (xs.length === 0) return undefined
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

export interface Spread {
  readonly median: number
  readonly min: number
  readonly max: number
  readonly n: number
}

export const spread = (xs: readonly (number | undefined)[]): Spread | undefined => {
  const v = xs.filter((x): x is number => x !== undefined && Number.isFinite(x))
  if (v.length === 0) return undefined
  return { median: median(v)!, min: Math.min(...v), max: Math.max(...v), n: v.length }
}

export interface VariantSummary {
  readonly variant: string
  readonly rate?: Spread | undefined
  readonly cpuPerUnit?: Spread | undefined
  /** The load generator's own CPU seconds per workload.cpuPer ops (or bytes). */
  readonly loadgenCpuPerUnit?: Spread | undefined
  readonly p50?: Spread | undefined
  readonly p99?: Spread | undefined
  /** Variant ÷ reference, one ratio per round (both measured in that round), then median and min–max. */
  readonly vsReference?: Spread | undefined
  readonly vsCompare?: Spread | undefined
  /**
   * Generator- or origin-bound: in some round its rate came within HEADROOM of the reference's (the generator against
   * the bare backend in the same round). Its ratios say how fast the generator is, not the proxy.
   */
  readonly bound: boolean
  /** vsCompare is not a result: this variant or the one it is compared with is bound. */
  readonly compareBound: boolean
  /** Latency workloads: variant − reference per round, µs. */
  readonly addedP50?: Spread | undefined
  readonly addedP99?: Spread | undefined
  readonly failedRuns: number
  readonly maxForeignShare: number
  /**
   * A variant run from the revision given to `--compare` (`polyproxy@5faad42`): the working tree's same variant
   * (`now`) ÷ this one, paired by round, for the rate and the CPU per operation. The rate's is "bound" when either is.
   */
  readonly change?: BeforeAfter | undefined
}

export interface BeforeAfter {
  readonly now: string
  readonly rate?: Spread | undefined
  readonly cpuPerUnit?: Spread | undefined
  readonly bound: boolean
}

export interface WorkloadSummary {
  readonly workload: Workload
  readonly variants: readonly VariantSummary[]
}

/** A variant at or above this share of direct's rate in a round is bound by the generator or the origin. */
export const HEADROOM = 0.85

const ok = (m: Measurement) => m.error === undefined && m.discarded === undefined

/** Pairs each round's value of `a` with the same round's value of `b`. */
const pairs = (
  runs: readonly Measurement[],
  a: string,
  b: string,
  value: (m: Measurement) => number | undefined,
  combine: (x: number, y: number) => number
): number[] => {
  if (a === b) return []
  const out: number[] = []
  for (const ma of runs.filter((m) => m.variant === a && ok(m))) {
    const mb = runs.find((m) => m.variant === b && m.round === ma.round && ok(m))
    const x = value(ma)
    const y = mb === undefined ? undefined : value(mb)
    if (x !== undefined && y !== undefined && y !== 0) out.push(combine(x, y))
  }
  return out
}

const paired = (...args: Parameters<typeof pairs>): Spread | undefined => spread(pairs(...args))

/** `value(a) ÷ value(b)` paired by round over one workload's kept runs (e.g. CPU per op against a baseline's). */
export const pairedRatio = (
  result: ScenarioResult,
  workload: string,
  a: string,
  b: string,
  value: (m: Measurement) => number | undefined
): Spread | undefined =>
  paired(
    result.measurements.filter((m) => m.workload === workload && m.discarded === undefined),
    a,
    b,
    value,
    (x, y) => x / y
  )

/** The variant a workload's second ratio is taken against: its own, else the scenario's (HAProxy, nginx). */
export const compareOf = (result: ScenarioResult, workload: Workload): string | undefined =>
  workload.compareTo ?? result.compareTo

/** Measurements the summaries count: neither failed nor thrown away by the noise rule. */
export const keptRuns = (result: ScenarioResult): Measurement[] => result.measurements.filter(ok)

export const summarize = (result: ScenarioResult): WorkloadSummary[] =>
  result.workloads.map((workload) => {
    const runs = result.measurements.filter((m) => m.workload === workload.id && m.discarded === undefined)
    const present = result.variants.filter((v) => runs.some((m) => m.variant === v.name))
    const rate = (m: Measurement) => m.rate
    const ratio = (x: number, y: number) => x / y
    const minus = (x: number, y: number) => x - y
    const compareTo = compareOf(result, workload)
    // The headroom check needs the bare backend as the reference, and a throughput (not 1-connection latency).
    const isBound = (name: string) =>
      workload.kind === "rate" &&
      result.reference === "direct" &&
      pairs(runs, name, result.reference, rate, ratio).some((r) => r >= HEADROOM)
    return {
      workload,
      variants: present.map((v): VariantSummary => {
        const mine = runs.filter((m) => m.variant === v.name)
        const good = mine.filter(ok)
        const amount = (m: Measurement) => (workload.cpuPer >= 1e6 ? m.bytes : m.ops)
        const bound = isBound(v.name)
        const now = comparedWith(v.name)
        return {
          variant: v.name,
          rate: spread(good.map(rate)),
          cpuPerUnit: spread(good.map((m) => m.cpuPerUnit)),
          loadgenCpuPerUnit: spread(
            good.map((m) =>
              m.loadgenCpuSeconds === undefined || !amount(m)
                ? undefined
                : (m.loadgenCpuSeconds * workload.cpuPer) / amount(m)!
            )
          ),
          p50: spread(good.map((m) => m.latencyUs?.p50)),
          p99: spread(good.map((m) => m.latencyUs?.p99)),
          vsReference: paired(runs, v.name, result.reference, rate, ratio),
          vsCompare: compareTo ? paired(runs, v.name, compareTo, rate, ratio) : undefined,
          bound,
          compareBound: compareTo !== undefined && (bound || isBound(compareTo)),
          addedP50: paired(runs, v.name, result.reference, (m) => m.latencyUs?.p50, minus),
          addedP99: paired(runs, v.name, result.reference, (m) => m.latencyUs?.p99, minus),
          failedRuns: mine.length - good.length,
          maxForeignShare: Math.max(0, ...mine.map((m) => m.foreignShare ?? 0)),
          change:
            now === undefined
              ? undefined
              : {
                  now,
                  rate: paired(runs, now, v.name, rate, ratio),
                  cpuPerUnit: paired(runs, now, v.name, (m) => m.cpuPerUnit, ratio),
                  bound: bound || isBound(now)
                }
        }
      })
    }
  })

// ---------------------------------------------------------------------------------------------------------------
// Markdown

const fixed = (n: number, digits: number) => n.toFixed(digits)
const digitsFor = (n: number) => (Math.abs(n) >= 100 ? 0 : Math.abs(n) >= 10 ? 1 : 2)
const rateText = (s: Spread | undefined, w: Workload) => {
  if (s === undefined) return "–"
  const d = (x: number) => x / w.displayDivisor
  return fixed(d(s.median), digitsFor(d(s.median)))
}
const rangeText = (s: Spread | undefined, w: Workload) => {
  if (s === undefined) return "–"
  const d = (x: number) => x / w.displayDivisor
  const digits = digitsFor(d(s.median))
  return s.n === 1 ? "(1 run)" : `${fixed(d(s.min), digits)}–${fixed(d(s.max), digits)}`
}
export const ratioText = (s: Spread | undefined) =>
  s === undefined
    ? "–"
    : s.n === 1
      ? `${s.median.toFixed(2)}×`
      : `${s.median.toFixed(2)}× (${s.min.toFixed(2)}–${s.max.toFixed(2)})`
const cpuText = (s: Spread | undefined) => (s === undefined ? "–" : s.median.toFixed(s.median >= 1 ? 2 : 3))
const cpu = (s: Spread | undefined, w: Workload) => (s ? `${cpuText(s)} ${w.cpuUnit}` : "–")
const usText = (s: Spread | undefined) => (s === undefined ? "–" : s.median.toFixed(1))
const signedUs = (s: Spread | undefined) =>
  s === undefined ? "–" : `${s.median >= 0 ? "+" : ""}${s.median.toFixed(1)}`

/** "bound (0.91×)": the ratio to direct of a bound variant, shown as evidence, never as a result. */
const referenceText = (v: VariantSummary) =>
  v.bound ? `bound (${v.vsReference?.median.toFixed(2) ?? "?"}×)` : ratioText(v.vsReference)
export const compareText = (v: VariantSummary) => (v.compareBound ? "bound" : ratioText(v.vsCompare))

/** What the headroom check and the noise rule did in this scenario, for the lines under its tables. */
export const scenarioChecks = (result: ScenarioResult) => {
  const bound = summarize(result).flatMap((s) =>
    s.variants.filter((v) => v.bound).map((v) => ({ workload: s.workload.id, variant: v.variant }))
  )
  const round = (m: Measurement) => `${m.workload} round ${m.round}`
  const discarded = result.measurements.filter((m) => m.discarded !== undefined)
  // A round is lost when every attempt at it was discarded; each discarded attempt is one rerun asked for.
  const lost = [...new Set(discarded.map(round))].filter(
    (r) => !result.measurements.some((m) => round(m) === r && m.discarded === undefined)
  )
  const reruns = new Set(discarded.map((m) => `${round(m)} ${m.discarded}`)).size
  const noisy = result.measurements.filter((m) => m.noisy)
  return { bound, reruns, lost, noisy }
}

/** `--compare`: each working-tree polyproxy variant against the same one from the compared revision. */
const renderBeforeAfter = (summaries: readonly WorkloadSummary[], label: (name: string) => string): string[] => {
  const rows = summaries.flatMap((s) =>
    s.variants.flatMap((v) => {
      const now = s.variants.find((x) => x.variant === v.change?.now)
      if (v.change === undefined || now === undefined) return []
      const w = s.workload
      return [
        `| ${w.label} (${w.unit}) | ${label(now.variant)} | ${v.variant.slice(now.variant.length + 1)} | ` +
          `${rateText(now.rate, w)} | ${rateText(v.rate, w)} | ${v.change.bound ? "bound" : ratioText(v.change.rate)} | ` +
          `${cpu(now.cpuPerUnit, w)} | ${cpu(v.cpuPerUnit, w)} | ${ratioText(v.change.cpuPerUnit)} |`
      ]
    })
  )
  return rows.length === 0
    ? []
    : [
        "Before/after (`--compare`): each polyproxy variant now and the same one from that revision, same config, " +
          "in the same rounds; now ÷ then paired by round. A rate ratio under 1× or a CPU ratio over 1× is a " +
          "regression (read it against the min–max: the machine is shared).",
        "",
        "| workload | variant | revision | rate now | rate then | rate now ÷ then | CPU now | CPU then | CPU now ÷ then |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|",
        ...rows,
        ""
      ]
}

export const renderScenario = (result: ScenarioResult): string[] => {
  const label = (name: string) => result.variants.find((v) => v.name === name)?.label ?? name
  const ref = label(result.reference)
  const lines: string[] = [`## ${result.title}`, ""]
  const summaries = summarize(result)
  const rates = summaries.filter((s) => s.workload.kind === "rate")
  // One table per variant the ratios are taken against: workloads with a compareTo of their own get their own.
  for (const compareTo of [...new Set(rates.map((s) => compareOf(result, s.workload)))]) {
    const cmp = compareTo === undefined ? undefined : label(compareTo)
    lines.push(
      `| workload | variant | median | min–max | ÷ ${ref} | ${cmp ? `÷ ${cmp} | ` : ""}proxy CPU (median) | generator CPU |`,
      `|---|---|--:|--:|--:|${cmp ? "--:|" : ""}--:|--:|`
    )
    for (const s of rates.filter((x) => compareOf(result, x.workload) === compareTo)) {
      for (const v of s.variants) {
        const w = s.workload
        lines.push(
          `| ${w.label} (${w.unit}) | ${label(v.variant)} | ${rateText(v.rate, w)} | ${rangeText(v.rate, w)} | ` +
            `${v.variant === result.reference ? "1" : referenceText(v)} | ` +
            (cmp ? `${v.variant === compareTo ? (v.bound ? "bound" : "1") : compareText(v)} | ` : "") +
            `${cpu(v.cpuPerUnit, w)} | ${cpu(v.loadgenCpuPerUnit, w)} |`
        )
      }
    }
    lines.push("")
  }
  for (const s of summaries.filter((x) => x.workload.kind === "latency")) {
    const w = s.workload
    lines.push(
      `${w.label}: µs per round trip, median over rounds; added = variant − ${ref} in the same round.`,
      "",
      `| variant | p50 µs | p99 µs | added p50 µs | added p99 µs | round trips/s | proxy CPU (median) |`,
      "|---|--:|--:|--:|--:|--:|--:|"
    )
    for (const v of s.variants) {
      const isRef = v.variant === result.reference
      lines.push(
        `| ${label(v.variant)} | ${usText(v.p50)} | ${usText(v.p99)} | ${isRef ? "0" : signedUs(v.addedP50)} | ` +
          `${isRef ? "0" : signedUs(v.addedP99)} | ${rateText(v.rate, w)} | ${cpu(v.cpuPerUnit, w)} |`
      )
    }
    lines.push("")
  }
  lines.push(...renderBeforeAfter(summaries, label))
  const checks = scenarioChecks(result)
  lines.push(
    result.reference === "direct"
      ? `Headroom: every round ran the same generator against the bare backend (${ref}); a variant that came within ` +
          `${Math.round((1 - HEADROOM) * 100)} % of its rate in a round is generator- or origin-bound and its ratios ` +
          'read "bound": they are not results. ' +
          (checks.bound.length === 0
            ? "No variant was bound."
            : `**Bound: ${checks.bound.map((b) => `${b.workload} ${label(b.variant)}`).join(", ")}.**`)
      : "Headroom: no bare-backend reference in this scenario.",
    ""
  )
  const maxForeign = Math.max(0, ...keptRuns(result).map((m) => m.foreignShare ?? 0))
  lines.push(
    `Noise: other processes used at most ${(maxForeign * 100).toFixed(1)} % of the machine during a kept run. ` +
      (checks.reruns === 0 ? "No round was discarded." : `${checks.reruns} noisy round(s) discarded and rerun.`) +
      (checks.lost.length === 0 ? "" : ` **Lost (still noisy after every retry): ${checks.lost.join(", ")}.**`) +
      (checks.noisy.length === 0
        ? ""
        : ` **${checks.noisy.length} noisy run(s) kept (development run or smoke): not publishable.**`),
    ""
  )
  const failed = result.measurements.filter((m) => m.error !== undefined && m.discarded === undefined)
  if (failed.length > 0) {
    lines.push("Failed runs:", "")
    for (const m of failed) lines.push(`- ${m.workload} round ${m.round} ${m.variant}: ${m.error?.split("\n")[0]}`)
    lines.push("")
  }
  for (const note of result.notes) lines.push(`- ${note}`)
  if (result.notes.length > 0) lines.push("")
  lines.push("Variants:", "")
  for (const v of result.variants) lines.push(`- **${v.label}**: ${v.description}`)
  lines.push("")
  return lines
}
