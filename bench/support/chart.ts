// The hand-written SVG chart of bench/results/latest.svg: per scenario, each variant's rate ÷ the baseline's
// (HAProxy, nginx) as a bar (median of the per-round ratios) with a min–max whisker and the issue's target as a red
// tick. The axis stops at AXIS_MAX so that no single large ratio (direct ÷ anything, a slow Node proxy's tiny one)
// flattens the bars that matter: a bar past it is cut with its value written at the edge. A bound ratio (the
// generator or origin was the limit) is drawn hollow and labelled "bound": it is not a result.
import type { Spread } from "./report.ts"

export interface ChartBar {
  readonly label: string
  readonly ratio: Spread | undefined
  readonly bound: boolean
}

export interface ChartGroup {
  readonly title: string
  /** The ratio a target asks for (a red tick across the group), if any. */
  readonly target?: number
  readonly bars: readonly ChartBar[]
}

export interface ChartPanel {
  readonly title: string
  readonly groups: readonly ChartGroup[]
}

const AXIS_MAX = 2
const esc = (s: string) => s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
const palette = ["#3b6fb6", "#7fa7dc", "#d0803a", "#59a14f", "#8c6bb1", "#b07aa1", "#e15759", "#76b7b2"]

export const renderSvg = (title: string, subtitle: string, panels: readonly ChartPanel[]): string => {
  const width = 880
  const labelWidth = 250
  const plotLeft = labelWidth + 10
  const plotWidth = width - plotLeft - 90
  const barH = 14
  const gap = 4
  const x = (r: number) => plotLeft + (Math.max(0, Math.min(r, AXIS_MAX)) / AXIS_MAX) * plotWidth
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
        const textY = y + barH - 3
        out.push(`<text x="${labelWidth}" y="${textY}" class="label" text-anchor="end">${esc(b.label)}</text>`)
        if (r === undefined) {
          out.push(`<text x="${plotLeft + 4}" y="${textY}" class="value">no data</text>`)
        } else {
          const w = (x(r.median) - plotLeft).toFixed(1)
          out.push(
            b.bound
              ? `<rect x="${plotLeft}" y="${y}" width="${w}" height="${barH}" class="bound"/>`
              : `<rect x="${plotLeft}" y="${y}" width="${w}" height="${barH}" fill="${color(b.label)}"/>`
          )
          if (r.n > 1) {
            const cy = y + barH / 2
            out.push(
              `<line x1="${x(r.min).toFixed(1)}" x2="${x(r.max).toFixed(1)}" y1="${cy}" y2="${cy}" class="whisker"/>`
            )
          }
          const cut = r.median > AXIS_MAX ? " ▸" : ""
          const text = `${r.median.toFixed(2)}×${cut}${b.bound ? " bound" : ""}`
          out.push(
            `<text x="${(x(Math.max(r.median, r.max)) + 4).toFixed(1)}" y="${textY}" class="value">${text}</text>`
          )
        }
        y += barH + gap
      }
      if (g.target !== undefined) {
        const tx = x(g.target).toFixed(1)
        out.push(`<line x1="${tx}" x2="${tx}" y1="${groupTop - 2}" y2="${y - gap + 2}" class="target"/>`)
      }
    }
    out.push(`<line x1="${x(1)}" x2="${x(1)}" y1="${top}" y2="${y}" class="one"/>`)
    for (const t of [0, 0.5, 1, 1.5, 2]) {
      out.push(`<text x="${x(t)}" y="${y + 12}" class="axis" text-anchor="middle">${t}×</text>`)
    }
    y += 20
  }
  y += 18
  out.push(
    `<text x="10" y="${y}" class="note">Bars: median of per-round ratios; whiskers: min–max over rounds; red tick: ` +
      "the issue's target; grey line: 1×.</text>",
    `<text x="10" y="${y + 13}" class="note">Hollow "bound": the generator or the origin was the limit, not a ` +
      `result; ▸: past ${AXIS_MAX}×.</text>`
  )
  const height = y + 25
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<title>${esc(title)}</title>`,
    "<style>",
    ".title{font-size:16px;font-weight:bold}.subtitle{font-size:11px;fill:#555}.panel{font-size:14px;font-weight:bold}",
    ".group{font-size:12px;font-weight:bold;fill:#333}.label{font-size:11px}.value{font-size:11px;fill:#222}",
    ".axis{font-size:10px;fill:#666}.note{font-size:10px;fill:#666}",
    ".whisker{stroke:#222;stroke-width:1.2}.target{stroke:#d62728;stroke-width:2}",
    ".one{stroke:#999;stroke-dasharray:3 3}.bound{fill:none;stroke:#999;stroke-dasharray:2 2}",
    "</style>",
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="10" y="22" class="title">${esc(title)}</text>`,
    `<text x="10" y="38" class="subtitle">${esc(subtitle.length > 150 ? `${subtitle.slice(0, 149)}…` : subtitle)}</text>`,
    ...out,
    "</svg>",
    ""
  ].join("\n")
}
