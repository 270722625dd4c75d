// Process plumbing shared by the benchmarks: bounded child processes that die with the bench, CPU accounting from
// /proc, and a description of the machine for the results. Servers themselves come from spec/support/backends.
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process"
import { readdirSync, readFileSync } from "node:fs"
import { cpus } from "node:os"

const tracked = new Set<ChildProcess>()
const cleanups: Array<() => void> = []
let hooksInstalled = false

/** Kills (SIGKILL) every child spawned through this module that is still running, and runs registered cleanups. */
export const killEverything = (): void => {
  for (const child of tracked) {
    try {
      child.kill("SIGKILL")
    } catch {}
  }
  tracked.clear()
  for (const cleanup of cleanups.splice(0)) {
    try {
      cleanup()
    } catch {}
  }
}

/**
 * Whatever happens (normal end, exception, Ctrl-C, SIGTERM, the bench's own deadline), no child outlives the bench.
 * spec/support/backends/local.ts does the same for the servers it launches.
 */
export const installExitHooks = (): void => {
  if (hooksInstalled) return
  hooksInstalled = true
  process.once("exit", killEverything)
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(signal, () => {
      process.stderr.write(`bench: ${signal}, stopping every child\n`)
      killEverything()
      process.exit(128 + (signal === "SIGINT" ? 2 : signal === "SIGTERM" ? 15 : 1))
    })
  }
}

/** Runs `cleanup` synchronously at exit or on a fatal signal (after the tracked children are killed). */
export const onExit = (cleanup: () => void): void => {
  installExitHooks()
  cleanups.push(cleanup)
}

export const track = (child: ChildProcess): ChildProcess => {
  installExitHooks()
  tracked.add(child)
  child.once("exit", () => tracked.delete(child))
  return child
}

export interface RunResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
  readonly timedOut: boolean
}

/** Spawns `file args`, collects its output, SIGKILLs it after `timeoutMs`. Never rejects on a non-zero exit. */
export const runBounded = (
  file: string,
  args: readonly string[],
  options: { env: NodeJS.ProcessEnv; timeoutMs: number }
): Promise<RunResult> =>
  new Promise((resolve, reject) => {
    const child = track(spawn(file, args, { env: options.env, stdio: ["ignore", "pipe", "pipe"] }))
    let stdout = ""
    let stderr = ""
    let timedOut = false
    child.stdout?.setEncoding("utf8").on("data", (s: string) => {
      stdout = (stdout + s).slice(-256 * 1024)
    })
    child.stderr?.setEncoding("utf8").on("data", (s: string) => {
      stderr = (stderr + s).slice(-256 * 1024)
    })
    const timer = setTimeout(() => {
      timedOut = true
      child.kill("SIGKILL")
    }, options.timeoutMs)
    child.once("error", (error) => {
      clearTimeout(timer)
      reject(new Error(`${file} could not be started: ${error.message}`))
    })
    child.once("close", (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, timedOut })
    })
  })

let ticks: number | undefined

/** USER_HZ: the unit of utime/stime in /proc/PID/stat (100 on Linux, but ask). */
export const clockTicks = (): number => {
  if (ticks !== undefined) return ticks
  try {
    ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100
  } catch {
    ticks = 100
  }
  return ticks
}

/** CPU seconds (user + system, all threads) the process has used so far; undefined once it is gone. */
export const cpuSeconds = (pid: number | undefined): number | undefined => {
  if (pid === undefined) return undefined
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8")
  } catch {
    return undefined
  }
  // The command name (field 2) may hold spaces and parentheses: count fields from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  // Fields 14 (utime) and 15 (stime) of the whole line are 12 and 13 after "pid (comm) ".
  const utime = Number(fields[11])
  const stime = Number(fields[12])
  return (utime + stime) / clockTicks()
}

/**
 * CPU seconds of this process's children that have exited and been reaped (its own cutime + cstime): around one
 * run of a C generator that is its whole CPU time (threads included), read without wrapping it in anything.
 */
