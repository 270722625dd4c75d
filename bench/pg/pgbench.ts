// pgbench side by side: the same PostgreSQL 15 reached directly, through polyproxy and through PgBouncer (session
// mode), select-only and TPC-B-like, at several client counts, in one run. Writes bench/results/pgbench.{md,json}.
//
//   node bench/pg/pgbench.ts [--listener tcp|postgres] [--duration 15] [--clients 1,10,50] [--warmup 2]
//                            [--scale 10] [--proxy dist|src]
//
// See bench/README.md for what is measured and how to read the table.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { parseArgs } from "node:util"
import pg from "pg"
import { freePort, makeTempDir, removeTempDir } from "../../spec/support/backends/local.ts"
import { type PostgresServer, startPostgres } from "../../spec/support/backends/postgres.ts"
import {
  defaultEntry,
  type Polyproxy,
  type ProxyEntry,
  repoRoot,
  staleDistWarning,
  startPolyproxy
} from "../support/polyproxy.ts"
import {
  busyShare,
  clockTicks,
  cpuSeconds,
  foreignCpuSeconds,
  installExitHooks,
  killEverything,
  machineCpu,
  machineInfo,
  runBounded,
  sleep,
  treeCpuSeconds,
  versionOf
} from "../support/process.ts"
import { type PgBouncer, startPgBouncer } from "./pgbouncer.ts"

const VARIANTS = ["direct", "polyproxy", "pgbouncer"] as const
type Variant = (typeof VARIANTS)[number]
const WORKLOADS = ["select-only", "tpcb-like"] as const
type Workload = (typeof WORKLOADS)[number]
type ListenerKind = "tcp" | "postgres"

const DATABASE = "appdb"

// ---------------------------------------------------------------------------------------------------------------
// Options

interface Options {
  readonly listener: ListenerKind
  readonly duration: number
  readonly clients: readonly number[]
  readonly warmup: number
  readonly scale: number
  readonly proxy: ProxyEntry
  readonly outDir: string
}

const usage = `usage: node bench/pg/pgbench.ts [--listener tcp|postgres] [--duration SECONDS] [--clients 1,10,50]
                                [--warmup SECONDS] [--scale N] [--proxy dist|src] [--out DIR]`

const die = (message: string): never => {
  process.stderr.write(`pgbench bench: ${message}\n${usage}\n`)
  process.exit(2)
}

const positiveInt = (name: string, value: string, min = 1): number => {
  const n = Number(value)
  return Number.isInteger(n) && n >= min ? n : die(`--${name} must be an integer >= ${min}, not ${value}`)
}

const parseOptions = (argv: readonly string[]): Options => {
  let values: Record<string, string | boolean | undefined>
  try {
    values = parseArgs({
      args: [...argv],
      options: {
        listener: { type: "string", default: "tcp" },
        duration: { type: "string", default: "15" },
        clients: { type: "string", default: "1,10,50" },
        warmup: { type: "string", default: "2" },
        scale: { type: "string", default: "10" },
        proxy: { type: "string", default: defaultEntry() },
        out: { type: "string", default: join(repoRoot, "bench", "results") },
        help: { type: "boolean", short: "h" }
      },
      strict: true,
      allowPositionals: false
    }).values
  } catch (error) {
    return die((error as Error).message)
  }
  if (values.help) {
    process.stdout.write(`${usage}\n`)
    process.exit(0)
  }
  const listener = String(values.listener)
  if (listener !== "tcp" && listener !== "postgres") die(`--listener must be tcp or postgres, not ${listener}`)
  const proxy = String(values.proxy)
  if (proxy !== "dist" && proxy !== "src") die(`--proxy must be dist or src, not ${proxy}`)
  const clients = String(values.clients)
    .split(",")
    .filter((s) => s.trim() !== "")
    .map((s) => positiveInt("clients", s.trim()))
  if (clients.length === 0) die("--clients needs at least one count")
  if (Math.max(...clients) > 90) die("--clients above 90 would exceed PostgreSQL's default max_connections (100)")
  return {
    listener: listener as ListenerKind,
    duration: positiveInt("duration", String(values.duration)),
    clients,
    warmup: positiveInt("warmup", String(values.warmup), 0),
    scale: positiveInt("scale", String(values.scale)),
    proxy: proxy as ProxyEntry,
    outDir: String(values.out)
  }
}

