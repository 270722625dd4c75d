// Prometheus text exposition of Effect's metric registry. Written here because effect/observability's formatter pulls
// in the whole HTTP stack (≈ 20 MB of RSS in every worker process) for a few dozen lines of text.
import * as Context from "effect/Context"
import * as Metric from "effect/Metric"

const escapeLabel = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")
const escapeHelp = (v: string) => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")
const num = (v: number | bigint) =>
  typeof v === "bigint" ? v.toString() : v === Infinity ? "+Inf" : v === -Infinity ? "-Inf" : String(v)

const labels = (attributes: Readonly<Record<string, string>> | undefined, extra?: readonly [string, string]) => {
  const pairs = Object.entries(attributes ?? {})
  if (extra) pairs.push([extra[0], extra[1]])
  return pairs.length === 0 ? "" : `{${pairs.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}`
}

/** Every metric of the default registry (the one `updateUnsafe(…, Context.empty())` writes to). */
export const prometheusText = (): string => {
  const byName = new Map<string, Array<Metric.Metric.Snapshot>>()
  for (const s of Metric.snapshotUnsafe(Context.empty())) {
    const list = byName.get(s.id)
    if (list) list.push(s)
    else byName.set(s.id, [s])
  }
  const out: Array<string> = []
  for (const [name, series] of byName) {
    const first = series[0]!
    if (first.description) out.push(`# HELP ${name} ${escapeHelp(first.description)}`)
    const type =
      first.type === "Counter"
        ? "counter"
        : first.type === "Gauge"
          ? "gauge"
          : first.type === "Histogram"
            ? "histogram"
            : "untyped"
    out.push(`# TYPE ${name} ${type}`)
    for (const s of series) {
      switch (s.type) {
        case "Counter":
          out.push(`${name}${labels(s.attributes)} ${num(s.state.count)}`)
          break
        case "Gauge":
          out.push(`${name}${labels(s.attributes)} ${num(s.state.value)}`)
          break
        case "Histogram": {
          // Effect's buckets may already end at Infinity: the +Inf line below is the one Prometheus wants, once.
          for (const [le, count] of s.state.buckets) {
            if (le !== Number.POSITIVE_INFINITY)
              out.push(`${name}_bucket${labels(s.attributes, ["le", num(le)])} ${count}`)
          }
          out.push(`${name}_bucket${labels(s.attributes, ["le", "+Inf"])} ${s.state.count}`)
          out.push(`${name}_sum${labels(s.attributes)} ${num(s.state.sum)}`)
          out.push(`${name}_count${labels(s.attributes)} ${s.state.count}`)
          break
        }
        default:
          break
      }
    }
  }
  return out.length > 0 ? `${out.join("\n")}\n` : ""
}
