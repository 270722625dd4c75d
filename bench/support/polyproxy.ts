// Starts polyproxy as a separate process (`node dist/cli.js serve --config F`, or src/cli.ts), the way users run it,
// so that its CPU time can be read from /proc/PID/stat apart from the load generator's.
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, readdirSync, statSync, writeFileSync } from "node:fs"
import { join, relative } from "node:path"
import { fileURLToPath } from "node:url"
import { sleep, track } from "./process.ts"

export const repoRoot = fileURLToPath(new URL("../../", import.meta.url))

/** The built entry point (`dist/cli.js`) or the source one (`src/cli.ts`: Node 24 strips the types). */
export type ProxyForm = "dist" | "src"

/** Which polyproxy a variant runs: a form of the entry point in a checkout. */
export interface ProxyEntry {
  readonly form: ProxyForm
  /** The repository itself, or the worktree of a revision given to `--compare` (bench/support/compare.ts). */
  readonly root: string
  /** The compared revision's short commit; its variants are named `name@rev`. Absent for the working tree. */
  readonly rev?: string | undefined
}

export const workingTree = (form: ProxyForm): ProxyEntry => ({ form, root: repoRoot })

export const entryFile = (entry: ProxyEntry): string =>
  join(entry.root, ...(entry.form === "dist" ? ["dist", "cli.js"] : ["src", "cli.ts"]))

/** The command as the results show it: `node dist/cli.js`, `node .tmp/compare/<commit>/src/cli.ts`. */
export const entryCommand = (entry: ProxyEntry): string => `node ${relative(repoRoot, entryFile(entry))}`

/** `dist` when it has been built, else `src`. */
export const defaultEntry = (): ProxyForm => (existsSync(entryFile(workingTree("dist"))) ? "dist" : "src")

const newestMtime = (dir: string): number => {
  let newest = 0
  for (const name of readdirSync(dir, { recursive: true, encoding: "utf8" })) {
    if (!name.endsWith(".ts")) continue
    newest = Math.max(newest, statSync(join(dir, name)).mtimeMs)
  }
  return newest
}

/** A warning when dist/ is older than src/ (someone changed src/ and did not run `make build`). */
export const staleDistWarning = (): string | undefined => {
  const built = join(repoRoot, "dist", ".built")
  const marker = existsSync(built) ? built : entryFile(workingTree("dist"))
  if (!existsSync(marker)) return undefined
  return newestMtime(join(repoRoot, "src")) > statSync(marker).mtimeMs
    ? "dist/ is older than src/: run `make build` (or pass --proxy src) to benchmark the current code"
    : undefined
}

export interface Polyproxy {
  readonly pid: number
  readonly child: ChildProcess
  readonly logTail: () => string
  readonly stop: () => Promise<void>
}

export interface PolyproxyOptions {
  readonly entry: ProxyEntry
  /** The config, written as JSON (a YAML subset) into `dir`. */
  readonly config: Record<string, unknown>
  readonly dir: string
  /** Resolves once the proxy carries traffic end to end; retried until `deadlineMs`. */
  readonly ready: () => Promise<void>
  readonly deadlineMs?: number
}

/** Spawns polyproxy and waits until `ready` succeeds; fails with the proxy's log tail if it exits first. */
export const startPolyproxy = async (opts: PolyproxyOptions): Promise<Polyproxy> => {
  const configFile = join(opts.dir, "polyproxy.json")
  writeFileSync(configFile, JSON.stringify(opts.config, null, 2))
  // A POLYPROXY_* variable of the caller's shell would silently change the config under test.
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith("POLYPROXY_") && !k.startsWith("PROXY_TLS_")) env[k] = v
  }
  const child = track(
    spawn(process.execPath, [entryFile(opts.entry), "serve", "--config", configFile], {
      cwd: opts.entry.root,
      env,
      stdio: ["ignore", "pipe", "pipe"]
    })
  )
  let log = ""
  const onLog = (chunk: Buffer): void => {
    log = (log + chunk.toString("utf8")).slice(-32 * 1024)
  }
  child.stdout?.on("data", onLog)
  child.stderr?.on("data", onLog)
  child.once("error", (error) => onLog(Buffer.from(`spawn failed: ${error.message}\n`)))
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  const tail = (): string => log.trimEnd().split("\n").slice(-20).join("\n")

  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    // One SIGTERM starts the drain; the bench's clients are gone by then, so it ends at once. SIGKILL after 5 s.
    child.kill("SIGTERM")
    const killer = setTimeout(() => child.kill("SIGKILL"), 5_000)
    await exited
    clearTimeout(killer)
  }

  const deadline = Date.now() + (opts.deadlineMs ?? 20_000)
  let lastError: unknown
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
      throw new Error(`polyproxy exited before it was ready (code ${child.exitCode}); log tail:\n${tail()}`)
    }
    try {
      await opts.ready()
      return { pid: child.pid, child, logTail: tail, stop }
    } catch (error) {
      lastError = error
    }
    if (Date.now() > deadline) {
      await stop()
      throw new Error(
        `polyproxy was not ready in time: ${(lastError as Error)?.message ?? lastError}; log tail:\n${tail()}`
      )
    }
    await sleep(100)
  }
}