export const reapedChildrenCpu = (): number => {
  const f = statFields(process.pid)
  return f === undefined ? 0 : (Number(f[13]) + Number(f[14])) / clockTicks()
}

const statFields = (pid: number | string): string[] | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    // Fields after "pid (comm) ": [0] state, [1] ppid, ... [11] utime, [12] stime, [13] cutime, [14] cstime.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  } catch {
    return undefined
  }
}

/**
 * CPU seconds used by `root` and every descendant, alive or already reaped (a reaped child's time is in its
 * parent's cutime/cstime, an alive one's in its own entry, so summing both over the live tree counts each once).
 */
export const treeCpuSeconds = (root: number = process.pid): number => {
  const children = new Map<number, number[]>()
  const ticksOf = new Map<number, number>()
  let pids: string[] = []
  try {
    pids = readdirSync("/proc").filter((name) => /^\d+$/.test(name))
  } catch {}
  for (const name of pids) {
    const f = statFields(name)
    if (f === undefined) continue
    const pid = Number(name)
    const ppid = Number(f[1])
    ticksOf.set(pid, Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]))
    const list = children.get(ppid)
    if (list) list.push(pid)
    else children.set(ppid, [pid])
  }
  let total = 0
  const stack = [root]
  const seen = new Set<number>()
  while (stack.length > 0) {
    const pid = stack.pop()!
    if (seen.has(pid)) continue
    seen.add(pid)
    total += ticksOf.get(pid) ?? 0
    stack.push(...(children.get(pid) ?? []))
  }
  return total / clockTicks()
}

export interface CpuTimes {
  /** Ticks, all cores: everything but idle and iowait. */
  readonly busy: number
  /** Ticks, all cores: user + nice + system, the part that processes' utime/stime account for (no irq/softirq). */
  readonly processes: number
  readonly total: number
}

/** The machine-wide counters of /proc/stat, for "how busy were all cores during the run". */
export const machineCpu = (): CpuTimes => {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? ""
  const v = line.trim().split(/\s+/).slice(1, 9).map(Number)
  const total = v.reduce((a, b) => a + b, 0)
  const idle = (v[3] ?? 0) + (v[4] ?? 0)
  return { busy: total - idle, processes: (v[0] ?? 0) + (v[1] ?? 0) + (v[2] ?? 0), total }
}

/**
 * CPU seconds that processes outside the bench's own tree used between two samples: other people's work on a
 * shared machine. A run with much of it measured the neighbours as much as the proxy.
 */
export const foreignCpuSeconds = (before: CpuTimes, after: CpuTimes, treeBefore: number, treeAfter: number): number =>
  Math.max(0, (after.processes - before.processes) / clockTicks() - (treeAfter - treeBefore))

/** Share (0..1) of all cores' time that was busy between two samples. */
export const busyShare = (before: CpuTimes, after: CpuTimes): number => {
  const total = after.total - before.total
  return total > 0 ? (after.busy - before.busy) / total : 0
}

export interface MachineInfo {
  readonly nproc: number
  readonly cpuModel: string
  readonly node: string
  readonly kernel: string
  readonly date: string
}

export const machineInfo = (): MachineInfo => {
  let kernel = ""
  try {
    kernel = readFileSync("/proc/sys/kernel/osrelease", "utf8").trim()
  } catch {}
  let nproc = cpus().length
  try {
    nproc = Number(execFileSync("nproc", { encoding: "utf8" }).trim()) || nproc
  } catch {}
  return {
    nproc,
    cpuModel: cpus()[0]?.model.trim() ?? "unknown",
    node: process.version,
    kernel,
    date: new Date().toISOString()
  }
}

/** First line `file --version` prints (on stdout, else stderr: nginx; whatever its exit code: wrk), or "unknown". */
export const versionOf = (file: string, args: readonly string[] = ["--version"]): string => {
  const r = spawnSync(file, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 10_000 })
  if (r.error !== undefined) return "unknown"
  return (r.stdout.trim() || r.stderr.trim()).split("\n")[0]!.trim() || "unknown"
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
