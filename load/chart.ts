// An SVG line chart of memory per connection against connections held: the proxy's total RSS per connection, its
// marginal RSS per connection (what the budget checks), the kernel's socket memory per proxied connection, and the
// budget line. No dependency: plain SVG text.

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
  const all = series.flatMap((s) => s.points)
  const xMax = Math.max(1, ...all.map((p) => p[0]))
  const yMax = Math.max(1, ...all.map((p) => p[1])) * 1.1
  const px = (x: number) => left + (x / xMax) * (w - left - right)
  const py = (y: number) => h - bottom - (y / yMax) * (h - top - bottom)
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
  const ys = niceStep(yMax, 6)
  for (let y = 0; y <= yMax + 1e-9; y += ys) {
    out.push(`<line x1="${left}" y1="${py(y)}" x2="${w - right}" y2="${py(y)}" stroke="#eee"/>`)
    out.push(`<text x="${left - 6}" y="${py(y) + 4}" text-anchor="end">${+y.toFixed(2)}</text>`)
  }
  out.push(`<line x1="${left}" y1="${h - bottom}" x2="${w - right}" y2="${h - bottom}" stroke="black"/>`)
  out.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${h - bottom}" stroke="black"/>`)
  out.push(`<text x="${(left + w - right) / 2}" y="${h - 12}" text-anchor="middle">${esc(xLabel)}</text>`)
  out.push(
    `<text transform="translate(18 ${(top + h - bottom) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`
  )
  series.forEach((s, i) => {
    if (s.points.length === 0) return
    const d = s.points.map((p, j) => `${j === 0 ? "M" : "L"}${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join(" ")
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : ""
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${dash}/>`)
    if (!s.dashed) {
      for (const p of s.points) out.push(`<circle cx="${px(p[0])}" cy="${py(p[1])}" r="3" fill="${s.color}"/>`)
    }
    const ly = top + 10 + i * 20
    out.push(`<line x1="${w - right + 12}" y1="${ly}" x2="${w - right + 36}" y2="${ly}" stroke="${s.color}"${dash}/>`)
    out.push(`<text x="${w - right + 42}" y="${ly + 4}">${esc(s.name)}</text>`)
  })
  out.push("</svg>")
  return `${out.join("\n")}\n`
}
