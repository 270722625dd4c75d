// Children of the load run: each one in its own process group, every one killed by id (its group) on every way out
// (normal end, failure, exception, Ctrl-C, SIGTERM, the run's own deadline). Cleanups registered here run after.
import { type ChildProcess, spawn } from "node:child_process"
import { readdirSync, readFileSync } from "node:fs"

const children = new Set<ChildProcess>()
const cleanups: Array<() => void> = []
let installed = false

const killGroup = (child: ChildProcess, signal: NodeJS.Signals) => {
  if (child.pid === undefined) return
  try {
    process.kill(-child.pid, signal)
  } catch {
    try {
      child.kill(signal)
    } catch {}
  }
}

/** SIGKILLs every child's process group (proxy workers included), then runs the cleanups (sysctl restore, temp dir). */
export const killAll = (): void => {
  for (const child of children) killGroup(child, "SIGKILL")
  children.clear()
  for (const cleanup of cleanups.splice(0).reverse()) {
    try {
      cleanup()
    } catch (e) {
      process.stderr.write(`load: cleanup failed: ${(e as Error).message}\n`)
    }
  }
}

export const installExitHooks = (): void => {
  if (installed) return
  installed = true
  process.once("exit", killAll)
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(signal, () => {
      process.stderr.write(`load: ${signal}, stopping every process it started\n`)
      killAll()
      process.exit(130)
    })
  }
  process.on("uncaughtException", (e) => {
    process.stderr.write(`load: ${e.stack ?? e.message}\n`)
    killAll()
    process.exit(1)
  })
  process.on("unhandledRejection", (e) => {
    process.stderr.write(`load: ${(e as Error)?.stack ?? String(e)}\n`)
    killAll()
    process.exit(1)
  })
}

export const onExit = (cleanup: () => void): void => {
  installExitHooks()
  cleanups.push(cleanup)
}

/**
 * Starts `FILE ARGS` through bash with the soft fd limit raised to `fdLimit` (the hard limit here is 20,000), in its
 * own process group so that its own children (proxy workers) die with it.
 */
export const spawnExec = (
  file: string,
  args: ReadonlyArray<string>,
  options: { fdLimit: number; env?: NodeJS.ProcessEnv; cwd?: string; output?: number }
): ChildProcess => {
  installExitHooks()
  const quote = (a: string) => `'${a.replaceAll("'", `'\\''`)}'`
  const child = spawn("bash", ["-c", `ulimit -n ${options.fdLimit} && exec ${[file, ...args].map(quote).join(" ")}`], {
    cwd: options.cwd,
    env: options.env ?? process.env,
    // `output`: an open file for stdout and stderr, written by the child itself (nothing lost when we exit at once).
    stdio: options.output === undefined ? ["pipe", "pipe", "pipe"] : ["pipe", options.output, options.output],
    detached: true
  })
  children.add(child)
  child.once("exit", () => children.delete(child))
  return child
}

/** `node ARGS` (this process's node binary) as spawnExec starts it. */
export const spawnNode = (
  nodeArgs: ReadonlyArray<string>,
  options: { fdLimit: number; env?: NodeJS.ProcessEnv; cwd?: string; output?: number }
): ChildProcess => spawnExec(process.execPath, nodeArgs, options)

/** Asks a child to end (SIGTERM to its group), SIGKILLs the group after `graceMs`. */
export const stopChild = async (child: ChildProcess, graceMs: number): Promise<void> => {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  killGroup(child, "SIGTERM")
  const timer = new Promise<void>((resolve) => setTimeout(resolve, graceMs))
  await Promise.race([exited, timer])
  killGroup(child, "SIGKILL")
  children.delete(child)
}

/** Direct children of `pid` (from /proc/N/stat), e.g. the workers of the proxy's primary. */
export const childPids = (pid: number): Array<number> => {
  const out: Array<number> = []
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8")
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      if (Number(fields[1]) === pid) out.push(Number(name))
    } catch {}
  }
  return out
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
