// `polyproxy serve` as a child process, for specs that need what only a process has: its own environment (e.g.
// NODE_EXTRA_CA_CERTS, read once at start), signals (SIGHUP), or a config file re-read on reload.
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { makeTempDir } from "./backends/local.ts"
import { cleanEnv } from "./cliRun.ts"
import { eventually } from "./proxy.ts"

export interface CliProxy {
  /** The config file: rewrite it, then `reload()` or SIGHUP. */
  readonly file: string
  /** Bound port of each listener, from the "listening" log lines. */
  readonly port: (listener: string) => number
  readonly adminUrl: string
  readonly child: ChildProcess
  /** Everything the process wrote so far. */
  readonly output: () => string
  /** SIGHUP, then waits for the "config reloaded" line it causes. */
  readonly sighup: () => Promise<void>
  /** The process's resident memory now (bytes), from /proc. */
  readonly rss: () => number
  readonly stop: () => void
}

/**
 * Starts `polyproxy serve --config <file with configText>`; the config must set `admin` and `log: { format: json }`.
 * `argv`: another program that serves the config file, e.g. an example that embeds polyproxy.
 */
export const startCliProxy = async (
  configText: string,
  env: Readonly<Record<string, string>> = {},
  argv: (file: string) => ReadonlyArray<string> = (file) => [path.resolve("src/cli.ts"), "serve", "--config", file]
): Promise<CliProxy> => {
  const file = path.join(makeTempDir("cli-proxy"), "polyproxy.yaml")
  fs.writeFileSync(file, configText)
  const child = spawn(process.execPath, argv(file), {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...cleanEnv(), ...env }
  })
  let output = ""
  child.stdout!.on("data", (d) => (output += d))
  child.stderr!.on("data", (d) => (output += d))
  const adminLine = /"event":"admin listening".*?"port":(\d+)/
  try {
    await eventually(() => adminLine.test(output) || child.exitCode !== null, 30_000)
  } catch {}
  if (!adminLine.test(output)) {
    child.kill("SIGKILL")
    throw new Error(`polyproxy did not start:\n${output}`)
  }
  const lines = () =>
    output
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
  return {
    file,
    child,
    adminUrl: `http://127.0.0.1:${adminLine.exec(output)![1]}`,
    output: () => output,
    port: (listener) => {
      const line = lines().findLast((l) => l.event === "listening" && l.listener === listener)
      if (line === undefined) throw new Error(`no listener ${listener} in:\n${output}`)
      return line.port as number
    },
    sighup: async () => {
      const before = output.split('"event":"config reloaded"').length
      child.kill("SIGHUP")
      await eventually(() => output.split('"event":"config reloaded"').length > before, 10_000)
    },
    rss: () => {
      const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${child.pid}/status`, "utf8"))
      return Number(m?.[1] ?? 0) * 1024
    },
    stop: () => {
      child.kill("SIGKILL")
    }
  }
}
