// The TCP baselines the runner compares polyproxy with: HAProxy (`mode tcp`) and nginx (`stream` proxy), each a
// foreground child on a free port of 127.0.0.1 forwarding to one backend, configured as the plainest equivalent of
// polyproxy's generic `tcp` listener. Both are spawned through process.ts, so they die with the bench.
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { freePort } from "../../spec/support/backends/local.ts"
import { onExit, sleep, track, versionOf } from "./process.ts"

export interface Baseline {
  readonly name: string
  readonly pid: number
  readonly port: number
  readonly version: string
  /** The config file's text, for the results. */
  readonly config: string
  readonly alive: () => boolean
  readonly stop: () => Promise<void>
}

export interface BaselineOptions {
  /** Working directory for the config, pid and log files (created if missing). */
  readonly dir: string
  readonly backendPort: number
  /** Resolves once the proxy on `port` carries traffic end to end. */
  readonly ready: (port: number) => Promise<void>
  readonly deadlineMs?: number
}

/** Pids whose parent is `pid` (from /proc/PID/stat). */
const childPids = (pid: number): number[] => {
  const out: number[] = []
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8")
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid) out.push(Number(name))
    } catch {}
  }
  return out
}

interface Spawned {
  readonly child: ChildProcess
  readonly tail: () => string
  readonly stop: () => Promise<void>
}

const spawnLogged = (file: string, args: readonly string[], cwd: string): Spawned => {
  const child = track(spawn(file, args, { cwd, stdio: ["ignore", "pipe", "pipe"] }))
  let log = ""
  const onLog = (chunk: Buffer): void => {
    log = (log + chunk.toString("utf8")).slice(-16 * 1024)
  }
  child.stdout?.on("data", onLog)
  child.stderr?.on("data", onLog)
  child.once("error", (error) => onLog(Buffer.from(`spawn failed: ${error.message}\n`)))
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill("SIGTERM")
    const killer = setTimeout(() => child.kill("SIGKILL"), 3_000)
    await exited
    clearTimeout(killer)
  }
  return { child, tail: () => log.trimEnd().split("\n").slice(-15).join("\n"), stop }
}

/** Spawns `make(port)` on a free port (another port if the first is taken) and waits until `ready` succeeds. */
const startOn = async (
  name: string,
  opts: Omit<BaselineOptions, "backendPort">,
  make: (port: number) => { file: string; args: string[]; config: string; configFile: string },
  version: string
): Promise<Baseline> => {
  mkdirSync(opts.dir, { recursive: true })
  let lastError: Error | undefined
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort()
    const spec = make(port)
    writeFileSync(spec.configFile, spec.config)
    const proc = spawnLogged(spec.file, spec.args, opts.dir)
    const deadline = Date.now() + (opts.deadlineMs ?? 15_000)
    for (;;) {
      if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
        lastError = new Error(`${name} exited before it was ready (code ${proc.child.exitCode}):\n${proc.tail()}`)
        break
      }
      try {
        await opts.ready(port)
        // A SIGKILLed nginx master (the bench's exit path) leaves its worker behind: kill the worker at exit too.
        const workers = childPids(proc.child.pid!)
        onExit(() => {
          for (const pid of workers) {
            try {
              process.kill(pid, "SIGKILL")
            } catch {}
          }
        })
        return {
          name,
          pid: proc.child.pid!,
          port,
          version,
          config: spec.config,
          alive: () => proc.child.exitCode === null && proc.child.signalCode === null,
          stop: proc.stop
        }
      } catch (error) {
        lastError = error as Error
      }
      if (Date.now() > deadline) {
        await proc.stop()
        throw new Error(`${name} was not ready in time: ${lastError?.message}\n${proc.tail()}`)
      }
      await sleep(100)
    }
    await proc.stop()
    if (!/address already in use|cannot bind/i.test(lastError?.message ?? "")) break
  }
  throw lastError ?? new Error(`${name} did not start`)
}

/**
 * HAProxy in the foreground (`-db`, no master process), `mode tcp`, `nbthread 1`: one thread, the fair match for one
 * polyproxy process. maxconn 8000 keeps its fd needs (2 per proxied connection + listeners) under the 20,000-fd limit.
 * Several backend ports take connections in turn (`balance roundrobin`).
 */