// ---------------------------------------------------------------------------------------------------------------
// pgbench

/** Debian keeps the versioned binaries off PATH (/usr/bin/pgbench is a wrapper script): call the 15 one directly. */
const pgbenchBin = (): string => {
  const candidates = [process.env.PG_BINDIR, "/usr/lib/postgresql/15/bin"].filter((d) => d !== undefined)
  for (const dir of candidates) if (existsSync(join(dir, "pgbench"))) return join(dir, "pgbench")
  return "pgbench"
}

interface Target {
  readonly host: string
  readonly port: number
}

interface PgbenchOutput {
  readonly tps: number
  readonly latencyMs: number
  readonly transactions: number
  readonly failed: number
  readonly connectionMs: number | undefined
  readonly queryMode: string | undefined
}

const num = (text: string, re: RegExp): number | undefined => {
  const m = re.exec(text)
  return m?.[1] === undefined ? undefined : Number(m[1])
}

export const parsePgbench = (stdout: string): PgbenchOutput | undefined => {
  const tps = num(stdout, /^tps = ([\d.]+) \(without initial connection time\)/m)
  const latencyMs = num(stdout, /^latency average = ([\d.]+) ms/m)
  const transactions = num(stdout, /^number of transactions actually processed: (\d+)/m)
  if (tps === undefined || latencyMs === undefined || transactions === undefined) return undefined
  return {
    tps,
    latencyMs,
    transactions,
    failed: num(stdout, /^number of failed transactions: (\d+)/m) ?? 0,
    connectionMs: num(stdout, /^initial connection time = ([\d.]+) ms/m),
    queryMode: /^query mode: (\S+)/m.exec(stdout)?.[1]
  }
}

const makePgbench = (server: PostgresServer, home: string) => {
  const bin = pgbenchBin()
  // A clean environment: nothing from the caller's PG* variables, ~/.pgpass or service files leaks in, and every
  // variant gets the same explicit sslmode (libpq's default "prefer" would silently use TLS where it is offered).
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: home,
    LANG: "C",
    LC_ALL: "C",
    PGPASSWORD: server.userPassword,
    PGSSLMODE: "disable",
    PGCONNECT_TIMEOUT: "10",
    PGAPPNAME: "polyproxy-bench"
  }
  const common = (t: Target): string[] => ["-h", t.host, "-p", String(t.port), "-U", server.user]
  return {
    bin,
    init: async (scale: number): Promise<void> => {
      const args = ["-i", "-q", "-s", String(scale), ...common(server), DATABASE]
      const r = await runBounded(bin, args, { env, timeoutMs: 300_000 })
      if (r.code !== 0) {
        throw new Error(
          `pgbench ${args.join(" ")} failed (code ${r.code}${r.timedOut ? ", timed out" : ""}):\n${r.stderr}`
        )
      }
    },
    args: (t: Target, workload: Workload, clients: number, seconds: number): string[] => [
      "-n", // the tables were vacuumed by -i; vacuuming again would not be the same work for every variant
      "-T",
      String(seconds),
      "-c",
      String(clients),
      "-j",
      String(Math.min(clients, 2)),
      "-M",
      "simple", // pgbench's default protocol, stated so the command line says it
      ...(workload === "select-only" ? ["-S"] : []),
      ...common(t),
      DATABASE
    ],
    run: async (args: string[], seconds: number): Promise<PgbenchOutput> => {
      const r = await runBounded(bin, args, { env, timeoutMs: (seconds + 60) * 1000 })
      const parsed = r.code === 0 ? parsePgbench(r.stdout) : undefined
      if (parsed === undefined) {
        const why = r.timedOut ? "timed out" : `exit code ${r.code}${r.signal ? `, signal ${r.signal}` : ""}`
        const tail = `${r.stdout}\n${r.stderr}`.trim().split("\n").slice(-8).join("\n")
        throw new Error(`pgbench ${args.join(" ")}: ${why}\n${tail}`)
      }
      return parsed
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// One measurement

interface Run {
  readonly workload: Workload
  readonly clients: number
  readonly variant: Variant
  /** 0-based position of this variant within its (workload, clients) cell: the order was rotated per cell. */
  readonly position: number
  readonly command: string
  readonly tps?: number
  /** pgbench's "latency average" (printed with 3 decimals). */
  readonly latencyMs?: number
  /**
   * clients / TPS: pgbench's own way to get the average (no -L/-R/-P), unrounded and without connection time.
   * The table's added latency uses this one.
   */
  readonly latencyMsFromTps?: number
  readonly transactions?: number
  readonly failed?: number
  readonly connectionMs?: number | undefined
  readonly wallSeconds?: number
  /** CPU seconds (user + system) the polyproxy process used during the measured run. */
  readonly proxyCpuSeconds?: number | undefined
  /** CPU seconds the PgBouncer process used during the measured run. */
  readonly pgbouncerCpuSeconds?: number | undefined
  /** CPU seconds per 1000 transactions of the variant's middleman (polyproxy or PgBouncer); none for direct. */
  readonly middlemanCpuPer1kTx?: number | undefined
  /** Share of all cores' time that was busy during the run (load generator + middleman + PostgreSQL). */
  readonly machineBusy?: number
  /** CPU seconds of processes outside the bench's tree (the neighbours on a shared machine), run + settle. */
  readonly foreignCpuSeconds?: number
  /** The same as a share of all cores' time over that window. */
  readonly foreignShare?: number
  readonly error?: string
}

/** Client backends of the bench database still alive (a finished pgbench's backends exit asynchronously). */
const waitForQuietServer = async (monitor: pg.Client, maxBackends: number, timeoutMs = 15_000): Promise<boolean> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const r = await monitor.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'",
      [DATABASE]
    )
    if ((r.rows[0]?.n ?? 0) <= maxBackends) return true
    if (Date.now() > deadline) return false
    await sleep(100)
  }
}

