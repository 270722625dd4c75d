// The load coordinator: `make load CONNECTIONS=N [MODE=tcp|postgres|postgres-pooled] [WORKERS=…] [MAX_KB_PER_CONN=6]`
// runs this. It starts echo backends (postgres-pooled: a real PostgreSQL, load/pgBackend.ts), polyproxy (dist/cli.js,
// `workers: W`) and load agents (C from load/native/ when it builds, else Node), warms the proxy up (connections
// opened and closed before its baseline), ramps to N held connections in steps, and at each step measures the RSS of
// every proxy process, the proxy's /metrics, the kernel's socket memory and the errors. It prints a table, writes
// load/results/<date>-<mode>-<N>.json and .svg, and exits non-zero when a connection was lost or failed, when the
// proxy's active count is not the step's, when the proxy's marginal memory per connection at the top step is over
// MAX_KB_PER_CONN, or (postgres-pooled) when the server held more connections than the pools may open. Everything
// it starts is killed by process group on every way out, and sysctls it changed are restored. See load/README.md.
import { type ChildProcess, execFileSync } from "node:child_process"
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync
} from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { memoryChart } from "./chart.ts"
import { formatHeapDiff, type HeapGroup, heapDiff } from "./heapdiff.ts"
import { buildNative, type NativeBinaries } from "./native.ts"
import {
  type PgCount,
  type PgPeak,
  type PoolAuth,
  type PooledBackend,
  pooledBound,
  startPooledBackend
} from "./pgBackend.ts"
import { childPids, killAll, onExit, sleep, spawnExec, spawnNode, stopChild } from "./procs.ts"
import {
  type AgentConfig,
  type AgentReport,
  type BackendReport,
  type FromAgent,
  jsonLines,
  type Mode,
  type ToAgent
} from "./protocol.ts"
import {
  cpuSeconds,
  type KernelMemory,
  kernelMemory,
  memAvailable,
  metricSamples,
  metricValue,
  type ProcMemory,
  procMemory,
  sysctl,
  tcpCounters
} from "./sample.ts"

const root = fileURLToPath(new URL("../", import.meta.url))
const KB = 1024
const MB = 1024 * 1024

// ---------------------------------------------------------------------------------------------------- options

const usage = `usage: node load/run.ts --connections N [options]
  --mode tcp|postgres|postgres-pooled
                             tcp: the generic listener, one route, the proxy dialing from one source address per
                             --per-proxy-source connections; postgres: routes by database, one backend address per
                             --per-route connections; postgres-pooled: a real PostgreSQL behind routes in transaction
                             pooling mode, each client logs in (SCRAM or md5), runs SELECT 1 and idles (default tcp)
  --pool-size S              postgres-pooled: pool.size, server connections per (database, role) per worker (2)
  --pool-databases D         postgres-pooled: databases, one pooled route each (2)
  --pool-roles R             postgres-pooled: login roles, every client of each database uses them in turn (2)
  --pool-auth scram|md5      postgres-pooled: how the roles' passwords are stored, so how clients log in (scram)
  --pg-max-connections N     postgres-pooled: the server's max_connections (auto: the pools' bound + the lookups +
                             9, at least 40)
  --workers N|auto           proxy worker processes (auto: ceil(2N / (0.92 × --fds-per-process)))
  --agents N|auto            local agent processes (auto: ceil(N / --fds-per-process))
  --backends N|auto          echo backend processes (auto: ceil(N / --fds-per-process))
  --max-kb-per-conn K        budget for the proxy's marginal RSS per connection at the top step (default 6), above
                             its warm baseline (after a warm-up of min(N, 100 × workers) connections, all closed)
  --native auto|yes|no       agents and backends in C (load/native/, compiled on demand; auto: when it builds, else
                             the Node ones) or in Node (load/agent.ts, load/backend.ts) (default auto)
  --warmup N|auto            connections opened and closed before the baseline (auto: min(N, 100 × workers); 0: none)
  --steps a,b,…|auto         held-connection steps (auto: 10k, 50k, 100k, 200k, 400k, … below N, then N)
  --per-source N             connections per agent source address (default 10000; 0 = no bind, the kernel's choice)
  --per-route N              postgres: connections per database/backend address (default 10000)
  --per-proxy-source N       tcp: connections per proxy source address (upstream.sourceAddresses; default 2500)
  --concurrency N            connections each agent opens at once (default 256)
  --hold S                   seconds to hold the top step before the final check (default 5)
  --sysctl auto|apply|skip   kernel settings (scripts/sysctl-load.sh, and net.core.netdev_max_backlog 65536 for
                             keep-alive probe bursts): auto applies them only when N needs them
  --proxy dist|src|FILE      dist/cli.js (default; run make build), src/cli.ts, or another build's cli.js
  --out DIR                  results folder (default load/results)
  --fds-per-process N        descriptors planned per process (default 17000; the hard limit here is 20000)
  --agent-control stdio|tcp  how local agents talk to this coordinator (tcp: as remote agents do)
  --remote-agents K          do not start agents: wait for K agents (Kubernetes Indexed Job, load/k8s/) to connect to
  --control HOST:PORT        the control address they dial (default 127.0.0.1:0 for local tcp agents)
  --listen-host H            proxy listener host (default 127.0.0.1); --advertise H: the host agents dial
  --deadline S               the whole run stops (failed) after S seconds (default: planned from N)
  --proxy-node-options "…"   NODE_OPTIONS for the proxy and its workers (e.g. --max-semi-space-size=1); default none
  --worker-node-options "…"  the proxy config's nodeOptions (flags of its worker processes, V8 flags included, which
                             NODE_OPTIONS refuses); default: the proxy's own default (--max-semi-space-size=1)
  --heap-snapshots           heap snapshots of every proxy process at 0 and at N connections, diffed by object kind
                             (what the V8 heap holds per connection); use with a small N and --workers 1
`

const argv = process.argv.slice(2)
const opt = (name: string, fallback?: string): string | undefined => {
  const i = argv.indexOf(`--${name}`)
  if (i >= 0) return argv[i + 1]
  const env = process.env[`LOAD_${name.toUpperCase().replaceAll("-", "_")}`]
  return env !== undefined && env !== "" ? env : fallback
}
const die = (message: string): never => {
  process.stderr.write(`load: ${message}\n`)
  process.exit(2)
}
const intOpt = (name: string, fallback: number): number => {
  const v = opt(name)
  if (v === undefined || v === "auto") return fallback
  const n = Number(v)
  if (!Number.isInteger(n) || n < 0) die(`--${name} must be a whole number, got ${v}`)
  return n
}

