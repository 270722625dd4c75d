// What the proxy's V8 heap holds per connection: compares two heap snapshots (taken at 0 and at N connections) by
// object kind and constructor name, and prints the kinds that grew, in bytes per connection.
//   node load/heapdiff.ts BEFORE.heapsnapshot AFTER.heapsnapshot N [--json FILE]
// load/run.ts --heap-snapshots takes the snapshots (SIGUSR2 with --heapsnapshot-signal) and runs this itself.
import { readFileSync, writeFileSync } from "node:fs"

interface Snapshot {
  snapshot: { meta: { node_fields: Array<string>; node_types: [Array<string>, ...Array<unknown>] } }
  nodes: Array<number>
  strings: Array<string>
}

export interface HeapGroup {
  readonly key: string
  readonly count: number
  readonly bytes: number
}

/** Live objects grouped by "type:name" (closures by function name, objects by constructor), with their self sizes. */
export const heapGroups = (file: string): Map<string, { count: number; bytes: number }> => {
  const snap = JSON.parse(readFileSync(file, "utf8")) as Snapshot
  const fields = snap.snapshot.meta.node_fields
  const types = snap.snapshot.meta.node_types[0]
  const width = fields.length
  const typeAt = fields.indexOf("type")
  const nameAt = fields.indexOf("name")
  const sizeAt = fields.indexOf("self_size")
  const groups = new Map<string, { count: number; bytes: number }>()
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + typeAt]!] ?? "?"
    let name =
      type === "string" || type === "concatenated string" || type === "sliced string"
        ? ""
        : (snap.strings[snap.nodes[i + nameAt]!] ?? "")
    if (type === "code" || type === "hidden" || type === "array" || type === "number") name = name.slice(0, 40)
    if (name.length > 60) name = `${name.slice(0, 57)}...`
    const key = `${type}:${name}`
    const g = groups.get(key)
    if (g === undefined) groups.set(key, { count: 1, bytes: snap.nodes[i + sizeAt]! })
    else {
      g.count++
      g.bytes += snap.nodes[i + sizeAt]!
    }
  }
  return groups
}

/** The groups that grew from `before` to `after`, largest growth first. */
export const heapDiff = (before: string, after: string): { groups: Array<HeapGroup>; totalBytes: number } => {
  const a = heapGroups(before)
  const b = heapGroups(after)
  const groups: Array<HeapGroup> = []
  let totalBytes = 0
  for (const [key, g] of b) {
    const old = a.get(key) ?? { count: 0, bytes: 0 }
    const d = { key, count: g.count - old.count, bytes: g.bytes - old.bytes }
    totalBytes += d.bytes
    if (d.bytes > 0) groups.push(d)
  }
  for (const [key, g] of a) if (!b.has(key)) totalBytes -= g.bytes
  groups.sort((x, y) => y.bytes - x.bytes)
  return { groups, totalBytes }
}

export const formatHeapDiff = (diff: { groups: Array<HeapGroup>; totalBytes: number }, n: number, top = 25): string => {
  const lines = [
    `V8 heap growth: ${(diff.totalBytes / n).toFixed(0)} bytes per connection (live objects, self sizes), top kinds:`,
    "  bytes/conn  objects/conn  kind:name"
  ]
  for (const g of diff.groups.slice(0, top)) {
    lines.push(`  ${(g.bytes / n).toFixed(1).padStart(10)}  ${(g.count / n).toFixed(2).padStart(12)}  ${g.key}`)
  }
  return lines.join("\n")
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [before, after, n, flag, out] = process.argv.slice(2)
  if (before === undefined || after === undefined || n === undefined) {
    process.stderr.write("usage: node load/heapdiff.ts BEFORE.heapsnapshot AFTER.heapsnapshot N [--json FILE]\n")
    process.exit(2)
  }
  const diff = heapDiff(before, after)
  process.stdout.write(`${formatHeapDiff(diff, Number(n))}\n`)
  if (flag === "--json" && out !== undefined)
    writeFileSync(out, `${JSON.stringify(diff.groups.slice(0, 100), null, 2)}\n`)
}