const delta = (before: number | undefined, after: number | undefined): number | undefined =>
  before === undefined || after === undefined ? undefined : after - before

// ---------------------------------------------------------------------------------------------------------------
// Results

const fmt = (n: number | undefined, digits: number): string => (n === undefined ? "–" : n.toFixed(digits))
const pct = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined || b === undefined || b === 0 ? undefined : (100 * a) / b
const diff = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined || b === undefined ? undefined : a - b
const signed = (n: number | undefined, digits: number): string =>
  n === undefined ? "–" : `${n >= 0 ? "+" : ""}${n.toFixed(digits)}`

interface Meta {
  readonly machine: ReturnType<typeof machineInfo>
  readonly postgres: string
  readonly pgbench: string
  readonly pgbouncer: string
  readonly pgbouncerSettings: Readonly<Record<string, string | number>>
  readonly listener: ListenerKind
  readonly proxyEntry: string
  readonly durationSeconds: number
  readonly warmupSeconds: number
  readonly scale: number
  readonly clients: readonly number[]
  readonly queryMode: string
  readonly sslmode: "disable"
  readonly totalSeconds: number
}

/** A run during which other processes took more than this share of the machine is flagged as noisy. */
const NOISY_SHARE = 0.05

const renderMarkdown = (meta: Meta, runs: readonly Run[]): string => {
  const find = (w: Workload, c: number, v: Variant) =>
    runs.find((r) => r.workload === w && r.clients === c && r.variant === v)
  const lines: string[] = [
    "# pgbench: direct vs polyproxy vs PgBouncer (session mode)",
    "",
    `Generated by \`node bench/pg/pgbench.ts --listener ${meta.listener} --duration ${meta.durationSeconds}` +
      ` --clients ${meta.clients.join(",")} --warmup ${meta.warmupSeconds} --scale ${meta.scale}` +
      ` --proxy ${meta.proxyEntry.includes("dist") ? "dist" : "src"}\` (\`make bench\` runs it with \`--proxy dist\`` +
      " after `make build`). Overwritten on every run; see bench/README.md.",
    "",
    "| workload | clients | TPS direct | TPS polyproxy | TPS pgbouncer | polyproxy ÷ direct | pgbouncer ÷ direct |" +
      " added latency polyproxy (ms) | added latency pgbouncer (ms) | polyproxy CPU s / 1k tx | pgbouncer CPU s / 1k tx |",
    "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
  ]
  for (const w of WORKLOADS) {
    for (const c of meta.clients) {
      const d = find(w, c, "direct")
      const p = find(w, c, "polyproxy")
      const b = find(w, c, "pgbouncer")
      const ratioP = pct(p?.tps, d?.tps)
      const ratioB = pct(b?.tps, d?.tps)
      lines.push(
        `| ${w} | ${c} | ${fmt(d?.tps, 0)} | ${fmt(p?.tps, 0)} | ${fmt(b?.tps, 0)} | ` +
          `${ratioP === undefined ? "–" : `${ratioP.toFixed(1)} %`} | ${ratioB === undefined ? "–" : `${ratioB.toFixed(1)} %`} | ` +
          `${signed(diff(p?.latencyMsFromTps, d?.latencyMsFromTps), 3)} | ` +
          `${signed(diff(b?.latencyMsFromTps, d?.latencyMsFromTps), 3)} | ` +
          `${fmt(p?.middlemanCpuPer1kTx, 3)} | ${fmt(b?.middlemanCpuPer1kTx, 3)} |`
      )
    }
  }
  lines.push("")
  // The issue's target: at 10 clients, polyproxy >= 90 % of direct TPS and ahead of PgBouncer session mode.
  const target = meta.clients.includes(10) ? 10 : undefined
  if (target !== undefined) {
    lines.push(`Target at ${target} clients: polyproxy ≥ 90 % of direct TPS and ahead of PgBouncer (session mode).`, "")
    for (const w of WORKLOADS) {
      const d = find(w, target, "direct")
      const p = find(w, target, "polyproxy")
      const b = find(w, target, "pgbouncer")
      const ratio = pct(p?.tps, d?.tps)
      const ok90 = ratio !== undefined && ratio >= 90
      const ahead = p?.tps !== undefined && b?.tps !== undefined && p.tps > b.tps
      lines.push(
        `- ${w}: ${ratio === undefined ? "–" : `${ratio.toFixed(1)} %`} of direct (${ok90 ? "meets" : "misses"} 90 %), ` +
          `${ahead ? "ahead of" : "behind"} PgBouncer (${fmt(p?.tps, 0)} vs ${fmt(b?.tps, 0)} TPS)`
      )
    }
    lines.push("")
  }
  const noisy = runs.filter((r) => (r.foreignShare ?? 0) > NOISY_SHARE)
  const maxForeign = Math.max(0, ...runs.map((r) => r.foreignShare ?? 0))
  lines.push(
    `Other processes on the machine (not the bench, PostgreSQL, polyproxy or PgBouncer) used at most ` +
      `${(maxForeign * 100).toFixed(1)} % of its CPU during a run` +
      (noisy.length === 0
        ? "."
        : `; above ${NOISY_SHARE * 100} % (treat as noisy): ` +
          noisy
            .map((r) => `${r.workload} c=${r.clients} ${r.variant} ${((r.foreignShare ?? 0) * 100).toFixed(0)} %`)
            .join(", ") +
          "."),
    ""
  )
  const failed = runs.filter((r) => r.error !== undefined)
  if (failed.length > 0) {
    lines.push("## Failed runs", "")
    for (const r of failed) lines.push(`- ${r.workload} c=${r.clients} ${r.variant}: ${r.error?.split("\n")[0]}`)
    lines.push("")
  }
  const m = meta.machine
  lines.push(
    "## Setup",
    "",
    `- machine: ${m.nproc} cores (nproc), ${m.cpuModel}, Linux ${m.kernel}`,
    `- date: ${m.date}; whole run ${Math.round(meta.totalSeconds)} s`,
    `- node ${m.node}; ${meta.postgres}; ${meta.pgbench}; ${meta.pgbouncer}`,
    `- each run: \`pgbench -n -T ${meta.durationSeconds} -c N -j min(N,2) -M ${meta.queryMode} [-S]\` after a ` +
      `${meta.warmupSeconds} s warm-up of the same variant; scale ${meta.scale}; PGSSLMODE=${meta.sslmode} for every ` +
      "variant; SCRAM-SHA-256 logins; everything on 127.0.0.1",
    `- polyproxy: \`${meta.listener}\` listener, ${meta.proxyEntry}, one process, log level warn`,
    `- PgBouncer: ${Object.entries(meta.pgbouncerSettings)
      .map(([k, v]) => `${k}=${v}`)
      .join(", ")}`,
    "- order: the three variants are rotated from one (workload, clients) cell to the next, so each goes first, " +
      "second and third equally often",
    "- TPS excludes connection time (pgbench's own figure); added latency = variant's average latency − direct's " +
      "(clients ÷ TPS: pgbench's own latency average, unrounded and without connection time); " +
      "CPU = utime+stime from /proc/PID/stat over the measured run",
    ""
  )
  return lines.join("\n")
}

