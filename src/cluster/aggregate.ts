// Sums Prometheus text from several processes into one exposition: /metrics shows the proxy, not its fragments.
// Counters, gauges and histogram series (_bucket/_sum/_count) of the same name and labels all add up correctly.

export const sumPrometheus = (texts: ReadonlyArray<string>): string => {
  const header = new Map<string, Array<string>>() // metric name -> its # HELP / # TYPE lines, first seen wins
  const order: Array<string> = []
  const series = new Map<string, number>() // "name{labels}" -> sum
  const seriesOf = new Map<string, Array<string>>() // metric name -> its series keys in first-seen order
  let current = ""
  for (const text of texts) {
    for (const line of text.split("\n")) {
      if (line === "") continue
      if (line.startsWith("#")) {
        const [, kind, name] = line.split(" ", 3)
        if ((kind === "HELP" || kind === "TYPE") && name !== undefined) {
          current = name
          if (!header.has(name)) {
            header.set(name, [])
            order.push(name)
          }
          const lines = header.get(name)!
          if (!lines.some((l) => l.startsWith(`# ${kind} `))) lines.push(line)
        }
        continue
      }
      const space = line.lastIndexOf(" ")
      if (space <= 0) continue
      const key = line.slice(0, space)
      const value = Number(line.slice(space + 1))
      if (Number.isNaN(value)) continue
      const family = current !== "" && key.startsWith(current) ? current : key.replace(/\{.*$/, "")
      if (!header.has(family)) {
        header.set(family, [])
        order.push(family)
      }
      if (!series.has(key)) {
        series.set(key, family.endsWith("_max") ? Number.NEGATIVE_INFINITY : 0)
        const keys = seriesOf.get(family) ?? []
        keys.push(key)
        seriesOf.set(family, keys)
      }
      // A gauge named *_max (e.g. event-loop lag) is a worst case: the cluster's is the largest, not the sum.
      series.set(key, family.endsWith("_max") ? Math.max(series.get(key)!, value) : series.get(key)! + value)
    }
  }
  const out: Array<string> = []
  for (const name of order) {
    out.push(...header.get(name)!)
    for (const key of seriesOf.get(name) ?? []) out.push(`${key} ${series.get(key)}`)
  }
  return `${out.join("\n")}\n`
}
