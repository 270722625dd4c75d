// Summaries of interleaved runs (median, min–max, ratios paired by round) and their renderings: the markdown tables
// of bench/results/latest.md and the hand-written SVG chart of the ratios (bench/results/latest.svg).
import type { Measurement, ScenarioResult, Workload } from "./interleave.ts"

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
  readonly p50?: Spread | undefined
  readonly p99?: Spread | undefined
  /** Variant ÷ reference, one ratio per round (both measured in that round), then median and min–max. */
  readonly vsReference?: Spread | undefined
  readonly vsCompare?: Spread | undefined
  /** Latency workloads: variant − reference per round, µs. */
  readonly addedP50?: Spread | undefined
  readonly addedP99?: Spread | undefined
  readonly failedRuns: number
  readonly maxForeignShare: number
}

export interface WorkloadSummary {
  readonly workload: Workload
  readonly variants: readonly VariantSummary[]
}

const ok = (m: Measurement) => m.error === undefined

/** Pairs each round's value of `a` with the same round's value of `b`. */
const paired = (
  runs: readonly Measurement[],
  a: string,
  b: string,
  value: (m: Measurement) => number | undefined,
  combine: (x: number, y: number) => number
): Spread | undefined => {
  if (a === b) return undefined
  const out: number[] = []
  for (const ma of runs.filter((m) => m.variant === a && ok(m))) {
    const mb = runs.find((m) => m.variant === b && m.round === ma.round && ok(m))
    const x = value(ma)
    const y = mb === undefined ? undefined : value(mb)
    if (x !== undefined && y !== undefined && y !== 0) out.push(combine(x, y))
  }
  return spread(out)
}