const writeAtomically = (file: string, content: string): void => {
  // bench/results/*.tmp is git-ignored.
  writeFileSync(`${file}.tmp`, content)
  renameSync(`${file}.tmp`, file)
}

/**
 * bench/results is inside `biome check .` (make lint): give the committed results the project's formatting, so a
 * fresh `make bench` never makes the lint fail. Skipped for --out outside the repository.
 */
const formatResults = async (files: readonly string[], log: (line: string) => void): Promise<void> => {
  const biome = join(repoRoot, "node_modules", ".bin", "biome")
  if (!existsSync(biome) || files.some((f) => !resolve(f).startsWith(repoRoot))) return
  const r = await runBounded(biome, ["format", "--write", ...files], { env: process.env, timeoutMs: 60_000 })
  if (r.code !== 0) log(`warning: biome format of the results failed:\n${r.stdout}${r.stderr}`)
}

// ---------------------------------------------------------------------------------------------------------------
// Main

const main = async (): Promise<number> => {
  const opts = parseOptions(process.argv.slice(2))
  installExitHooks()
  // The local provider: a PostgreSQL child on 127.0.0.1 next to PgBouncer and pgbench (no container round trip).
  process.env.TEST_BACKENDS = "local"
  const started = Date.now()
  const machine = machineInfo()
  const cells = WORKLOADS.flatMap((workload) => opts.clients.map((clients) => ({ workload, clients })))
  // Measured here: about 1 s per run of settling, checkpoint and connection setup, and a few seconds of setup.
  const plannedSeconds = cells.length * VARIANTS.length * (opts.warmup + opts.duration + 1) + 15
  // A hard bound on the whole bench: whatever hangs, every child dies and the process exits.
  const hardLimitSeconds = Math.round(plannedSeconds * 1.5 + 300)
  const hardLimit = setTimeout(() => {
    process.stderr.write(`pgbench bench: still running after ${hardLimitSeconds} s, giving up\n`)
    killEverything()
    process.exit(1)
  }, hardLimitSeconds * 1000)
  hardLimit.unref()

  const log = (line: string): void => {
    process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}\n`)
  }
  log(
    `pgbench bench: listener ${opts.listener}, ${cells.length * VARIANTS.length} runs of ${opts.duration} s ` +
      `(+${opts.warmup} s warm-up each), about ${Math.round(plannedSeconds / 60)} min`
  )
  if (opts.proxy === "dist") {
    const warning = staleDistWarning()
    if (warning) log(`warning: ${warning}`)
  }

  const home = makeTempDir("bench-pg")
  let server: PostgresServer | undefined
  let bouncer: PgBouncer | undefined
  let proxy: Polyproxy | undefined
  let monitor: pg.Client | undefined
  const runs: Run[] = []
  try {
    server = await startPostgres()
    const pgServer = server
    log(`PostgreSQL on ${server.host}:${server.port}`)
    const bench = makePgbench(server, home)
    log(`pgbench -i -s ${opts.scale} ...`)
    await bench.init(opts.scale)

    monitor = new pg.Client({
      host: server.host,
      port: server.port,
      user: server.superuser,
      password: server.password,
      database: "postgres",
      ssl: false
    })
    monitor.on("error", () => {})
    await monitor.connect()
    const postgresVersion = `PostgreSQL ${(await monitor.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]?.v}`

    const maxClients = Math.max(...opts.clients)
    bouncer = await startPgBouncer({
      backendHost: server.host,
      backendPort: server.port,
      database: DATABASE,
      user: server.user,
      password: server.userPassword,
      poolSize: Math.max(60, maxClients + 10),
      maxClientConn: Math.max(200, maxClients * 2)
    })
    log(`PgBouncer (${bouncer.version}) on ${bouncer.host}:${bouncer.port}, pid ${bouncer.pid}`)

    // polyproxy on a free port; a port taken between freePort() and the bind makes it exit, then try another.
    let proxyPort = 0
    for (let attempt = 1; proxy === undefined; attempt++) {
      proxyPort = await freePort()
      const listeners =
        opts.listener === "tcp"
          ? { tcp: { host: "127.0.0.1", port: proxyPort, route: DATABASE } }
          : { postgres: { host: "127.0.0.1", port: proxyPort } }
      const port = proxyPort
      try {
        proxy = await startPolyproxy({
          entry: opts.proxy,
          dir: home,
          config: {
            workers: 1,
            admin: false,
            listeners,
            routes: { [DATABASE]: `${server.host}:${server.port}` },
            ssrf: { allow: ["127.0.0.0/8"] },
            timeouts: { idle: 0 },
            log: { level: "warn" }
          },
          // Ready = a real login and query through the proxy.
          ready: async () => {
            const client = new pg.Client({
              host: "127.0.0.1",
              port,
              user: pgServer.user,
              password: pgServer.userPassword,
              database: DATABASE,
              ssl: false,
              connectionTimeoutMillis: 2_000
            })
            client.on("error", () => {})
            try {
              await client.connect()
              await client.query("SELECT 1")
            } finally {
              await client.end().catch(() => {})
            }
          }
        })
      } catch (error) {
        if (attempt < 3 && /EADDRINUSE/.test((error as Error).message)) continue
        throw error
      }
    }
    log(`polyproxy (${opts.proxy}, ${opts.listener} listener) on 127.0.0.1:${proxyPort}, pid ${proxy.pid}`)

    // What pgbench does before each run unless -n: vacuum the small hot tables and empty the history, so every
    // TPC-B-like run starts from the same state whatever ran before it. Done here, outside the timed run, because
    // -n keeps it out of pgbench (it would otherwise run through the variant under test).
    const resetTables = async (workload: Workload): Promise<void> => {
      if (workload !== "tpcb-like") return
      const client = new pg.Client({
        host: pgServer.host,
        port: pgServer.port,
        user: pgServer.user,
        password: pgServer.userPassword,
        database: DATABASE,
        ssl: false
      })
      client.on("error", () => {})
      await client.connect()
      try {
        for (const sql of ["VACUUM pgbench_branches", "VACUUM pgbench_tellers", "TRUNCATE pgbench_history"]) {
          await client.query(sql)
        }
      } finally {
        await client.end().catch(() => {})
      }
    }

    const targets: Record<Variant, Target> = {
      direct: { host: server.host, port: server.port },
      polyproxy: { host: "127.0.0.1", port: proxyPort },
      pgbouncer: { host: bouncer.host, port: bouncer.port }
    }

    const total = cells.length * VARIANTS.length
    let index = 0
    for (const [cellIndex, cell] of cells.entries()) {
      // Rotate the order per cell: over every three cells each variant runs first, second and third once.
      const order = VARIANTS.map((_, i) => VARIANTS[(i + cellIndex) % VARIANTS.length]!)
      for (const [position, variant] of order.entries()) {
        index++
        const target = targets[variant]
        const args = bench.args(target, cell.workload, cell.clients, opts.duration)
        const command = `pgbench ${args.join(" ")}`
        const label = `[${index}/${total}] ${cell.workload} c=${cell.clients} ${variant}`
        try {
          // Start from a quiet server: the previous run's backends gone, dirty pages written out.
          await resetTables(cell.workload)
          if (!(await waitForQuietServer(monitor, 0))) log(`${label}: warning: backends of the previous run linger`)
          await monitor.query("CHECKPOINT")
          if (opts.warmup > 0) {
            await bench.run(bench.args(target, cell.workload, cell.clients, opts.warmup), opts.warmup)
            // PgBouncer keeps (and will reuse) its server connections: that is session pooling, not leftovers.
            if (variant !== "pgbouncer") await waitForQuietServer(monitor, 0)
          }
          const cpu0 = {
            proxy: cpuSeconds(proxy.pid),
            bouncer: cpuSeconds(bouncer.pid),
            machine: machineCpu(),
            tree: treeCpuSeconds()
          }
          const t0 = process.hrtime.bigint()
          const out = await bench.run(args, opts.duration)
          const wallSeconds = Number(process.hrtime.bigint() - t0) / 1e9
          const proxyCpu = delta(cpu0.proxy, cpuSeconds(proxy.pid))
          const bouncerCpu = delta(cpu0.bouncer, cpuSeconds(bouncer.pid))
          const machineAfterRun = machineCpu()
          const busy = busyShare(cpu0.machine, machineAfterRun)
          // Other processes' CPU: read once this run's backends are gone (their time is then in the postmaster's).
          await waitForQuietServer(monitor, 0, 5_000)
          await sleep(50)
          const machineSettled = machineCpu()
          const foreign = foreignCpuSeconds(cpu0.machine, machineSettled, cpu0.tree, treeCpuSeconds())
          const foreignShare = foreign / ((machineSettled.total - cpu0.machine.total) / clockTicks())
          const middleman = variant === "polyproxy" ? proxyCpu : variant === "pgbouncer" ? bouncerCpu : undefined
          const run: Run = {
            ...cell,
            variant,
            position,
            command,
            tps: out.tps,
            latencyMs: out.latencyMs,
            latencyMsFromTps: out.tps > 0 ? (1000 * cell.clients) / out.tps : undefined,
            transactions: out.transactions,
            failed: out.failed,
            connectionMs: out.connectionMs,
            wallSeconds,
            proxyCpuSeconds: proxyCpu,
            pgbouncerCpuSeconds: bouncerCpu,
            middlemanCpuPer1kTx:
              middleman === undefined || out.transactions === 0 ? undefined : (middleman * 1000) / out.transactions,
            machineBusy: busy,
            foreignCpuSeconds: foreign,
            foreignShare
          }
          runs.push(run)
          log(
            `${label}: ${out.tps.toFixed(0)} TPS, ${out.latencyMs.toFixed(3)} ms avg` +
              (middleman === undefined ? "" : `, ${variant} ${middleman.toFixed(2)} CPU s`) +
              `, machine ${(busy * 100).toFixed(0)} % busy (others ${(foreignShare * 100).toFixed(0)} %)` +
              (out.failed > 0 ? `, ${out.failed} failed tx` : "")
          )
        } catch (error) {
          const message = (error as Error).message
          runs.push({ ...cell, variant, position, command, error: message })
          log(`${label}: FAILED: ${message}`)
          if (proxy.child.exitCode !== null || proxy.child.signalCode !== null) {
            throw new Error(`polyproxy died (code ${proxy.child.exitCode}); log tail:\n${proxy.logTail()}`)
          }
        }
      }
    }

    const meta: Meta = {
      machine,
      postgres: postgresVersion,
      pgbench: versionOf(bench.bin),
      pgbouncer: bouncer.version.split(",")[0] ?? bouncer.version,
      pgbouncerSettings: bouncer.settings,
      listener: opts.listener,
      proxyEntry: opts.proxy === "dist" ? "node dist/cli.js" : "node src/cli.ts",
      durationSeconds: opts.duration,
      warmupSeconds: opts.warmup,
      scale: opts.scale,
      clients: opts.clients,
      queryMode: "simple",
      sslmode: "disable",
      totalSeconds: (Date.now() - started) / 1000
    }
    mkdirSync(opts.outDir, { recursive: true })
    const mdFile = join(opts.outDir, "pgbench.md")
    const jsonFile = join(opts.outDir, "pgbench.json")
    writeAtomically(mdFile, renderMarkdown(meta, runs))
    writeAtomically(jsonFile, `${JSON.stringify({ meta, runs }, null, 2)}\n`)
    await formatResults([mdFile, jsonFile], log)
    process.stdout.write(`${readFileSync(mdFile, "utf8")}\n`)
    log(`wrote ${join(opts.outDir, "pgbench.md")} and pgbench.json`)
    return runs.some((r) => r.error !== undefined) ? 1 : 0
  } finally {
    await monitor?.end().catch(() => {})
    await proxy?.stop().catch(() => {})
    await bouncer?.stop().catch(() => {})
    await server?.stop().catch(() => {})
    removeTempDir(home)
    killEverything()
    clearTimeout(hardLimit)
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`pgbench bench failed: ${error instanceof Error ? error.message : String(error)}\n`)
    killEverything()
    process.exit(1)
  }
)
