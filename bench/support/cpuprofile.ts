// Top functions of a V8 CPU profile (`node --cpu-prof`, e.g. from `node bench/run.ts --cpu-prof DIR`), by self time
// and by total (inclusive) time, with file:line so a hot spot can be found in src/.
//   node bench/support/cpuprofile.ts FILE.cpuprofile [--top 25] [--filter dist/]
import { readFileSync } from "node:fs"
import { parseArgs } from "node:util"

interface CallFrame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
}
interface ProfileNode {
  readonly id: number
  readonly callFrame: CallFrame
  readonly children?: readonly number[]
}
interface Profile {
  readonly nodes: readonly ProfileNode[]
  readonly startTime: number
  readonly endTime: number
  readonly samples: readonly number[]
  readonly timeDeltas: readonly number[]
}

export interface Row {
  readonly name: string
  readonly selfMs: number
  readonly totalMs: number
}

const frameName = (f: CallFrame): string => {
  // node_modules/effect/dist/… stays recognisably a dependency; the repository's own files start at dist/ or src/.
  const path = f.url.replace(/^file:\/\//, "")
  const nm = path.lastIndexOf("/node_modules/")
  const url = nm >= 0 ? path.slice(nm + 1) : path.replace(/^.*?\/(dist|src|bench|spec)\//, "$1/")
  const where = url === "" ? "" : ` ${url}:${f.lineNumber + 1}`
  return `${f.functionName || "(anonymous)"}${where}`
}

/** Self and inclusive milliseconds per function (recursion counted once per sample). */
export const analyze = (profile: Profile): Row[] => {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const self = new Map<string, number>()
  const total = new Map<string, number>()
  for (let i = 0; i < profile.samples.length; i++) {
    const ms = (profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0) / 1000
    let id: number | undefined = profile.samples[i]!
    const leaf = byId.get(id)
    if (leaf === undefined) continue
    const leafName = frameName(leaf.callFrame)
    self.set(leafName, (self.get(leafName) ?? 0) + ms)
    const seen = new Set<string>()
    while (id !== undefined) {
      const node = byId.get(id)
      if (node === undefined) break
      const name = frameName(node.callFrame)
      if (!seen.has(name)) {
        seen.add(name)
        total.set(name, (total.get(name) ?? 0) + ms)
      }
      id = parent.get(id)
    }
  }
  return [...total.entries()].map(([name, totalMs]) => ({ name, selfMs: self.get(name) ?? 0, totalMs }))
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    options: { top: { type: "string", default: "25" }, filter: { type: "string" } },
    allowPositionals: true
  })
  const top = Number(values.top)
  for (const file of positionals) {
    const profile = JSON.parse(readFileSync(file, "utf8")) as Profile
    const rows = analyze(profile)
    const wall = (profile.endTime - profile.startTime) / 1000
    const busy = rows.filter((r) => !/^\((root|idle|program|garbage collector)\)/.test(r.name))
    const sampled = rows.reduce((a, r) => a + r.selfMs, 0)
    const idle = rows.find((r) => r.name.startsWith("(idle)"))?.selfMs ?? 0
    const keep = (r: Row) => values.filter === undefined || r.name.includes(values.filter)
    process.stdout.write(
      `${file}\n  profile ${wall.toFixed(0)} ms, sampled ${sampled.toFixed(0)} ms, idle ${idle.toFixed(0)} ms\n` +
        `  (program) ${(rows.find((r) => r.name.startsWith("(program)"))?.selfMs ?? 0).toFixed(0)} ms, ` +
        `(garbage collector) ${(rows.find((r) => r.name.startsWith("(garbage collector)"))?.selfMs ?? 0).toFixed(0)} ms\n`
    )
    const pct = (ms: number) => `${((100 * ms) / Math.max(1, sampled - idle)).toFixed(1)} %`.padStart(7)
    process.stdout.write("  by self time (share of non-idle samples):\n")
    for (const r of [...busy]
      .filter(keep)
      .sort((a, b) => b.selfMs - a.selfMs)
      .slice(0, top)) {
      process.stdout.write(`  ${pct(r.selfMs)} ${r.selfMs.toFixed(0).padStart(6)} ms  ${r.name}\n`)
    }
    process.stdout.write("  by total time:\n")
    for (const r of [...busy]
      .filter(keep)
      .sort((a, b) => b.totalMs - a.totalMs)
      .slice(0, top)) {
      process.stdout.write(`  ${pct(r.totalMs)} ${r.totalMs.toFixed(0).padStart(6)} ms  ${r.name}\n`)
    }
  }
}