if (argv.includes("--help") || argv.includes("-h")) {
  process.stdout.write(usage)
  process.exit(0)
}
const N = intOpt("connections", 0)
if (N <= 0) die(`--connections N is required\n${usage}`)
const mode = (opt("mode", "tcp") ?? "tcp") as Mode
if (mode !== "tcp" && mode !== "postgres" && mode !== "postgres-pooled") {
  die(`--mode must be tcp, postgres or postgres-pooled, got ${mode}`)
}
const pooled = mode === "postgres-pooled"
const fdsPer = intOpt("fds-per-process", 17_000)
// A proxied connection holds two fds in its worker (client and backend); a pooled client only its own (the worker's
// few server connections are shared).
const fdsPerConn = pooled ? 1 : 2
// The workers share the listener with SO_REUSEPORT: the kernel spreads connections by a hash of the addresses, evenly
// but not exactly. Busiest worker's fds over the mean at the top step: +2.2% (30 workers, 200k: 13,654 / 13,357),
// +3.5% (59, 400k: 14,058 / 13,583), +3.3% (65, 440k: 14,012 / 13,562); the relative spread shrinks as the counts grow
// (+3.6–5.6% at ≈ 3,300 per worker, +21% at ≈ 350). Plan 8% under --fds-per-process per worker, over twice the
// spread measured at these sizes: the busiest worker then holds ≈ 17,000 × 0.92 × 1.035 ≈ 16,200 fds, under the
// 19,000 that leaves 1,000 of the 20,000 hard limit for everything else a worker opens.
const workers = Math.max(1, intOpt("workers", Math.ceil((fdsPerConn * N) / Math.floor(fdsPer * 0.92))))
const remoteAgents = intOpt("remote-agents", 0)
const agentCount = remoteAgents > 0 ? remoteAgents : Math.max(1, intOpt("agents", Math.ceil(N / fdsPer)))
// postgres-pooled has no echo backends: its backend is one PostgreSQL.
const backendCount = pooled ? 0 : Math.max(1, intOpt("backends", Math.ceil(N / fdsPer)))
const poolAuth = opt("pool-auth", "scram") as PoolAuth
if (poolAuth !== "scram" && poolAuth !== "md5") die(`--pool-auth must be scram or md5, got ${poolAuth}`)
const poolOptions = {
  databases: Math.max(1, intOpt("pool-databases", 2)),
  roles: Math.max(1, intOpt("pool-roles", 2)),
  poolSize: Math.max(1, intOpt("pool-size", 2)),
  workers,
  auth: poolAuth,
  maxConnections: intOpt("pg-max-connections", 0)
}
const maxKbPerConn = Number(opt("max-kb-per-conn", "6"))
const perSource = intOpt("per-source", 10_000)
// The proxy dials every backend from 127.0.0.1 with a kernel-chosen port: connect() walks the ephemeral range past
// the ports already used towards that address, so its cost grows with how full the range is for it (at 20k of the
// default 28k per address, __inet_check_established took 55% of the machine's CPU and the 50k→100k step 70–90 s;
// at 10k, 15 s). Keep each backend address at about a third of the default range.
const perRoute = Math.max(1, intOpt("per-route", 10_000))
const concurrency = Math.max(1, intOpt("concurrency", 256))
const holdS = intOpt("hold", 5)
const sysctlMode = opt("sysctl", "auto")
const proxyEntry = (() => {
  const p = opt("proxy", "dist")!
  return p === "src" ? join(root, "src", "cli.ts") : p === "dist" ? join(root, "dist", "cli.js") : p
})()
const outDir = opt("out", join(root, "load", "results"))!
const agentControl = remoteAgents > 0 ? "tcp" : (opt("agent-control", "stdio") ?? "stdio")
const listenHost = opt("listen-host", "127.0.0.1")!
const advertise = opt("advertise", listenHost)!
const control = opt("control", "127.0.0.1:0")!
const fdLimit = 20_000
const heapSnapshots = argv.includes("--heap-snapshots")
const proxyNodeOptions = opt("proxy-node-options", "")!
const workerNodeOptions = opt("worker-node-options")
const nativeMode = opt("native", "auto")!
if (nativeMode !== "auto" && nativeMode !== "yes" && nativeMode !== "no")
  die(`--native: auto, yes or no, got ${nativeMode}`)
// Each worker's RSS grows the first time it carries connections (code compiled on first use, heap pages), whatever
// their number: opening and closing some before the baseline keeps that out of the marginal figure. 100 per worker
// run every path (accept, route, dial, relay, close) many times and took 0.9–1.6 MB per worker of that growth
// (20k, 100k, 670k). More take more of it, but past ≈ 1,000 per worker the baseline also holds what the closed ones
// left behind (freed heap and buffers that later connections reuse) and the marginal figure falls under the slope
// (load/README.md).
const warmupN = Math.min(N, intOpt("warmup", 100 * workers))

const steps = (() => {
  const given = opt("steps", "auto")
  if (given !== undefined && given !== "auto") {
    const list = given.split(",").map(Number)
    if (list.some((n) => !Number.isInteger(n) || n <= 0)) die(`--steps: whole numbers, got ${given}`)
    return [...new Set([...list.filter((n) => n < N), N])].sort((a, b) => a - b)
  }
  const out: Array<number> = []
  for (const s of [10_000, 50_000, 100_000]) if (s < N) out.push(s)
  for (let s = 200_000; s < N; s *= 2) out.push(s)
  out.push(N)
  return out
})()

// Backend addresses: tcp mode has one route, so one address; postgres mode one per --per-route connections;
// postgres-pooled one route per database, all to the one PostgreSQL.
const routeCount = pooled ? poolOptions.databases : mode === "tcp" ? 1 : Math.max(1, Math.ceil(N / perRoute))
// tcp mode instead spreads the proxy's dials over source addresses (`upstream.sourceAddresses`), one per
// --per-proxy-source connections: 127.0.3.1, 127.0.3.2, … (the agents' sources start at 127.101.0.1). A dial from a
// given source address binds it first, and bind() with port 0 searches that address's ports in the ephemeral range
// (Node cannot set IP_BIND_ADDRESS_NO_PORT), so the search grows with the ports taken: 10,000 per address took 22 s
// and 41 s of proxy CPU for the 50k→60k step, 3,000 per address 1.3 s and 1.4 s.
const perProxySource = Math.max(1, intOpt("per-proxy-source", 2_500))
const proxySources =
  mode === "tcp" && N > perProxySource
    ? Array.from(
        { length: Math.ceil(N / perProxySource) },
        (_, j) => `127.0.${3 + Math.floor(j / 250)}.${(j % 250) + 1}`
      )
    : []
// Each step has this long to ramp (at ≥ 250 new connections per second) on top of a fixed margin.
const stepTimeoutMs = (added: number) => 30_000 + (added / 250) * 1000
const plannedMs =
  120_000 +
  (warmupN > 0 ? stepTimeoutMs(warmupN) + 60_000 : 0) +
  steps.reduce((sum, s, i) => sum + stepTimeoutMs(s - (steps[i - 1] ?? 0)) + 30_000, 0) +
  holdS * 1000
const deadlineMs = intOpt("deadline", Math.round(plannedMs / 1000)) * 1000

// ---------------------------------------------------------------------------------------------------- output

const log = (line: string) => process.stdout.write(`${line}\n`)
const fmt = (n: number, digits = 2) => n.toFixed(digits)

interface StepResult {
  connections: number
  rampSeconds: number
  active: number
  proxy: {
    processes: Array<ProcMemory>
    rssBytes: number
    pssBytes: number
    rssAnonBytes: number
    kbPerConnTotal: number
    /** Above the warm baseline (after the warm-up): what the budget checks. */
    kbPerConnMarginal: number
    /** Above the cold baseline (before any connection): includes each worker's first-use growth. */
    kbPerConnMarginalCold: number
    /** RSS added since the previous step (the warm baseline for the first) ÷ connections added. */
    kbPerConnSlope: number
    pssKbPerConnMarginal: number
  }
  kernel: KernelMemory & { kbPerConn: number; slabKbPerConn: number; bufferKbPerConn: number }
  agents: {
    confirmed: number
    failed: number
    lost: number
    errors: Record<string, number>
    rssBytes: number
    /** RSS of all agents ÷ connections, and above their RSS before the first connection. */
    kbPerConn: number
    kbPerConnMarginal: number
  }
  backends: {
    open: number
    errors: number
    errorCodes: Record<string, number>
    rssBytes: number
    kbPerConn: number
    kbPerConnMarginal: number
  }
  /** postgres-pooled: the server's client backends at the step, and the most seen so far. */
  pg?: { now: PgCount; peak: PgPeak }
  proxyErrors: Record<string, number>
  conntrack: number | undefined
  /** Machine-wide TCP counters moved since the run's baseline (only those that moved). */
  tcp: Record<string, number>
  /** CPU seconds used during this step's ramp and settle, by role (all their processes). */
  cpuSeconds: { proxy: number; agents: number; backends: number }
}

