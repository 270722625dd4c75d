// The pg scenario of bench/run.ts: pgbench (C) against one PostgreSQL 15 reached directly, through polyproxy's
// `postgres` listener (routing by the startup message's database), through its generic `tcp` listener, through
// HAProxy `mode tcp` (1 thread) and through PgBouncer (session mode). Select-only and TPC-B-like at several client
// counts, variants interleaved round by round. Then the transaction-pooling workloads (bench/pg/pooled.ts): polyproxy
// with a transaction-mode route against PgBouncer in transaction mode, the same pool size, beside direct at that
// many clients (pooled.ts `directClients`).
import { join } from "node:path"
import pg from "pg"
import { type PostgresServer, startPostgres } from "../../spec/support/backends/postgres.ts"
import { type Baseline, startHaproxy } from "../support/baselines.ts"
import { NODE_RELAY_WHAT, type ReadyChild, startNodeRelay } from "../support/children.ts"
import {
  compareToHaproxy,
  cpuFields,
  interleave,
  type Measurement,
  type NoisePolicy,
  type ScenarioResult,
  sampleCpu,
  type Workload,
  windowCpu
} from "../support/interleave.ts"
import { type PinLayout, parentOf, pinLayout } from "../support/pin.ts"
import type { Polyproxy, ProxyEntry } from "../support/polyproxy.ts"
import { machineInfo, reapedChildrenCpu, versionOf } from "../support/process.ts"
import { startPolyproxyVariants } from "../support/proxies.ts"
import {
  type Compared,
  comparedWith,
  directVariant,
  processVariant,
  startedText,
  type Variant as VariantOf,
  variantInfos
} from "../support/variant.ts"
import { DATABASE, makePgbench, PG_WORKLOADS, type PgWorkload, pgWorkloadOf, waitForQuietServer } from "./pgbench.ts"
import { type PgBouncer, startPgBouncer } from "./pgbouncer.ts"
import {
  checkPoolBound,
  directClients,
  isPooledVariant,
  PG_POOLED_VARIANTS,
  POOLED_WORKLOADS,
  pooledWorkloadOf,
  runsPinned,
  serverBackendsNotes,
  startPooledVariant,
  whilePinned,
  whileSampling
} from "./pooled.ts"

export const PG_VARIANTS = [
  "direct",
  "polyproxy",
  "polyproxy-tcp",
  "node-relay",
  "haproxy",
  "pgbouncer",
  ...PG_POOLED_VARIANTS
] as const
export type PgVariantName = (typeof PG_VARIANTS)[number]

export interface PgOptions {
  readonly entry: ProxyEntry
  /** `--compare`: every polyproxy variant also from that revision (bench/support/compare.ts). */
  readonly compare?: ProxyEntry | undefined
  readonly dir: string
  readonly rounds: number
  readonly duration: number
  readonly warmup: number
  readonly clients: readonly number[]
  readonly scale: number
  /** Server connections of the transaction-pooling variants (polyproxy's `pool.size`, PgBouncer's default_pool_size). */
  readonly poolSize: number
  readonly variants: readonly PgVariantName[]
  readonly cpuProfDir?: string | undefined
  readonly noise: NoisePolicy
  readonly log: (line: string) => void
}

interface PgRun {
  readonly workload: Workload
  readonly kind: PgWorkload
  readonly clients: number
  /** A transaction-pooling workload: run by direct and the pooled variants only (the others by everyone else). */
  readonly pooled: boolean
  /** The pooler on a core of its own (pooled.ts `POOLED_WORKLOADS`). */
  readonly pinned?: PinLayout | undefined
}

/**
 * The workloads a run asks for: the usual ones at each of `clients` unless only pooled variants (and direct) were
 * asked for, and the pooled ones when a pooled variant was.
 */
const pgRuns = (o: Pick<PgOptions, "clients" | "variants" | "poolSize">, cores: number): PgRun[] => {
  const pooled = o.variants.some(isPooledVariant)
  // Pinned workloads need two cores and a pooler that fits on one.
  const layout = o.variants.some((n) => isPooledVariant(n) && runsPinned(n)) ? pinLayout(cores) : undefined
  const usual = !pooled || o.variants.some((n) => n !== "direct" && !isPooledVariant(n))
  return [
    ...(usual
      ? PG_WORKLOADS.flatMap((kind) =>
          o.clients.map((clients) => ({ workload: pgWorkloadOf(kind, clients), kind, clients, pooled: false }))
        )
      : []),
    ...(pooled
      ? POOLED_WORKLOADS.filter((w) => !w.pinned || layout !== undefined).map(({ kind, clients, pinned }) => ({
          workload: pooledWorkloadOf(kind, clients, o.poolSize, pinned),
          kind,
          clients,
          pooled: true,
          pinned: pinned ? layout : undefined
        }))
      : [])
  ]
}

