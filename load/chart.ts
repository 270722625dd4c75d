// An SVG line chart of memory per connection against connections held: the proxy's total RSS per connection, its
// marginal RSS per connection (what the budget checks), the kernel's socket memory per proxied connection, and the
// budget line. No dependency: plain SVG text. The y axis is logarithmic: "total ÷ connections" starts in the hundreds
// of KB (every worker's ≈ 85 MB over few connections) while the figures that matter sit at 1–20 KB; on a linear axis
// the first one set the scale and flattened the others (marginal, slope, kernel, the 6 KB budget) onto the floor.
//   node load/chart.ts load/results/FILE.json …   redraws FILE.svg beside each results file
import { readFileSync, writeFileSync } from "node:fs"
import { fileURLToPath } from "node:url"

export interface ChartSeries {
  readonly name: string
  readonly color: string
  readonly points: ReadonlyArray<readonly [number, number]>
  readonly dashed?: boolean
}

const esc = (s: string) => s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")

const niceStep = (range: number, ticks: number) => {
  const raw = range / ticks
  const mag = 10 ** Math.floor(Math.log10(raw))
  const n = raw / mag
  return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * mag
}

/** Ticks of a log10 axis from `lo` to `hi`: 1, 2 and 5 times each power of ten in between. */
const logTicks = (lo: number, hi: number): number[] => {
  const out: number[] = []
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e
      if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v)
    }
  }
  return out
}

export const lineChart = (
  title: string,
  xLabel: string,
  yLabel: string,
  series: ReadonlyArray<ChartSeries>
): string => {
  const w = 760
  const h = 420
  const left = 70
  const right = 210
  const top = 40
  const bottom = 50
  // Only positive values have a place on a log axis (a slope can come out ≤ 0 between two noisy steps).
  const all = series.flatMap((s) => s.points).filter((p) => p[1] > 0)
  const xMax = Math.max(1, ...all.map((p) => p[0]))
  const ys = all.map((p) => p[1])
  const yLo = 10 ** Math.floor(Math.log10(Math.max(0.01, Math.min(1, ...ys))))
  const yHi = 10 ** Math.ceil(Math.log10(Math.max(10, ...ys)))
  const px = (x: number) => left + (x / xMax) * (w - left - right)
  const py = (y: number) =>
    h - bottom - ((Math.log10(y) - Math.log10(yLo)) / (Math.log10(yHi) - Math.log10(yLo))) * (h - top - bottom)
  const out: Array<string> = []
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif" font-size="12">`
  )
  out.push(`<title>${esc(title)}</title>`)
  out.push(`<rect width="${w}" height="${h}" fill="white"/>`)
  out.push(`<text x="${w / 2 - right / 2}" y="22" text-anchor="middle" font-size="14">${esc(title)}</text>`)
  const xs = niceStep(xMax, 6)
  for (let x = 0; x <= xMax + 1e-9; x += xs) {
    out.push(`<line x1="${px(x)}" y1="${top}" x2="${px(x)}" y2="${h - bottom}" stroke="#eee"/>`)
    const label = x >= 1000 ? `${Math.round(x / 1000)}k` : String(x)
    out.push(`<text x="${px(x)}" y="${h - bottom + 16}" text-anchor="middle">${label}</text>`)
  }
  for (const y of logTicks(yLo, yHi)) {
    out.push(`<line x1="${left}" y1="${py(y).toFixed(1)}" x2="${w - right}" y2="${py(y).toFixed(1)}" stroke="#eee"/>`)
    out.push(`<text x="${left - 6}" y="${(py(y) + 4).toFixed(1)}" text-anchor="end">${+y.toPrecision(2)}</text>`)
  }
  out.push(`<line x1="${left}" y1="${h - bottom}" x2="${w - right}" y2="${h - bottom}" stroke="black"/>`)
  out.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${h - bottom}" stroke="black"/>`)
  out.push(`<text x="${(left + w - right) / 2}" y="${h - 12}" text-anchor="middle">${esc(xLabel)}</text>`)
  out.push(
    `<text transform="translate(18 ${(top + h - bottom) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)} (log scale)</text>`
  )
  series.forEach((s, i) => {
    const points = s.points.filter((p) => p[1] > 0)
    if (points.length === 0) return
    const d = points.map((p, j) => `${j === 0 ? "M" : "L"}${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join(" ")
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : ""
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${dash}/>`)
    if (!s.dashed) {
      for (const p of points) {
        out.push(`<circle cx="${px(p[0]).toFixed(1)}" cy="${py(p[1]).toFixed(1)}" r="3" fill="${s.color}"/>`)
      }
    }
    const ly = top + 10 + i * 20
    out.push(`<line x1="${w - right + 12}" y1="${ly}" x2="${w - right + 36}" y2="${ly}" stroke="${s.color}"${dash}/>`)
    out.push(`<text x="${w - right + 42}" y="${ly + 4}">${esc(s.name)}</text>`)
  })
  out.push("</svg>")
  return `${out.join("\n")}\n`
}

