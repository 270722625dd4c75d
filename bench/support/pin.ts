// CPU pinning for the workloads that give the middleman a core of its own (bench/pg/pooled.ts, the `pinned` ones).
// On this machine everything shares two cores: a proxy's CPU per operation is then taken from the origin and the
// generator, and the rate measures that as much as the proxy's own speed. Pinned, the proxy's processes run on the
// last core and everything else of the run (the origin with every process it forks, the generator) on the others,
// the same for every variant and for direct: the layout of a pooler on a host or core of its own. Done with
// util-linux's taskset (sched_setaffinity of every thread; children forked later inherit it), as Node has no call
// for it.
import { execFile } from "node:child_process"
import { readdirSync, readFileSync } from "node:fs"
import { promisify } from "node:util"

const run = promisify(execFile)

export interface PinLayout {
  /** taskset's list syntax: the middleman's core. */
  readonly proxy: string
  /** The origin's and the generator's. */
  readonly rest: string
  /** Every core: what a pin is undone to. */
  readonly all: string
}

/** The middleman on the last core, the rest on the others; none with fewer than two cores. */
export const pinLayout = (cores: number): PinLayout | undefined =>
  cores < 2
    ? undefined
    : {
        proxy: String(cores - 1),
        rest: cores === 2 ? "0" : `0-${cores - 2}`,
        all: `0-${cores - 1}`
      }

/** The parent of `pid` (the PPid line of /proc/PID/status), undefined when `pid` is gone. */
export const parentOf = (pid: number): number | undefined => {
  try {
    const ppid = /^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]
    return ppid === undefined ? undefined : Number(ppid)
  } catch {
    return undefined
  }
}

/** `pid` and every process below it (a postmaster with its backends and workers), from one pass over /proc. */
export const processTree = (pid: number): number[] => {
  const children = new Map<number, number[]>()
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue
    const parent = parentOf(Number(name))
    if (parent !== undefined) children.set(parent, [...(children.get(parent) ?? []), Number(name)])
  }
  const out: number[] = []
  const walk = (p: number): void => {
    out.push(p)
    for (const c of children.get(p) ?? []) walk(c)
  }
  walk(pid)
  return out
}

/** Every thread of each of `pids` on `cpus`. A process that exited meanwhile is skipped; any other failure throws. */
export const pin = async (pids: readonly number[], cpus: string): Promise<void> => {
  for (const pid of pids) {
    try {
      await run("taskset", ["-a", "-p", "-c", cpus, String(pid)], { timeout: 10_000 })
    } catch (error) {
      if (alive(pid)) throw new Error(`taskset -a -p -c ${cpus} ${pid} failed: ${(error as Error).message}`)
    }
  }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** The command line that runs `file args` on `cpus`. */
export const pinnedCommand = (cpus: string, file: string, args: readonly string[]): [string, string[]] => [
  "taskset",
  ["-c", cpus, file, ...args]
]