export const summarize = (result: ScenarioResult): WorkloadSummary[] =>
  result.workloads.map((workload) => {
    const runs = result.measurements.filter((m) => m.workload === workload.id)
    const present = result.variants.filter((v) => runs.some((m) => m.variant === v.name))
    return {
      workload,
      variants: present.map((v): VariantSummary => {
        const mine = runs.filter((m) => m.variant === v.name)
        const good = mine.filter(ok)
        const rate = (m: Measurement) => m.rate
        const ratio = (x: number, y: number) => x / y
        const minus = (x: number, y: number) => x - y
        return {
          variant: v.name,
          rate: spread(good.map(rate)),
          cpuPerUnit: spread(good.map((m) => m.cpuPerUnit)),
          p50: spread(good.map((m) => m.latencyUs?.p50)),
          p99: spread(good.map((m) => m.latencyUs?.p99)),
          vsReference: paired(runs, v.name, result.reference, rate, ratio),
          vsCompare: result.compareTo ? paired(runs, v.name, result.compareTo, rate, ratio) : undefined,
          addedP50: paired(runs, v.name, result.reference, (m) => m.latencyUs?.p50, minus),
          addedP99: paired(runs, v.name, result.reference, (m) => m.latencyUs?.p99, minus),
          failedRuns: mine.length - good.length,
          maxForeignShare: Math.max(0, ...mine.map((m) => m.foreignShare ?? 0))
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
const usText = (s: Spread | undefined) => (s === undefined ? "–" : s.median.toFixed(1))
const signedUs = (s: Spread | undefined) =>
  s === undefined ? "–" : `${s.median >= 0 ? "+" : ""}${s.median.toFixed(1)}`

/** Other processes above this share of the machine during a run: the run is listed as noisy. */
export const NOISY_SHARE = 0.05

export const renderScenario = (result: ScenarioResult): string[] => {
  const label = (name: string) => result.variants.find((v) => v.name === name)?.label ?? name
  const ref = label(result.reference)
  const cmp = result.compareTo ? label(result.compareTo) : undefined
  const lines: string[] = [`## ${result.title}`, ""]
  const summaries = summarize(result)
  const rates = summaries.filter((s) => s.workload.kind === "rate")
  if (rates.length > 0) {
    lines.push(
      `| workload | variant | median | min–max | ÷ ${ref} | ${cmp ? `÷ ${cmp} | ` : ""}proxy CPU (median) |`,
      `|---|---|--:|--:|--:|${cmp ? "--:|" : ""}--:|`
    )
    for (const s of rates) {
      for (const v of s.variants) {
        const w = s.workload
        lines.push(
          `| ${w.label} (${w.unit}) | ${label(v.variant)} | ${rateText(v.rate, w)} | ${rangeText(v.rate, w)} | ` +
            `${v.variant === result.reference ? "1" : ratioText(v.vsReference)} | ` +
            (cmp ? `${v.variant === result.compareTo ? "1" : ratioText(v.vsCompare)} | ` : "") +
            `${v.cpuPerUnit ? `${cpuText(v.cpuPerUnit)} ${w.cpuUnit}` : "–"} |`
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
          `${isRef ? "0" : signedUs(v.addedP99)} | ${rateText(v.rate, w)} | ` +
          `${v.cpuPerUnit ? `${cpuText(v.cpuPerUnit)} ${w.cpuUnit}` : "–"} |`
      )
    }
    lines.push("")
  }
  const noisy = result.measurements.filter((m) => (m.foreignShare ?? 0) > NOISY_SHARE)
  const maxForeign = Math.max(0, ...result.measurements.map((m) => m.foreignShare ?? 0))
  lines.push(
    `Noise: other processes on the machine (outside the bench's own process tree) used at most ` +
      `${(maxForeign * 100).toFixed(1)} % of its CPU during a run` +
      (noisy.length === 0
        ? "."
        : `; ${noisy.length} of ${result.measurements.length} runs above ${NOISY_SHARE * 100} % (treat as noisy): ` +
          noisy
            .slice(0, 12)
            .map((m) => `${m.workload} r${m.round} ${m.variant} ${((m.foreignShare ?? 0) * 100).toFixed(0)} %`)
            .join(", ") +
          (noisy.length > 12 ? ", …" : "") +
          "."),
    ""
  )
  const failed = result.measurements.filter((m) => m.error !== undefined)
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

// ---------------------------------------------------------------------------------------------------------------
// SVG chart of the ratios

export interface ChartGroup {
  readonly title: string
  /** The ratio a target asks for (a red tick across the group), if any. */
  readonly target?: number
  readonly bars: ReadonlyArray<{ readonly label: string; readonly ratio: Spread | undefined }>
}

export interface ChartPanel {
  readonly title: string
  readonly groups: readonly ChartGroup[]
}

const esc = (s: string) => s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
const palette = ["#3b6fb6", "#7fa7dc", "#d0803a", "#59a14f", "#8c6bb1", "#b07aa1"]

/** Horizontal bars (median ratio, min–max whisker), a line at 1.0 and each group's target tick. */
export const renderSvg = (title: string, subtitle: string, panels: readonly ChartPanel[]): string => {
  const width = 880
  const labelWidth = 250
  const plotLeft = labelWidth + 10
  const plotWidth = width - plotLeft - 70
  const barH = 14
  const gap = 4
  const all = panels.flatMap((p) => p.groups.flatMap((g) => g.bars.map((b) => b.ratio?.max ?? 0)))
  const maxRatio = Math.max(1.25, ...all, ...panels.flatMap((p) => p.groups.map((g) => g.target ?? 0))) * 1.05
  const x = (r: number) => plotLeft + (Math.min(r, maxRatio) / maxRatio) * plotWidth
  const colors = new Map<string, string>()
  const color = (label: string) => {
    if (!colors.has(label)) colors.set(label, palette[colors.size % palette.length]!)
    return colors.get(label)!
  }
  const out: string[] = []
  let y = 48
  for (const panel of panels) {
    y += 10
    out.push(`<text x="10" y="${y}" class="panel">${esc(panel.title)}</text>`)
    y += 10
    const top = y
    for (const g of panel.groups) {
      y += 16
      out.push(`<text x="10" y="${y}" class="group">${esc(g.title)}</text>`)
      const groupTop = y + 4
      y += 4
      for (const b of g.bars) {
        const r = b.ratio
        out.push(`<text x="${labelWidth}" y="${y + barH - 3}" class="label" text-anchor="end">${esc(b.label)}</text>`)
        if (r !== undefined) {
          out.push(
            `<rect x="${plotLeft}" y="${y}" width="${(x(r.median) - plotLeft).toFixed(1)}" height="${barH}" fill="${color(b.label)}"/>`
          )
          if (r.n > 1) {
            const cy = y + barH / 2
            out.push(
              `<line x1="${x(r.min).toFixed(1)}" x2="${x(r.max).toFixed(1)}" y1="${cy}" y2="${cy}" class="whisker"/>`
            )
          }
          out.push(
            `<text x="${(x(Math.max(r.median, r.max)) + 4).toFixed(1)}" y="${y + barH - 3}" class="value">${r.median.toFixed(2)}×</text>`
          )
        } else {
          out.push(`<text x="${plotLeft + 4}" y="${y + barH - 3}" class="value">no data</text>`)
        }
        y += barH + gap
      }
      if (g.target !== undefined) {
        out.push(
          `<line x1="${x(g.target).toFixed(1)}" x2="${x(g.target).toFixed(1)}" y1="${groupTop - 2}" y2="${y - gap + 2}" class="target"/>`
        )
      }
    }
    out.push(`<line x1="${x(1)}" x2="${x(1)}" y1="${top}" y2="${y}" class="one"/>`)
    for (const t of [0, 0.5, 1, 1.5, 2, 2.5, 3].filter((t) => t <= maxRatio)) {
      out.push(`<text x="${x(t)}" y="${y + 12}" class="axis" text-anchor="middle">${t}×</text>`)
    }
    y += 20
  }
  y += 18
  out.push(
    `<text x="10" y="${y}" class="note">Bars: median of per-round ratios; whiskers: min–max over rounds; ` +
      "red tick: the issue's target; grey line: 1×.</text>"
  )
  const height = y + 12
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<title>${esc(title)}</title>`,
    "<style>",
    ".title{font-size:16px;font-weight:bold}.subtitle{font-size:11px;fill:#555}.panel{font-size:14px;font-weight:bold}",
    ".group{font-size:12px;font-weight:bold;fill:#333}.label{font-size:11px}.value{font-size:11px;fill:#222}",
    ".axis{font-size:10px;fill:#666}.note{font-size:10px;fill:#666}",
    ".whisker{stroke:#222;stroke-width:1.2}.target{stroke:#d62728;stroke-width:2}",
    ".one{stroke:#999;stroke-dasharray:3 3}",
    "</style>",
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="10" y="22" class="title">${esc(title)}</text>`,
    `<text x="10" y="38" class="subtitle">${esc(subtitle)}</text>`,
    ...out,
    "</svg>",
    ""
  ].join("\n")
}