/** What memoryChart reads of a load/results JSON (older files lack the cold baseline, the slope and the helpers). */
export interface LoadResultForChart {
  readonly options: { readonly connections: number; readonly mode: string; readonly workers: number }
  readonly budget: { readonly maxKbPerConn: number }
  readonly helpers?: { readonly agents: string; readonly backends: string }
  readonly steps: ReadonlyArray<{
    readonly connections: number
    readonly proxy: {
      readonly kbPerConnTotal: number
      readonly kbPerConnMarginal: number
      readonly kbPerConnMarginalCold?: number
      readonly kbPerConnSlope?: number
    }
    readonly kernel: { readonly kbPerConn: number }
    readonly agents: { readonly kbPerConn: number }
    readonly backends: { readonly kbPerConn: number }
  }>
}

/** The chart of one load run: KB per connection against connections held, on a log axis. */
export const memoryChart = (r: LoadResultForChart): string => {
  const { mode, workers, connections } = r.options
  const steps = r.steps
  const helpers =
    r.helpers === undefined
      ? "node"
      : r.helpers.agents === r.helpers.backends
        ? r.helpers.agents
        : `${r.helpers.agents}/${r.helpers.backends}`
  const line = (name: string, color: string, y: (s: (typeof steps)[number]) => number | undefined, dashed = false) => ({
    name,
    color,
    ...(dashed ? { dashed } : {}),
    points: steps.flatMap((s) => (y(s) === undefined ? [] : [[s.connections, y(s)!] as const]))
  })
  const series: Array<ChartSeries> = [
    line("proxy RSS ÷ conns", "#1f77b4", (s) => s.proxy.kbPerConnTotal),
    line("proxy marginal RSS", "#d62728", (s) => s.proxy.kbPerConnMarginal),
    line("marginal, cold baseline", "#ff9896", (s) => s.proxy.kbPerConnMarginalCold, true),
    line("proxy slope", "#9467bd", (s) => s.proxy.kbPerConnSlope),
    line("kernel (4 sockets)", "#2ca02c", (s) => s.kernel.kbPerConn),
    line(`agents + backends (${helpers})`, "#8c564b", (s) => s.agents.kbPerConn + s.backends.kbPerConn),
    {
      name: `budget ${r.budget.maxKbPerConn} KB`,
      color: "#999",
      dashed: true,
      points: [
        [0, r.budget.maxKbPerConn],
        [Math.max(connections, 1), r.budget.maxKbPerConn]
      ]
    }
  ]
  return lineChart(
    `polyproxy ${mode}, ${workers} worker(s): memory per held connection`,
    "connections held",
    "KB per connection",
    series
  )
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const file of process.argv.slice(2)) {
    const svg = file.replace(/\.json$/, ".svg")
    writeFileSync(svg, memoryChart(JSON.parse(readFileSync(file, "utf8")) as LoadResultForChart))
    process.stdout.write(`${svg}\n`)
  }
}
