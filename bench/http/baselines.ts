// The HTTP bench's baselines as foreground children on free ports of 127.0.0.1: nginx and HAProxy configured as the
// plainest keep-alive reverse proxies (one worker / one thread, X-Forwarded-For added, pooled backend connections),
// and the Node proxies of bench/http/proxies.ts. All are spawned through bench/support/process.ts, so they die with
// the bench.
import { type ChildProcess, spawn } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { freePort } from "../../spec/support/backends/local.ts"
import { portLine, startHelper } from "../support/children.ts"
import { repoRoot } from "../support/polyproxy.ts"
import { sleep, track, versionOf } from "../support/process.ts"

export interface Running {
  readonly pid: number
  readonly port: number
  readonly version: string
  /** Config text for the results, when there is one. */
  readonly config: string | undefined
  readonly stop: () => Promise<void>
}

const stopper = (child: ChildProcess) => {
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  return async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill("SIGTERM")
    const killer = setTimeout(() => child.kill("SIGKILL"), 3_000)
    await exited
    clearTimeout(killer)
  }
}

export const startNodeProxy = async (kind: string, targetPort: number): Promise<Running> => {
  const helper = await startHelper(
    `node proxy ${kind}`,
    process.execPath,
    [join(repoRoot, "bench", "http", "proxies.ts"), kind, String(targetPort)],
    portLine
  )
  const pkg =
    kind === "http-proxy"
      ? "http-proxy"
      : kind === "fastify"
        ? "@fastify/http-proxy"
        : kind === "undici"
          ? "undici"
          : undefined
  let version = `node ${process.version}`
  if (pkg !== undefined) {
    const { createRequire } = await import("node:module")
    const require = createRequire(join(repoRoot, "package.json"))
    version = `${pkg} ${(require(`${pkg}/package.json`) as { version: string }).version}, ${version}`
  }
  return { pid: helper.pid, port: helper.info, version, config: undefined, stop: async () => helper.stop() }
}

const waitReady = async (
  child: ChildProcess,
  port: number,
  ready: (port: number) => Promise<void>,
  tail: () => string
): Promise<void> => {
  const deadline = Date.now() + 15_000
  let last: unknown
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`exited before ready:\n${tail()}`)
    try {
      return await ready(port)
    } catch (e) {
      last = e
    }
    if (Date.now() > deadline) throw new Error(`not ready: ${(last as Error)?.message}\n${tail()}`)
    await sleep(100)
  }
}

const spawnLogged = (file: string, args: ReadonlyArray<string>, cwd: string) => {
  const child = track(spawn(file, [...args], { cwd, stdio: ["ignore", "pipe", "pipe"] }))
  let log = ""
  const onLog = (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-8192)
  }
  child.stdout?.on("data", onLog)
  child.stderr?.on("data", onLog)
  return { child, tail: () => log }
}

/**
 * The HTTP origin: nginx, master + 1 worker, answering every request with `return 200` and a body of `bodyBytes`
 * bytes (keep-alive, no access log). A C server, so the origin is not what limits a proxy's rate.
 */
export const startNginxOrigin = async (
  dir: string,
  bodyBytes: number,
  ready: (port: number) => Promise<void>
): Promise<Running> => {
  mkdirSync(join(dir, "tmp"), { recursive: true })
  const port = await freePort()
  const config = [
    ...nginxHead(dir),
    "  default_type text/plain;",
    "  server {",
    `    listen 127.0.0.1:${port} backlog=4096;`,
    "    keepalive_requests 1000000;",
    `    location / { return 200 "${"x".repeat(bodyBytes)}"; }`,
    "  }",
    "}",
    ""
  ].join("\n")
  return runNginx(dir, port, config, ready)
}

/** Writes `config` into `dir` and runs nginx on it in the foreground until `ready` succeeds on `port`. */
const runNginx = async (
  dir: string,
  port: number,
  config: string,
  ready: (port: number) => Promise<void>
): Promise<Running> => {
  const configFile = join(dir, "nginx.conf")
  writeFileSync(configFile, config)
  const { child, tail } = spawnLogged("nginx", ["-p", dir, "-c", configFile, "-e", join(dir, "error.log")], dir)
  await waitReady(child, port, ready, tail)
  return { pid: child.pid!, port, version: versionOf("nginx", ["-v"]), config, stop: stopper(child) }
}

/** nginx.conf up to and with `http {`: 1 worker in the foreground, files in `dir`, no access log. */
const nginxHead = (dir: string): string[] => {
  const tmp = join(dir, "tmp")
  return [
    "daemon off;",
    "worker_processes 1;",
    `pid ${join(dir, "nginx.pid")};`,
    `error_log ${join(dir, "error.log")} warn;`,
    "events { worker_connections 8000; }",
    "http {",
    "  access_log off;",
    ...["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((t) => `  ${t}_temp_path ${tmp}/${t};`)
  ]
}

/** nginx: master + 1 worker, upstream keepalive, HTTP/1.1 to the origin, the forwarding fields polyproxy adds. */
export const startNginx = async (
  dir: string,
  originPort: number,
  ready: (port: number) => Promise<void>
): Promise<Running> => {
  mkdirSync(join(dir, "tmp"), { recursive: true })
  const port = await freePort()
  const config = [
    ...nginxHead(dir),
    `  upstream origin { server 127.0.0.1:${originPort}; keepalive 256; keepalive_requests 1000000; }`,
    "  server {",
    `    listen 127.0.0.1:${port} backlog=4096;`,
    "    keepalive_requests 1000000;",
    "    location / {",
    "      proxy_pass http://origin;",
    "      proxy_http_version 1.1;",
    '      proxy_set_header Connection "";',
    "      proxy_set_header Host $host;",
    "      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
    "      proxy_set_header X-Forwarded-Proto $scheme;",
    "      proxy_set_header X-Forwarded-Host $host;",
    "    }",
    "  }",
    "}",
    ""
  ].join("\n")
  return runNginx(dir, port, config, ready)
}

/** HAProxy in the foreground, one thread, `mode http`, keep-alive both sides, connection reuse, X-Forwarded-For. */
export const startHaproxy = async (
  dir: string,
  originPort: number,
  ready: (port: number) => Promise<void>
): Promise<Running> => {
  mkdirSync(dir, { recursive: true })
  const port = await freePort()
  const config = [
    "global",
    "  nbthread 1",
    // fd needs (2 per proxied connection) must stay under the machine's 20,000-fd limit
    "  maxconn 8000",
    "defaults",
    "  mode http",
    "  timeout connect 5s",
    "  timeout client 60s",
    "  timeout server 60s",
    "  timeout http-keep-alive 60s",
    "  option http-keep-alive",
    "  http-reuse always",
    "frontend bench",
    `  bind 127.0.0.1:${port}`,
    "  option forwardfor",
    "  default_backend origin",
    "backend origin",
    `  server o1 127.0.0.1:${originPort}`,
    ""
  ].join("\n")
  const configFile = join(dir, "haproxy.cfg")
  writeFileSync(configFile, config)
  const { child, tail } = spawnLogged("haproxy", ["-db", "-f", configFile], dir)
  await waitReady(child, port, ready, tail)
  return { pid: child.pid!, port, version: versionOf("haproxy", ["-v"]), config, stop: stopper(child) }
}