/** The variants (or their names) that run `run`'s workload, each `--compare` twin with its own. */
const runsOf = <V extends string | { readonly name: string }>(run: PgRun, variants: readonly V[]): V[] =>
  variants.filter((v) => {
    const name = typeof v === "string" ? v : v.name
    return (name === "direct" || isPooledVariant(name) === run.pooled) && (run.pinned === undefined || runsPinned(name))
  })

export const plannedPgSeconds = (
  o: Pick<PgOptions, "rounds" | "duration" | "warmup" | "clients" | "variants" | "poolSize">,
  cores = machineInfo().nproc
) =>
  pgRuns(o, cores).reduce((n, run) => n + o.rounds * runsOf(run, o.variants).length * (o.duration + o.warmup + 1.5), 30)

/** PgBouncer (either mode) and polyproxy's pools keep their server connections between runs: that is pooling. */
const keepsServerConnections = (variant: string): boolean =>
  isPooledVariant(variant) || (comparedWith(variant) ?? variant) === "pgbouncer"

type Variant = VariantOf<PgVariantName | Compared<PgVariantName>>

export const runPgScenario = async (opts: PgOptions): Promise<ScenarioResult> => {
  const log = opts.log
  process.env.TEST_BACKENDS = "local"
  const server: PostgresServer = await startPostgres()
  log(`pg: PostgreSQL on ${server.host}:${server.port}`)
  const proxies: Polyproxy[] = []
  const baselines: Baseline[] = []
  const relays: ReadyChild<number>[] = []
  const bouncers: PgBouncer[] = []
  let monitor: pg.Client | undefined
  const variants: Variant[] = []
  const notes: string[] = []
  try {
    const bench = makePgbench(server, opts.dir)
    log(`pg: pgbench -i -s ${opts.scale} ...`)
    await bench.init(opts.scale)
    const client = (port: number, database: string, admin: boolean) => {
      const c = new pg.Client({
        host: "127.0.0.1",
        port,
        user: admin ? server.superuser : server.user,
        password: admin ? server.password : server.userPassword,
        database,
        ssl: false,
        connectionTimeoutMillis: 2_000
      })
      c.on("error", () => {})
      return c
    }
    monitor = client(server.port, "postgres", true)
    await monitor.connect()
    const quiet = monitor
    // The postmaster: the parent of any backend (pinned workloads pin it with everything it forked).
    const postmaster = parentOf((await monitor.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid)
    const version = `PostgreSQL ${(await monitor.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]?.v}`
    // Ready = a real login and query through the proxy.
    const login = async (port: number) => {
      const c = client(port, DATABASE, false)
      try {
        await c.connect()
        await c.query("SELECT 1")
      } finally {
        await c.end().catch(() => {})
      }
    }
    for (const name of opts.variants) {
      try {
        if (name === "direct") {
          variants.push(directVariant(name, server.port, `${version}, no proxy`))
        } else if (name === "polyproxy" || name === "polyproxy-tcp") {
          const tcp = name === "polyproxy-tcp"
          const started = await startPolyproxyVariants({
            name,
            entry: opts.entry,
            compare: opts.compare,
            dir: opts.dir,
            cpuProfDir: opts.cpuProfDir,
            listener: (port) => ({
              [tcp ? "tcp" : "postgres"]: { host: "127.0.0.1", port, ...(tcp ? { route: DATABASE } : {}) }
            }),

            routes: { [DATABASE]: `127.0.0.1:${server.port}` },
            ready: login,
            label: tcp ? "polyproxy tcp" : "polyproxy postgres",
            what: tcp
              ? `generic \`tcp\` listener, \`route: ${DATABASE}\``
              : "`postgres` listener routing by the startup message's database"
          })
          proxies.push(...started.proxies)
          variants.push(...started.variants)
        } else if (name === "node-relay") {
          const relay = await startNodeRelay(server.port)
          relays.push(relay)
          await login(relay.info)
          variants.push(processVariant(name, relay.info, relay, "minimal Node relay", NODE_RELAY_WHAT))
        } else if (name === "haproxy") {
          const b = await startHaproxy({ dir: join(opts.dir, "haproxy-pg"), backendPort: server.port, ready: login })
          baselines.push(b)
          variants.push(
            processVariant(name, b.port, b, "HAProxy 1 thread", `${b.version}, \`mode tcp\`, \`nbthread 1\``)
          )
        } else if (name === "pgbouncer") {
          const max = Math.max(...opts.clients)
          const b = await startPgBouncer({
            backendHost: server.host,
            backendPort: server.port,
            database: DATABASE,
            user: server.user,
            password: server.userPassword,
            poolSize: Math.max(60, max + 10),
            maxClientConn: Math.max(200, max * 2)
          })
          bouncers.push(b)
          variants.push(
            processVariant(
              name,
              b.port,
              { pid: b.pid, alive: () => true },
              "PgBouncer",
              `${b.version.split(",")[0]}, session mode, ${Object.entries(b.settings)
                .map(([k, v]) => `${k}=${v}`)
                .join(", ")}`
            )
          )
        } else {
          const started = await startPooledVariant({
            name,
            entry: opts.entry,
            compare: opts.compare,
            dir: opts.dir,
            cpuProfDir: opts.cpuProfDir,
            server,
            poolSize: opts.poolSize,
            ready: login
          })
          proxies.push(...started.proxies)
          if (started.bouncer) bouncers.push(started.bouncer)
          variants.push(...started.variants)
        }
        log(`pg: ${startedText(variants, name)}`)
      } catch (error) {
        const message = (error as Error).message
        log(`pg: ${name} could not be started: ${message}`)
        notes.push(`${name} could not be started: ${message.split("\n")[0]}`)
      }
    }

    // What pgbench does before each run unless -n, done outside the timed run: vacuum the small hot tables and
    // empty the history, so every TPC-B-like run starts from the same state whatever ran before it.
    const resetTables = async (): Promise<void> => {
      const c = client(server.port, DATABASE, false)
      await c.connect()
      try {
        for (const sql of ["VACUUM pgbench_branches", "VACUUM pgbench_tellers", "TRUNCATE pgbench_history"]) {
          await c.query(sql)
        }
      } finally {
        await c.end().catch(() => {})
      }
    }

    const workloads: Workload[] = []
    const measurements: Measurement[] = []
    const planned = pgRuns(opts, machineInfo().nproc)
    for (const run of planned) {
      const { workload, kind, clients, pooled, pinned } = run
      workloads.push(workload)
      // One measured run of `variant`; with `cpus`, pgbench pinned to them (the pinned workloads).
      const measure = async (
        variant: Variant,
        round: number,
        position: number,
        cpus?: string
      ): Promise<Omit<Measurement, "workload">> => {
        const target = { host: "127.0.0.1", port: variant.port }
        const n = pooled ? directClients(variant.name, clients, opts.poolSize) : clients
        // Start from a quiet server: the previous run's backends gone, dirty pages written out.
        if (kind === "tpcb-like") await resetTables()
        if (!(await waitForQuietServer(quiet, 0))) log(`pg ${workload.id}: backends of the previous run linger`)
        await quiet.query("CHECKPOINT")
        if (opts.warmup > 0) {
          await bench.run(bench.args(target, kind, n, opts.warmup), opts.warmup, cpus)
          // Poolers keep (and will reuse) their server connections: that is pooling, not leftovers.
          if (!keepsServerConnections(variant.name)) await waitForQuietServer(quiet, 0)
        }
        const args = bench.args(target, kind, n, opts.duration)
        const timed = async () => {
          const before = sampleCpu(variant.pids, undefined)
          const generator = reapedChildrenCpu()
          const out = await bench.run(args, opts.duration, cpus)
          const after = sampleCpu(variant.pids, undefined)
          return { before, after, out, loadgenCpuSeconds: reapedChildrenCpu() - generator }
        }
        // Pooled workloads: the server's backends of the bench role counted throughout the measured run.
        const sampled = pooled ? await whileSampling(quiet, server.user, timed) : undefined
        const { before, after, out, loadgenCpuSeconds } = sampled?.result ?? (await timed())
        const serverConnectionsMax = sampled?.max
        // Other processes' CPU: read once this run's backends are gone (their time is then the postmaster's).
        await waitForQuietServer(quiet, keepsServerConnections(variant.name) ? 1_000 : 0, 5_000)
        const settled = windowCpu(before, sampleCpu(variant.pids, undefined))
        if (out.failed > 0) throw new Error(`${out.failed} failed transactions`)
        if (serverConnectionsMax !== undefined) checkPoolBound(variant.name, serverConnectionsMax, opts.poolSize)
        return {
          variant: variant.name,
          round,
          position,
          command: `${cpus === undefined ? "" : `taskset -c ${cpus} `}pgbench ${args.join(" ")}`,
          rate: out.tps,
          ops: out.transactions,
          seconds: opts.duration,
          loadgenCpuSeconds,
          ...cpuFields(windowCpu(before, after), 1000, out.transactions),
          foreignCpuSeconds: settled.foreignCpuSeconds,
          foreignShare: settled.foreignShare,
          ...(serverConnectionsMax === undefined ? {} : { serverConnectionsMax })
        }
      }
      const runs = await interleave({
        workload,
        variants: runsOf(run, variants),
        rounds: opts.rounds,
        noise: opts.noise,
        log: (line) => log(`pg ${line}`),
        measure: (variant, round, position) => {
          if (pinned === undefined) return measure(variant, round, position)
          if (postmaster === undefined) throw new Error("the postmaster's pid is unknown: cannot pin")
          return whilePinned(pinned, postmaster, variant.pids, () => measure(variant, round, position, pinned.rest))
        }
      })
      measurements.push(...runs)
    }
    const labelOf = (name: string) => variants.find((v) => v.name === name)?.info.label ?? name
    return {
      scenario: "pg",
      title:
        "pg: pgbench direct vs polyproxy `postgres` and `tcp` listeners vs HAProxy tcp and PgBouncer" +
        (workloads.some((w) => w.compareTo !== undefined) ? "; transaction pooling vs PgBouncer's" : ""),
      workloads,
      variants: variantInfos(opts.variants, variants),
      reference: "direct",
      ...compareToHaproxy(variants),
      measurements,
      setup: {
        postgres: version,
        pgbench: versionOf(bench.bin),
        rounds: opts.rounds,
        durationSeconds: opts.duration,
        warmupSeconds: opts.warmup,
        scale: opts.scale,
        clients: opts.clients,
        pgbouncer: bouncers[0]?.version,
        poolSize: opts.poolSize,
        baselineConfigs: Object.fromEntries(baselines.map((b) => [b.name, b.config]))
      },
      notes: [
        ...notes,
        `Each run: \`pgbench -n -T ${opts.duration} -c N -j min(N,2) -M simple [-S]\` after a ${opts.warmup} s ` +
          `warm-up of the same variant; scale ${opts.scale}; PGSSLMODE=disable for every variant; SCRAM-SHA-256 ` +
          "logins. Before each: for TPC-B-like a VACUUM of the small tables and a TRUNCATE of the history, the " +
          "previous run's backends gone, a CHECKPOINT.",
        "TPS is pgbench's own, without the initial connection time; proxy CPU = utime+stime of the middleman over " +
          "the measured pgbench run, per 1000 transactions; generator CPU = pgbench's own.",
        ...(workloads.some((w) => w.compareTo !== undefined)
          ? [
              `Transaction pooling rows: direct is pgbench against PostgreSQL with \`-c ${opts.poolSize}\` (the pool ` +
                "size; the same -j and -T), what a pooler that costs nothing could reach, and the headroom check's " +
                "reference for those rows; at the rows' own client count PostgreSQL's backends contend and direct is " +
                "slower than pooling. The published figure is the ratio to PgBouncer transaction."
            ]
          : []),
        ...(planned.some((r) => r.pinned !== undefined)
          ? [
              "Rows marked “the pooler on a core of its own”: every thread of the pooler on the last core, the " +
                "postmaster with every process it forked and pgbench (`taskset -c`) on the others, the same for " +
                "direct; undone after each run. Unmarked rows share every core between all of them."
            ]
          : []),
        ...serverBackendsNotes(workloads, measurements, labelOf)
      ]
    }
  } finally {
    await monitor?.end().catch(() => {})
    for (const p of proxies) await p.stop().catch(() => {})
    for (const b of baselines) await b.stop().catch(() => {})
    for (const r of relays) r.stop()
    for (const b of bouncers) await b.stop().catch(() => {})
    await server.stop().catch(() => {})
  }
}