// ---------------------------------------------------------------------------------------------------- helpers

const freePort = (host: string): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once("error", reject)
    s.listen({ host, port: 0 }, () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })

const httpGet = async (url: string, timeoutMs = 5_000): Promise<{ status: number; body: string }> => {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })
  return { status: res.status, body: await res.text() }
}

const waitFor = async <A>(what: string, timeoutMs: number, probe: () => Promise<A | undefined> | A | undefined) => {
  const until = Date.now() + timeoutMs
  for (;;) {
    try {
      const v = await probe()
      if (v !== undefined) return v
    } catch {}
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(200)
  }
}

const tail = (file: string, lines = 15) => {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n")
  } catch {
    return ""
  }
}

/** Split `total` into `parts` shares that differ by at most one; share `i`. */
const share = (total: number, parts: number, i: number) => Math.floor(total / parts) + (i < total % parts ? 1 : 0)

// ---------------------------------------------------------------------------------------------------- main

const main = async (): Promise<number> => {
  const startedAt = new Date()
  const deadline = setTimeout(() => {
    process.stderr.write(`load: the run passed its deadline of ${deadlineMs / 1000} s: stopping everything\n`)
    killAll()
    process.exit(1)
  }, deadlineMs)
  deadline.unref()

  if (!existsSync(proxyEntry)) die(`${proxyEntry} does not exist: run make build (or pass --proxy src)`)
  const tmp = mkdtempSync(join(os.tmpdir(), "polyproxy-load-"))
  let keepTmp = false
  onExit(() => {
    if (!keepTmp) rmSync(tmp, { recursive: true, force: true })
  })

  // Agents and backends: C when it builds (--native auto), else Node. Local agents over TCP control are Node's.
  let native: NativeBinaries | undefined
  if (nativeMode !== "no") {
    const built = buildNative()
    if ("reason" in built) {
      if (nativeMode === "yes") die(`--native yes: ${built.reason}`)
      log(`load: no native agents and backends (${built.reason}): running the Node ones`)
    } else {
      native = built
      for (const line of built.built) log(`load: built ${line}`)
    }
  }
  const agentKind: "c" | "node" = native !== undefined && agentControl === "stdio" ? "c" : "node"
  const backendKind: "c" | "node" = native !== undefined ? "c" : "node"
  if (native !== undefined && agentKind === "node" && remoteAgents === 0) {
    log("load: --agent-control tcp: the agents are Node's (the C agent is controlled over stdio only)")
  }

  // Memory check, from measured costs (load/README.md): the kernel ≈ 20 KB per proxied connection (its four sockets),
  // the proxy ≤ 6 KB per connection (the budget) + ≈ 40 MB per worker (PSS at 0 connections: 32 MB per process at
  // 440k cold, 35 MB at 100k warm), a Node agent or backend ≈ 2.5 KB per socket + 75 MB, a C one ≈ 0.02 KB per socket
  // + 2 MB (both measured at 20k).
  const helperKb = (kind: "c" | "node") => (kind === "c" ? 0.05 : 2.5)
  const helperMb = (kind: "c" | "node") => (kind === "c" ? 2 : 75)
  // postgres-pooled: two sockets per client instead of four (≈ 10 KB of kernel memory), no echo backends, and a
  // PostgreSQL of max_connections backends (≈ 3 MB each at most when idle) and ≈ 200 MB of its own.
  const pgBytes = pooled ? (pooledBound(poolOptions).maxConnections * 3 + 200) * MB : 0
  const needBytes =
    N *
      ((pooled ? 10 : 20) + 6 + (remoteAgents > 0 ? 0 : helperKb(agentKind)) + (pooled ? 0 : helperKb(backendKind))) *
      KB +
    workers * 40 * MB +
    (remoteAgents > 0 ? 0 : agentCount * helperMb(agentKind) * MB) +
    backendCount * helperMb(backendKind) * MB +
    pgBytes
  const available = memAvailable()
  log(
    `load: ${N} connections, mode ${mode}: ${workers} proxy worker(s), ${remoteAgents > 0 ? `${remoteAgents} remote` : agentCount} ${agentKind === "c" ? "C" : "Node"} agent(s), ` +
      (pooled
        ? `PostgreSQL (${poolOptions.databases} database(s) × ${poolOptions.roles} role(s), ${poolAuth}, pool.size ${poolOptions.poolSize}), `
        : `${backendCount} ${backendKind === "c" ? "C" : "Node"} backend(s), ${routeCount} backend address(es)${proxySources.length > 0 ? `, ${proxySources.length} proxy source addresses` : ""}; `) +
      `steps ${steps.join(", ")}; ` +
      `warm-up ${warmupN}`
  )
  log(`load: memory: needs ≈ ${(needBytes / MB).toFixed(0)} MB, ${(available / MB).toFixed(0)} MB available`)
  if (needBytes > available - 1024 * MB) {
    die(`not enough memory for ${N} connections here now (needs ≈ ${(needBytes / MB).toFixed(0)} MB + 1 GB reserve)`)
  }

  // Kernel settings: the ephemeral port range bounds connections per (source, destination) pair.
  const [portLo, portHi] = sysctl("net.ipv4.ip_local_port_range").split(/\s+/).map(Number) as [number, number]
  const portRange = portHi - portLo + 1
  // postgres-pooled: the proxy dials PostgreSQL only for its pools' few server connections.
  const perDestination = pooled
    ? pooledBound(poolOptions).total
    : Math.ceil(N / (mode === "tcp" ? Math.max(1, proxySources.length) : routeCount))
  const needSysctl =
    perDestination > portRange * 0.8 ||
    Number(sysctl("net.core.somaxconn")) < 4096 ||
    (N > 100_000 && Number(sysctl("net.ipv4.tcp_max_syn_backlog")) < 8192)
  if (sysctlMode === "apply" || (sysctlMode === "auto" && needSysctl)) {
    const state = join(os.tmpdir(), `polyproxy-sysctl-load.${process.pid}.state`)
    log(execFileSync("bash", [join(root, "scripts", "sysctl-load.sh"), "apply", state], { encoding: "utf8" }).trimEnd())
    onExit(() => {
      process.stdout.write(
        execFileSync("bash", [join(root, "scripts", "sysctl-load.sh"), "restore", state], { encoding: "utf8" })
      )
    })
  }
  // Loopback's input backlog must hold a burst of keep-alive probes. The proxy turns TCP keep-alive on for both of its
  // sockets of every connection (60 s idle, then libuv's 1 probe a second, 10 at most, then the kernel aborts the
  // socket). The kernel's timer wheel fires 60-s timers in 2-s batches (HZ 250), so every connection opened in the same
  // 2 s of the ramp probes in the same instant; on loopback each probe and its answer are queued on the sending CPU's
  // input backlog (net.core.netdev_max_backlog, 1000 by default), and a burst of thousands overflows it: the probes are
  // dropped, retried together a second later, dropped again, and after 10 s the proxy's kernel aborts the connection
  // (TCPAbortOnTimeout) with an RST that is dropped the same way, leaving the agent and the backend a half-open socket
  // (a later dial that reuses the port meets it: TCPSYNChallenge, backend ECONNRESET). See load/README.md.
  const backlogKey = "net.core.netdev_max_backlog"
  const backlogWanted = 65_536
  const backlogOld = Number(sysctl(backlogKey))
  // Connections sit idle past 60 s once a run has several steps (N > 20k), a long hold, or heap snapshots.
  const idlePastKeepAlive = N > 20_000 || holdS >= 30 || heapSnapshots
  if (backlogOld < backlogWanted && (sysctlMode === "apply" || (sysctlMode === "auto" && idlePastKeepAlive))) {
    const file = `/proc/sys/${backlogKey.replaceAll(".", "/")}`
    try {
      writeFileSync(file, `${backlogWanted}\n`)
    } catch (e) {
      die(`cannot raise ${backlogKey} (${(e as Error).message}): run as root, or pass --sysctl skip`)
    }
    log(`load: ${backlogKey}: ${backlogOld} -> ${backlogWanted} (keep-alive probe bursts on loopback)`)
    onExit(() => {
      writeFileSync(file, `${backlogOld}\n`)
      process.stdout.write(`load: ${backlogKey}: ${backlogWanted} -> ${backlogOld} (restored)\n`)
    })
  }
  const [lo2, hi2] = sysctl("net.ipv4.ip_local_port_range").split(/\s+/).map(Number) as [number, number]
  // Agents bind explicit source ports below the ephemeral range (see AgentConfig.portLo).
  const agentPortLo = 1024
  const perSourceUsed = Math.min(perSource, lo2 - agentPortLo - 1)
  if (perSource > 0 && perSourceUsed < 1000) die(`the ephemeral port range starts at ${lo2}: too low for agent ports`)
  if (perDestination > (hi2 - lo2 + 1) * 0.9) {
    die(
      `${perDestination} proxy→backend connections to one backend address do not fit in the ephemeral port range ` +
        `${lo2}-${hi2}. Lower --per-route.`
    )
  }

  // -------------------------------------------------------------------------------------------- backends
  const backends: Array<{ child: ChildProcess; last: BackendReport | undefined }> = []
  const startBackend = (i: number, listen: ReadonlyArray<string>) => {
    const args = [
      "--listen",
      listen.join(","),
      "--mode",
      mode,
      "--id",
      String(i),
      "--lifetime",
      String(Math.ceil(deadlineMs / 1000) + 60)
    ]
    const child =
      native !== undefined
        ? spawnExec(native.backend, args, { fdLimit })
        : spawnNode(["--max-semi-space-size=1", join(root, "load", "backend.ts"), ...args], { fdLimit })
    const b = { child, last: undefined as BackendReport | undefined }
    child.stdout!.on(
      "data",
      jsonLines((m) => {
        if ((m as BackendReport).t === "backend") b.last = m as BackendReport
      })
    )
    child.stderr!.on("data", (d: Buffer) => process.stderr.write(d))
    backends.push(b)
    return b
  }
  let backendAddrs: ReadonlyArray<string> = []
  // postgres-pooled: one real PostgreSQL instead (stopped at the end; the backends' exit hook kills it otherwise).
  let pgBackend: PooledBackend | undefined
  if (pooled) {
    const t0 = Date.now()
    pgBackend = await startPooledBackend(poolOptions)
    const { server, bound } = pgBackend
    log(
      `load: PostgreSQL at ${server.host}:${server.port} (${((Date.now() - t0) / 1000).toFixed(1)} s): ` +
        `max_connections ${pgBackend.maxConnections}, databases ${pgBackend.databases.join(" ")}, roles ` +
        `${pgBackend.users.join(" ")} (${poolAuth}); the pools may hold ${bound.perPool} server connections per ` +
        `(database, role) (${workers} worker(s) × pool.size ${poolOptions.poolSize}), ${bound.total} in all`
    )
  } else {
    const first = startBackend(
      0,
      Array.from({ length: routeCount }, () => "127.0.0.1:0")
    )
    backendAddrs = await waitFor("the first backend", 20_000, () => first.last?.listening)
    for (let i = 1; i < backendCount; i++) startBackend(i, backendAddrs)
    await waitFor("every backend", 20_000, () => (backends.every((b) => b.last !== undefined) ? true : undefined))
  }

  // -------------------------------------------------------------------------------------------- proxy
  const adminPort = await freePort("127.0.0.1")
  const routes: Record<string, unknown> = { ...pgBackend?.routes }
  const databases: Array<string> = [...(pgBackend?.databases ?? [])]
  backendAddrs.forEach((a, i) => {
    const name = mode === "tcp" ? "load" : `db${i}`
    routes[name] = a
    databases.push(name)
  })
  const listener =
    mode === "tcp"
      ? { tcp: { host: listenHost, port: 0, route: "load" } }
      : { postgres: { host: listenHost, port: 0, routeBy: "database" } }
  const proxyConfig = {
    workers,
    admin: { host: "127.0.0.1", port: adminPort },
    listeners: listener,
    routes,
    cache: { ttl: 3600, negativeTtl: 5 },
    ssrf: { allow: ["127.0.0.0/8"] },
    timeouts: { handshake: 30, connect: 30, idle: 0, drain: 1 },
    log: { level: "warn", format: "json" },
    ...(proxySources.length > 0 ? { upstream: { sourceAddresses: proxySources } } : {}),
    ...(workerNodeOptions === undefined ? {} : { nodeOptions: workerNodeOptions.split(/\s+/).filter((x) => x !== "") })
  }
  const configFile = join(tmp, "polyproxy.json")
  writeFileSync(configFile, JSON.stringify(proxyConfig, null, 2))
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith("POLYPROXY_") && !k.startsWith("PROXY_TLS_") && k !== "NODE_OPTIONS") env[k] = v
  }
  const heapDir = join(tmp, "heap")
  if (heapSnapshots) mkdirSync(heapDir, { recursive: true })
  const nodeOptions = [
    proxyNodeOptions,
    heapSnapshots ? `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${heapDir}` : ""
  ]
    .join(" ")
    .trim()
  if (nodeOptions !== "") env.NODE_OPTIONS = nodeOptions
  const proxyLog = join(tmp, "proxy.log")
  const logFd = openSync(proxyLog, "a")
  const proxy = spawnNode([proxyEntry, "serve", "--config", configFile], { fdLimit, env, cwd: root, output: logFd })
  closeSync(logFd)
  let proxyExited = false
  proxy.once("exit", (code, signal) => {
    proxyExited = true
    process.stderr.write(`load: the proxy exited (${code ?? signal})\n`)
  })
  const admin = `http://127.0.0.1:${adminPort}`
  const ready = await waitFor("the proxy's /readyz", 60_000, async () => {
    if (proxyExited) throw new Error("proxy exited")
    const r = await httpGet(`${admin}/readyz`)
    return r.status === 200 ? (JSON.parse(r.body) as { listeners: Record<string, { port: number }> }) : undefined
  }).catch((e: Error) => {
    keepTmp = true
    throw new Error(`${e.message}\n${tail(proxyLog)}`)
  })
  const proxyPort = Object.values(ready.listeners)[0]?.port
  if (proxyPort === undefined) throw new Error(`/readyz names no listener: ${JSON.stringify(ready)}`)
  const proxyPid = proxy.pid!
  const proxyPids = () => [proxyPid, ...childPids(proxyPid)]
  log(
    `load: proxy pid ${proxyPid} (${workers} worker(s): ${childPids(proxyPid).join(" ") || "none, single process"}) ` +
      `listening ${listenHost}:${proxyPort}, admin ${admin}; backends at ` +
      (pgBackend !== undefined ? `${pgBackend.server.host}:${pgBackend.server.port}` : backendAddrs.join(" "))
  )

  const proxyMemory = () => {
    const procs = proxyPids()
      .map(procMemory)
      .filter((p): p is ProcMemory => p !== undefined)
    return {
      processes: procs,
      rss: procs.reduce((s, p) => s + p.rss, 0),
      pss: procs.reduce((s, p) => s + p.pss, 0),
      rssAnon: procs.reduce((s, p) => s + p.rssAnon, 0)
    }
  }
  /** Waits until the proxy's RSS moves by less than 0.5% over a second (at most `maxMs`), then returns it. */
  const settledMemory = async (maxMs: number) => {
    const until = Date.now() + maxMs
    let prev = proxyMemory()
    for (;;) {
      await sleep(1_000)
      const now = proxyMemory()
      if (Math.abs(now.rss - prev.rss) < now.rss * 0.005 || Date.now() > until) return now
      prev = now
    }
  }
  const metrics = async () => (await httpGet(`${admin}/metrics`, 10_000)).body
  /** SIGUSR2 to every proxy process; waits for their snapshot files to be complete. pid -> file. */
  const snapshotAll = async (): Promise<Map<number, string>> => {
    const known = new Set(readdirSync(heapDir))
    const pids = proxyPids()
    for (const pid of pids) process.kill(pid, "SIGUSR2")
    const files = new Map<number, string>()
    await waitFor("heap snapshots", 300_000, async () => {
      for (const f of readdirSync(heapDir)) {
        if (known.has(f) || !f.endsWith(".heapsnapshot")) continue
        const pid = Number(f.split(".")[3])
        if (pids.includes(pid)) files.set(pid, join(heapDir, f))
      }
      if (files.size < pids.length) return undefined
      const sizes = [...files.values()].map((f) => statSync(f).size)
      await sleep(1_000)
      return [...files.values()].every((f, i) => statSync(f).size === sizes[i] && sizes[i]! > 0) ? true : undefined
    })
    return files
  }
  // The listener's name is its type: tcp, or postgres (postgres-pooled's routes are on a postgres listener).
  const listenerName = mode === "tcp" ? "tcp" : "postgres"

  /** postgres-pooled: what the server holds, as a table row's second line. */
  const pgLine = (now: PgCount, peak: PgPeak) =>
    `PostgreSQL: ${now.total} server connections for the pools now ` +
    `(${Object.entries(now.perPool)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")}), ${now.others} other(s); peak ${peak.total} in all (bound ${pgBackend!.bound.total}), ` +
    `${peak.perPool} of one (database, role) (bound ${pgBackend!.bound.perPool}); ${peak.samples} samples`
  /** postgres-pooled: the server's connections beyond what the pools may open (sampled every 250 ms), once each. */
  const pgReported = new Set<string>()
  const pgFailures = (): Array<string> => {
    if (pgBackend === undefined) return []
    const { bound } = pgBackend
    const peak = pgBackend.peak()
    const found: Array<string> = []
    if (peak.perPool > bound.perPool) {
      found.push(
        `PostgreSQL held ${peak.perPool} connections of ${peak.pool}: more than workers × pool.size = ${bound.perPool}`
      )
    }
    if (peak.total > bound.total) {
      found.push(`PostgreSQL held ${peak.total} connections for the pools: more than their bound ${bound.total}`)
    }
    if (pgBackend.errors().length > 0) {
      found.push(`pg_stat_activity could not be sampled: ${pgBackend.errors().join("; ")}`)
    }
    const fresh = found.filter((f) => !pgReported.has(f.split(":")[0]!))
    for (const f of fresh) pgReported.add(f.split(":")[0]!)
    return fresh
  }

  await sleep(1_000)
  const baseCold = await settledMemory(10_000)
  const baseKernel = kernelMemory()
  // The machine's TCP counters: from here, then again from the end of the warm-up (its RSTs are not the steps').
  let baseTcp = tcpCounters()
  /** The machine-wide TCP counters that moved since the baseline. */
  const tcpMoved = (): Record<string, number> =>
    Object.fromEntries(
      Object.entries(tcpCounters())
        .map(([k, v]) => [k, v - (baseTcp[k] ?? 0)] as const)
        .filter(([, v]) => v !== 0)
    )
  const explainLoss = (tcp: Record<string, number>, errors: Record<string, number>, backendErrors: object) => {
    log(`load: TCP counters moved since the baseline: ${JSON.stringify(tcp)}`)
    log(`load: agents' errors ${JSON.stringify(errors)}, backends' errors ${JSON.stringify(backendErrors)}`)
    if ((tcp.SoftnetDrops ?? 0) > 0) {
      log(
        `load: ${tcp.SoftnetDrops} packets were dropped at a full loopback input backlog (${backlogKey} = ` +
          `${sysctl(backlogKey)}; ${tcp.TCPKeepAlive ?? 0} keep-alive probes sent): see load/README.md`
      )
    }
  }
  log(
    `load: cold baseline at 0 connections: proxy RSS ${fmt(baseCold.rss / MB, 1)} MB over ` +
      `${baseCold.processes.length} process(es) (PSS ${fmt(baseCold.pss / MB, 1)} MB)`
  )

  // -------------------------------------------------------------------------------------------- agents
  interface AgentHandle {
    id: number
    send: (m: ToAgent) => void
    last: AgentReport | undefined
    gone: boolean
  }
  const agents: Array<AgentHandle> = []
  const agentConfig = (i: number): AgentConfig => ({
    mode,
    host: advertise,
    port: proxyPort,
    // Agent i binds 127.(101 + i / 250).(i % 250).1, .2, …: its own source addresses, --per-source connections each.
    sources:
      remoteAgents > 0 || perSource === 0
        ? []
        : Array.from(
            // The warm-up's connections take ports too (attempt n binds port n % perSource of address n / perSource).
            { length: Math.ceil((share(N, agentCount, i) + share(warmupN, agentCount, i)) / perSourceUsed) + 1 },
            (_, j) => `127.${101 + Math.floor(i / 250)}.${i % 250}.${j + 1}`
          ),
    perSource: perSourceUsed,
    portLo: agentPortLo,
    databases,
    ...(pgBackend !== undefined ? { users: pgBackend.users, passwords: pgBackend.passwords } : {}),
    concurrency,
    confirmTimeoutMs: 30_000,
    lifetimeMs: deadlineMs + 30_000
  })
  const onAgentMessage = (h: AgentHandle) => (value: unknown) => {
    const m = value as FromAgent
    if (m.t === "report") h.last = m
    else if (m.t === "bye") h.gone = true
  }

  if (agentControl === "tcp") {
    // Agents dial in (remote pods, or local ones started with --coordinator to test that path).
    const colon = control.lastIndexOf(":")
    const server = net.createServer((socket) => {
      const h: AgentHandle = {
        id: -1,
        send: (m) => {
          if (!socket.destroyed) socket.write(`${JSON.stringify(m)}\n`)
        },
        last: undefined,
        gone: false
      }
      const handle = onAgentMessage(h)
      socket.on(
        "data",
        jsonLines((value) => {
          const m = value as FromAgent
          if (m.t === "hello" && h.id < 0) {
            if (agents.some((a) => a.id === m.id) || m.id >= agentCount) {
              log(`load: agent index ${m.id} from ${m.host} is a duplicate or out of range: refused`)
              socket.destroy()
              return
            }
            h.id = m.id
            agents.push(h)
            h.send({ t: "config", config: agentConfig(m.id) })
            log(`load: agent ${m.id} (pid ${m.pid} on ${m.host}) connected`)
          } else handle(value)
        })
      )
      socket.on("error", () => {})
      socket.on("close", () => {
        h.gone = true
      })
    })
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject)
      server.listen({ host: control.slice(0, colon), port: Number(control.slice(colon + 1)) }, resolve)
    })
    onExit(() => server.close())
    const controlAddr = server.address() as net.AddressInfo
    log(`load: waiting for ${agentCount} agent(s) on ${controlAddr.address}:${controlAddr.port}`)
    if (remoteAgents === 0) {
      for (let i = 0; i < agentCount; i++) {
        const child = spawnNode(
          [
            "--max-semi-space-size=1",
            join(root, "load", "agent.ts"),
            "--coordinator",
            `127.0.0.1:${controlAddr.port}`,
            "--index",
            String(i)
          ],
          { fdLimit }
        )
        child.stderr!.on("data", (d: Buffer) => process.stderr.write(d))
      }
    }
    await waitFor(`${agentCount} agents`, remoteAgents > 0 ? 600_000 : 30_000, () =>
      agents.length === agentCount ? true : undefined
    )
  } else {
    for (let i = 0; i < agentCount; i++) {
      const child =
        native !== undefined
          ? spawnExec(native.agent, ["--index", String(i)], { fdLimit })
          : spawnNode(["--max-semi-space-size=1", join(root, "load", "agent.ts"), "--index", String(i)], { fdLimit })
      const h: AgentHandle = {
        id: i,
        send: (m) => {
          if (child.stdin!.writable) child.stdin!.write(`${JSON.stringify(m)}\n`)
        },
        last: undefined,
        gone: false
      }
      child.stdin!.on("error", () => {})
      child.stdout!.on("data", jsonLines(onAgentMessage(h)))
      child.stderr!.on("data", (d: Buffer) => process.stderr.write(d))
      child.once("exit", () => {
        h.gone = true
      })
      agents.push(h)
      h.send({ t: "config", config: agentConfig(i) })
    }
  }
  agents.sort((a, b) => a.id - b.id)

  const agentTotals = () => {
    const errors: Record<string, number> = {}
    let confirmed = 0
    let pending = 0
    let failed = 0
    let lost = 0
    let rss = 0
    for (const a of agents) {
      const r = a.last
      if (r === undefined) continue
      confirmed += r.confirmed
      pending += r.pending
      failed += r.failed
      lost += r.lost
      rss += r.rssBytes
      for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v
    }
    return { confirmed, pending, failed, lost, errors, rss }
  }
  const backendTotals = () => ({
    open: backends.reduce((s, b) => s + (b.last?.open ?? 0), 0),
    errors: backends.reduce((s, b) => s + (b.last?.errors ?? 0), 0),
    errorCodes: backends.reduce<Record<string, number>>((acc, b) => {
      for (const [k, v] of Object.entries(b.last?.errorCodes ?? {})) acc[k] = (acc[k] ?? 0) + v
      return acc
    }, {}),
    rssBytes: backends.reduce((s, b) => s + (b.last?.rssBytes ?? 0), 0)
  })

  // -------------------------------------------------------------------------------------------- warm-up
  // Agents' and backends' RSS before their first connection: their marginal figures start here.
  await waitFor("every agent's first report", 30_000, () =>
    agents.every((a) => a.last !== undefined) ? true : undefined
  )
  const helpersCold = { agentsRssBytes: agentTotals().rss, backendsRssBytes: backendTotals().rssBytes }
  const failures: Array<string> = []
  // Open and confirm warmupN connections, close them all (RST, as agents do), wait for the proxy to count 0 active
  // and for its RSS to settle: that is the warm baseline the marginal figure and the budget start from.
  let base = baseCold
  // Heap snapshots "before" are taken warm too (after the warm-up), so that the diff is what connections hold.
  let heapBefore: Map<number, string> | undefined
  let warmup:
    | {
        connections: number
        rampSeconds: number
        closeSeconds: number
        peakRssBytes: number
        tcp: Record<string, number>
      }
    | undefined
  if (warmupN === 0 && heapSnapshots) heapBefore = await snapshotAll()
  if (warmupN > 0) {
    const t0 = Date.now()
    for (const a of agents) a.send({ t: "target", n: share(warmupN, agentCount, agents.indexOf(a)) })
    const opened = await waitFor(`the warm-up's ${warmupN} connections`, stepTimeoutMs(warmupN), () => {
      const t = agentTotals()
      if (proxyExited || (t.failed + t.lost > 0 && t.pending === 0)) return false
      const reported = agents.every((a) => a.last?.target === share(warmupN, agentCount, agents.indexOf(a)))
      return reported && t.confirmed === warmupN && t.pending === 0 ? true : undefined
    }).catch(() => false)
    const rampSeconds = (Date.now() - t0) / 1000
    const peak = proxyMemory()
    const t1 = Date.now()
    for (const a of agents) a.send({ t: "target", n: 0 })
    const closed =
      opened &&
      (await waitFor("the warm-up's connections to close", 30_000, async () => {
        const t = agentTotals()
        if (t.confirmed !== 0 || !agents.every((a) => a.last?.target === 0)) return undefined
        const active = metricValue(await metrics(), "polyproxy_connections_active", { listener: listenerName })
        return active === 0 ? true : undefined
      }).catch(() => false))
    const closeSeconds = (Date.now() - t1) / 1000
    if (!opened || !closed) {
      const t = agentTotals()
      failures.push(
        `warm-up: ${opened ? "its connections did not all close" : `${warmupN} connections not confirmed`} ` +
          `(${t.confirmed} confirmed, ${t.failed} failed ${JSON.stringify(t.errors)}, ${t.lost} lost)`
      )
    } else {
      if (heapSnapshots) heapBefore = await snapshotAll()
      base = await settledMemory(15_000)
      warmup = { connections: warmupN, rampSeconds, closeSeconds, peakRssBytes: peak.rss, tcp: tcpMoved() }
      baseTcp = tcpCounters()
      log(
        `load: warm-up: ${warmupN} connections opened in ${fmt(rampSeconds, 1)} s (proxy RSS ${fmt(peak.rss / MB, 1)} MB), ` +
          `closed in ${fmt(closeSeconds, 1)} s; warm baseline: proxy RSS ${fmt(base.rss / MB, 1)} MB ` +
          `(+${fmt((base.rss - baseCold.rss) / MB, 1)} MB over the cold one, ` +
          `${fmt((base.rss - baseCold.rss) / MB / Math.max(1, base.processes.length - 1), 1)} MB per worker), ` +
          `PSS ${fmt(base.pss / MB, 1)} MB`
      )
    }
  }

  // -------------------------------------------------------------------------------------------- ramp
  const results: Array<StepResult> = []
  log("")
  log(
    "connections  ramp s  proxy CPU s   active  proxy RSS MB  KB/conn: total  marginal  cold  slope  PSS marg  kernel  " +
      "agents  backends  errors  lost"
  )
  const cpuNow = () => ({
    proxy: proxyPids().reduce((s, p) => s + cpuSeconds(p), 0),
    agents: agents.reduce((s, a) => s + (a.last ? cpuSeconds(a.last.pid) : 0), 0),
    backends: backends.reduce((s, b) => s + (b.last ? cpuSeconds(b.last.pid) : 0), 0)
  })
  // A failed warm-up skips the ramp (its failure is reported as any other).
  for (const [si, step] of (failures.length === 0 ? steps : []).entries()) {
    const t0 = Date.now()
    const cpu0 = cpuNow()
    for (const a of agents) a.send({ t: "target", n: share(step, agentCount, agents.indexOf(a)) })
    const timeout = stepTimeoutMs(step - (steps[si - 1] ?? 0))
    let lastProgress = ""
    for (;;) {
      await sleep(250)
      const t = agentTotals()
      const reported = agents.every(
        (a) => a.last !== undefined && a.last.target === share(step, agentCount, agents.indexOf(a))
      )
      if (reported && t.confirmed === step && t.pending === 0) break
      if (t.failed + t.lost > 0 && t.pending === 0) break
      if (proxyExited) break
      if (agents.some((a) => a.gone)) {
        failures.push("an agent went away during the ramp")
        break
      }
      if (Date.now() - t0 > timeout) {
        failures.push(`step ${step}: not reached within ${timeout / 1000} s (${t.confirmed} confirmed)`)
        break
      }
      const progress = `  … ${t.confirmed} confirmed, ${t.pending} pending, ${t.failed} failed`
      if (Date.now() - t0 > 5_000 && progress !== lastProgress && (Date.now() - t0) % 5_000 < 250) {
        process.stderr.write(`${progress}\n`)
        lastProgress = progress
      }
    }
    const rampSeconds = (Date.now() - t0) / 1000
    if (proxyExited) {
      failures.push("the proxy exited")
      break
    }
    // Settle: the proxy's active gauge reaches the step and its RSS stops moving.
    let text = await metrics()
    for (
      let i = 0;
      i < 20 && metricValue(text, "polyproxy_connections_active", { listener: listenerName }) !== step;
      i++
    ) {
      await sleep(500)
      text = await metrics()
    }
    const mem = await settledMemory(15_000)
    text = await metrics()
    const active = metricValue(text, "polyproxy_connections_active", { listener: listenerName })
    const kernel = kernelMemory()
    const t = agentTotals()
    const slabDelta = kernel.slabBytes - baseKernel.slabBytes
    const bufDelta = kernel.tcpBufferBytes - baseKernel.tcpBufferBytes
    const held = Math.max(1, t.confirmed)
    const cpu1 = cpuNow()
    const prev = results.at(-1)
    const backendsNow = backendTotals()
    const r: StepResult = {
      connections: step,
      rampSeconds,
      active,
      proxy: {
        processes: mem.processes,
        rssBytes: mem.rss,
        pssBytes: mem.pss,
        rssAnonBytes: mem.rssAnon,
        kbPerConnTotal: mem.rss / held / KB,
        kbPerConnMarginal: (mem.rss - base.rss) / held / KB,
        kbPerConnMarginalCold: (mem.rss - baseCold.rss) / held / KB,
        kbPerConnSlope:
          (mem.rss - (prev?.proxy.rssBytes ?? base.rss)) / Math.max(1, held - (prev?.agents.confirmed ?? 0)) / KB,
        pssKbPerConnMarginal: (mem.pss - base.pss) / held / KB
      },
      kernel: {
        ...kernel,
        kbPerConn: (slabDelta + bufDelta) / held / KB,
        slabKbPerConn: slabDelta / held / KB,
        bufferKbPerConn: bufDelta / held / KB
      },
      agents: {
        confirmed: t.confirmed,
        failed: t.failed,
        lost: t.lost,
        errors: t.errors,
        rssBytes: t.rss,
        kbPerConn: t.rss / held / KB,
        kbPerConnMarginal: (t.rss - helpersCold.agentsRssBytes) / held / KB
      },
      backends: {
        ...backendsNow,
        kbPerConn: backendsNow.rssBytes / held / KB,
        kbPerConnMarginal: (backendsNow.rssBytes - helpersCold.backendsRssBytes) / held / KB
      },
      ...(pgBackend !== undefined ? { pg: { now: pgBackend.now(), peak: pgBackend.peak() } } : {}),
      proxyErrors: metricSamples(text, "polyproxy_errors_total"),
      conntrack: kernel.conntrack,
      tcp: tcpMoved(),
      cpuSeconds: {
        proxy: cpu1.proxy - cpu0.proxy,
        agents: cpu1.agents - cpu0.agents,
        backends: cpu1.backends - cpu0.backends
      }
    }
    results.push(r)
    const errorCount = t.failed + Object.values(r.proxyErrors).reduce((s, v) => s + v, 0)
    log(
      `${String(step).padStart(11)}  ${fmt(rampSeconds, 1).padStart(6)}  ${fmt(r.cpuSeconds.proxy, 1).padStart(11)}  ` +
        `${String(active).padStart(7)}  ${fmt(mem.rss / MB, 1).padStart(12)}  ` +
        `${fmt(r.proxy.kbPerConnTotal).padStart(14)}  ${fmt(r.proxy.kbPerConnMarginal).padStart(8)}  ` +
        `${fmt(r.proxy.kbPerConnMarginalCold).padStart(4)}  ${fmt(r.proxy.kbPerConnSlope).padStart(5)}  ` +
        `${fmt(r.proxy.pssKbPerConnMarginal).padStart(8)}  ${fmt(r.kernel.kbPerConn).padStart(6)}  ` +
        `${fmt(r.agents.kbPerConn).padStart(6)}  ${fmt(r.backends.kbPerConn).padStart(8)}  ` +
        `${String(errorCount).padStart(6)}  ${String(t.lost).padStart(4)}`
    )
    if (r.pg !== undefined) log(`             ${pgLine(r.pg.now, r.pg.peak)}`)
    failures.push(...pgFailures())
    if (t.confirmed !== step) failures.push(`step ${step}: agents hold ${t.confirmed} confirmed connections`)
    if (active !== step) failures.push(`step ${step}: the proxy reports ${active} active connections`)
    if (t.failed > 0) failures.push(`step ${step}: ${t.failed} connection(s) failed: ${JSON.stringify(t.errors)}`)
    if (t.lost > 0) failures.push(`step ${step}: ${t.lost} held connection(s) lost`)
    if (t.failed + t.lost > 0 || active !== step) explainLoss(r.tcp, t.errors, r.backends.errorCodes)
    if (failures.length > 0) break
  }

  // Hold the top step, then check nothing was lost meanwhile.
  let hold:
    | { seconds: number; confirmed: number; lost: number; active: number; tcp: Record<string, number> }
    | undefined
  if (failures.length === 0 && holdS > 0) {
    await sleep(holdS * 1000)
    const t = agentTotals()
    const active = metricValue(await metrics(), "polyproxy_connections_active", { listener: listenerName })
    hold = { seconds: holdS, confirmed: t.confirmed, lost: t.lost, active, tcp: tcpMoved() }
    if (t.lost > 0) failures.push(`${t.lost} connection(s) lost while holding ${N} for ${holdS} s`)
    if (active !== N) failures.push(`after holding ${holdS} s the proxy reports ${active} active connections`)
    log(`load: held ${t.confirmed} connections for ${holdS} s: ${t.lost} lost, proxy active ${active}`)
    if (t.lost > 0 || active !== N) explainLoss(hold.tcp, t.errors, backendTotals().errorCodes)
  }

  let heap: { bytesPerConn: number; top: Array<HeapGroup> } | undefined
  if (heapBefore !== undefined && failures.length === 0) {
    const after = await snapshotAll()
    const merged = new Map<string, HeapGroup>()
    let totalBytes = 0
    for (const [pid, file] of after) {
      const before = heapBefore.get(pid)
      if (before === undefined) continue
      const d = heapDiff(before, file)
      totalBytes += d.totalBytes
      for (const g of d.groups) {
        const m = merged.get(g.key)
        merged.set(g.key, { key: g.key, count: (m?.count ?? 0) + g.count, bytes: (m?.bytes ?? 0) + g.bytes })
      }
    }
    const groups = [...merged.values()].sort((a, b) => b.bytes - a.bytes)
    heap = {
      bytesPerConn: totalBytes / N,
      top: groups.slice(0, 40).map((g) => ({ key: g.key, count: g.count / N, bytes: g.bytes / N }))
    }
    log(formatHeapDiff({ groups, totalBytes }, N))
  }

  const top = results.at(-1)
  if (top !== undefined && top.connections === N && top.proxy.kbPerConnMarginal > maxKbPerConn) {
    failures.push(
      `proxy memory per connection at ${N}: ${fmt(top.proxy.kbPerConnMarginal)} KB marginal > budget ${maxKbPerConn} KB`
    )
  }
  if (top === undefined || top.connections !== N) failures.push(`the top step ${N} was not measured`)
  // The whole run's peak (warm-up, ramp and hold) against the pools' bound.
  failures.push(...pgFailures())
  const pgFinal =
    pgBackend === undefined
      ? undefined
      : {
          databases: pgBackend.databases,
          roles: pgBackend.users,
          auth: poolAuth,
          poolSize: poolOptions.poolSize,
          maxConnections: pgBackend.maxConnections,
          bound: pgBackend.bound,
          peak: pgBackend.peak(),
          atEnd: pgBackend.now()
        }
  if (pgFinal !== undefined) log(`load: ${pgLine(pgFinal.atEnd, pgFinal.peak)}`)

  // -------------------------------------------------------------------------------------------- stop, report
  const stopT0 = Date.now()
  for (const a of agents) a.send({ t: "stop" })
  for (const b of backends) b.child.stdin!.end()
  await sleep(500)
  await Promise.all(backends.map((b) => stopChild(b.child, 2_000)))
  await stopChild(proxy, 3_000)
  await pgBackend?.stop()
  const stopSeconds = (Date.now() - stopT0) / 1000

  const result = {
    date: startedAt.toISOString(),
    pass: failures.length === 0,
    failures,
    budget: {
      maxKbPerConn,
      checks:
        "marginal: (RSS of all proxy processes − their warm RSS at 0 connections, after the warm-up) ÷ connections, " +
        "at the top step"
    },
    options: {
      connections: N,
      mode,
      workers,
      agents: agentCount,
      remoteAgents,
      backends: backendCount,
      routes: routeCount,
      proxySources: proxySources.length,
      perProxySource,
      steps,
      perSource,
      perRoute,
      concurrency,
      holdSeconds: holdS,
      proxy: proxyEntry,
      proxyNodeOptions,
      workerNodeOptions: workerNodeOptions ?? null,
      native: nativeMode,
      warmup: warmupN,
      ...(pooled ? { pool: poolOptions } : {})
    },
    /** postgres-pooled: the real PostgreSQL's client backends for the pools against their bound. */
    pg: pgFinal,
    /** Which agents and backends ran: "c" (load/native/) or "node" (load/agent.ts, load/backend.ts). */
    helpers: { agents: agentKind, backends: pooled ? "postgresql" : backendKind },
    machine: {
      cores: os.availableParallelism(),
      memTotalBytes: os.totalmem(),
      kernel: os.release(),
      node: process.version,
      sysctl: {
        ip_local_port_range: sysctl("net.ipv4.ip_local_port_range"),
        somaxconn: sysctl("net.core.somaxconn"),
        tcp_max_syn_backlog: sysctl("net.ipv4.tcp_max_syn_backlog"),
        netdev_max_backlog: sysctl(backlogKey)
      }
    },
    /** proxy: warm (after the warm-up: what marginal and the budget start from); proxyCold: before any connection. */
    baseline: { proxy: base, proxyCold: baseCold, kernel: baseKernel, helpers: helpersCold },
    warmup,
    steps: results,
    hold,
    heap,
    stopSeconds
  }
  mkdirSync(outDir, { recursive: true })
  const stamp = startedAt
    .toISOString()
    .replaceAll(":", "-")
    .replace(/\.\d+Z$/, "Z")
  const file = join(outDir, `${stamp}-${mode}-${N}`)
  writeFileSync(`${file}.json`, `${JSON.stringify(result, null, 2)}\n`)
  writeFileSync(`${file}.svg`, memoryChart(result))
  log("")
  log(
    `load: proxy memory per connection at ${top?.connections ?? 0}: ${fmt(top?.proxy.kbPerConnTotal ?? 0)} KB total ` +
      `(all proxy RSS ÷ connections), ${fmt(top?.proxy.kbPerConnMarginal ?? 0)} KB marginal ` +
      `(RSS above the warm ${fmt(base.rss / MB, 1)} MB at 0 connections ÷ connections; the budget ${maxKbPerConn} KB ` +
      `checks this one), ${fmt(top?.proxy.kbPerConnMarginalCold ?? 0)} KB above the cold ${fmt(baseCold.rss / MB, 1)} MB, ` +
      `slope ${fmt(top?.proxy.kbPerConnSlope ?? 0)} KB`
  )
  log(
    `load: agents (${agentKind === "c" ? "C" : "Node"}) ${fmt(top?.agents.kbPerConn ?? 0)} KB RSS per connection ` +
      `(${fmt(top?.agents.kbPerConnMarginal ?? 0)} above their start)` +
      (pooled
        ? ""
        : `, backends (${backendKind === "c" ? "C" : "Node"}) ${fmt(top?.backends.kbPerConn ?? 0)} KB ` +
          `(${fmt(top?.backends.kbPerConnMarginal ?? 0)} above their start)`)
  )
  log(`load: results ${file}.json, chart ${file}.svg`)
  if (failures.length > 0) {
    keepTmp = true
    log(`load: FAIL\n  ${failures.join("\n  ")}`)
    log(`load: proxy log kept in ${proxyLog}:\n${tail(proxyLog)}`)
    return 1
  }
  log(`load: PASS (${N} connections held, none lost)`)
  return 0
}

main().then(
  (code) => {
    killAll()
    process.exit(code)
  },
  (e: Error) => {
    process.stderr.write(`load: ${e.stack ?? e.message}\n`)
    killAll()
    process.exit(1)
  }
)