export const startHaproxy = (
  opts: Omit<BaselineOptions, "backendPort"> & {
    readonly backendPort: number | readonly number[]
    readonly threads?: number
  }
): Promise<Baseline> =>
  startOn(
    "haproxy",
    opts,
    (port) => {
      const config = [
        "global",
        `  nbthread ${opts.threads ?? 1}`,
        "  maxconn 8000",
        "defaults",
        "  mode tcp",
        "  timeout connect 5s",
        "  timeout client 60s",
        "  timeout server 60s",
        "listen bench",
        `  bind 127.0.0.1:${port}`,
        ...(typeof opts.backendPort === "number"
          ? [`  server backend 127.0.0.1:${opts.backendPort}`]
          : ["  balance roundrobin", ...opts.backendPort.map((p, i) => `  server backend${i} 127.0.0.1:${p}`)]),
        ""
      ].join("\n")
      const configFile = join(opts.dir, "haproxy.cfg")
      return { file: "haproxy", args: ["-db", "-f", configFile], config, configFile }
    },
    versionOf("haproxy", ["-v"])
  )

const nginxStreamModule = "/usr/lib/nginx/modules/ngx_stream_module.so"

/**
 * nginx's `stream` proxy, master + 1 worker_process, in the foreground (`daemon off`). Debian builds `stream` as a
 * dynamic module (package libnginx-mod-stream, installed by scripts/install-bench-deps.sh); it is loaded by path
 * so the system's /etc/nginx is never read. CPU is read for the master's whole tree (the worker does the work).
 */
export const startNginxStream = (opts: BaselineOptions): Promise<Baseline> => {
  if (!existsSync(nginxStreamModule)) {
    return Promise.reject(
      new Error(`${nginxStreamModule} is missing: install libnginx-mod-stream (bash scripts/install-bench-deps.sh)`)
    )
  }
  return startOn(
    "nginx",
    opts,
    (port) => {
      const config = [
        `load_module ${nginxStreamModule};`,
        "daemon off;",
        "worker_processes 1;",
        `pid ${join(opts.dir, "nginx.pid")};`,
        `error_log ${join(opts.dir, "error.log")} warn;`,
        "events { worker_connections 8000; }",
        "stream {",
        `  server { listen 127.0.0.1:${port} backlog=4096; proxy_pass 127.0.0.1:${opts.backendPort}; }`,
        "}",
        ""
      ].join("\n")
      const configFile = join(opts.dir, "nginx.conf")
      return {
        file: "nginx",
        args: ["-p", opts.dir, "-c", configFile, "-e", join(opts.dir, "error.log")],
        config,
        configFile
      }
    },
    versionOf("nginx", ["-v"])
  )
}

/**
 * HAProxy routing TLS by the ClientHello's server name (`req.ssl_sni`, passthrough, 1 thread): what polyproxy's
 * `route: sni` does. `routes` maps each server name to its origin's port (opts.backendPort is not used).
 */
export const startHaproxySni = (
  opts: BaselineOptions & { readonly routes: ReadonlyArray<readonly [string, number]> }
): Promise<Baseline> =>
  startOn(
    "haproxy",
    opts,
    (port) => {
      const config = [
        "global",
        "  nbthread 1",
        "  maxconn 5000",
        "defaults",
        "  mode tcp",
        "  timeout connect 5s",
        "  timeout client 30s",
        "  timeout server 30s",
        "frontend sni",
        `  bind 127.0.0.1:${port}`,
        "  tcp-request inspect-delay 5s",
        "  tcp-request content accept if { req.ssl_hello_type 1 }",
        ...opts.routes.map(([name], i) => `  use_backend origin${i} if { req.ssl_sni -i ${name} }`),
        ...opts.routes.flatMap(([, origin], i) => [`backend origin${i}`, `  server o${i} 127.0.0.1:${origin}`]),
        ""
      ].join("\n")
      const configFile = join(opts.dir, "haproxy.cfg")
      return { file: "haproxy", args: ["-db", "-f", configFile], config, configFile }
    },
    versionOf("haproxy", ["-v"])
  )
