// The mysql scenario of bench/run.ts: mysqlslap (Debian mariadb-client) against one MariaDB reached directly,
// through polyproxy's `mysql` listener (routes by the handshake's database, auth switch carrying the backend's
// scramble) and through HAProxy `mode tcp` (1 thread). Two workloads (`SELECT 1`, and a point select by primary key
// on a 10,000-row table) at several client counts, variants interleaved round by round. Then the transaction-pooling
// row (bench/mysql/pooled.ts): `SELECT 1` at 200 clients through a pool of N beside direct with 200 connections.
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { randomSecret } from "../../spec/support/backends/local.ts"
import { type MariaDbServer, startMariaDb } from "../../spec/support/backends/mariadb.ts"
import { type Baseline, startHaproxy } from "../support/baselines.ts"
import { firstBytes, NODE_RELAY_WHAT, type ReadyChild, startNodeRelay } from "../support/children.ts"
import {
  compareToHaproxy,
  interleave,
  type Measurement,
  type NoisePolicy,
  type ScenarioResult,
  sampleCpu,
  type Workload,
  windowCpu
} from "../support/interleave.ts"
import type { Polyproxy, ProxyEntry } from "../support/polyproxy.ts"
import { reapedChildrenCpu, runBounded, sleep, versionOf } from "../support/process.ts"
import { startPolyproxyVariants } from "../support/proxies.ts"
import {
  type Compared,
  directVariant,
  processVariant,
  startedText,
  type Variant as VariantOf,
  variantInfos
} from "../support/variant.ts"
import {
  checkMysqlPoolBound,
  isMysqlPooledVariant,
  MYSQL_POOLED_VARIANTS,
  openMonitor,
  pooledNotes,
  pooledSetup,
  pooledWorkloadOf,
  serverPid,
  startPooledVariant,
  waitForSessions,
  whileCounting
} from "./pooled.ts"

export const MYSQL_VARIANTS = ["direct", "polyproxy", "node-relay", "haproxy", ...MYSQL_POOLED_VARIANTS] as const
export type MysqlVariantName = (typeof MYSQL_VARIANTS)[number]
const DATABASE = "appdb"
const ROWS = 10_000

export interface MysqlOptions {
  readonly entry: ProxyEntry
  /** `--compare`: every polyproxy variant also from that revision (bench/support/compare.ts). */
  readonly compare?: ProxyEntry | undefined
  readonly dir: string
  readonly rounds: number
  /** Seconds each measured run should take (the query count is calibrated per variant from its warm-up). */
  readonly duration: number
  readonly clients: readonly number[]
  /** Server connections of the transaction-pooling variant (`pool.size`). */
  readonly poolSize: number
  /** mysqlslap's clients in the transaction-pooling row. */
  readonly pooledClients: number
  readonly variants: readonly MysqlVariantName[]
  readonly cpuProfDir?: string | undefined
  readonly noise: NoisePolicy
  readonly log: (line: string) => void
}

export const plannedMysqlSeconds = (o: Pick<MysqlOptions, "rounds" | "duration" | "clients" | "variants">): number =>
  mysqlRuns({ ...o, poolSize: 1, pooledClients: 1 }).reduce(
    (n, run) => n + runsOf(run, o.variants).length * (o.rounds * (o.duration + 0.3) + 1.5),
    20
  )

const QUERIES = {
  select1: { label: "SELECT 1", query: "SELECT 1" },
  point: { label: `point select by primary key (${ROWS} rows)`, query: "" }
} as const
type QueryKind = keyof typeof QUERIES

const workloadOf = (kind: QueryKind, clients: number): Workload => ({
  id: `${kind}-c${clients}`,
  label: `${QUERIES[kind].label}, ${clients} client${clients > 1 ? "s" : ""}`,
  kind: "rate",
  unit: "queries/s",
  displayDivisor: 1,
  cpuPer: 1000,
  cpuUnit: "CPU s / 1k queries"
})

type Variant = VariantOf<MysqlVariantName | Compared<MysqlVariantName>>

interface MysqlRun {
  readonly workload: Workload
  readonly kind: QueryKind
  readonly clients: number
  /** The transaction-pooling row: run by direct and the pooled variant only (the others by everyone else). */
  readonly pooled: boolean
}

/**
 * The workloads a run asks for: the usual ones unless only the pooled variant (and direct) was asked for, and the
 * pooled row when the pooled variant was.
 */
const mysqlRuns = (o: Pick<MysqlOptions, "clients" | "variants" | "poolSize" | "pooledClients">): MysqlRun[] => {
  const pooled = o.variants.some(isMysqlPooledVariant)
  const usual = !pooled || o.variants.some((n) => n !== "direct" && !isMysqlPooledVariant(n))
  return [
    ...(usual
      ? (Object.keys(QUERIES) as QueryKind[]).flatMap((kind) =>
          o.clients.map((clients) => ({ workload: workloadOf(kind, clients), kind, clients, pooled: false }))
        )
      : []),
    ...(pooled
      ? [
          {
            workload: pooledWorkloadOf(o.pooledClients, o.poolSize),
            kind: "select1" as const,
            clients: o.pooledClients,
            pooled: true
          }
        ]
      : [])
  ]
}

/** The variants (or their names) that run `run`'s workload, each `--compare` twin with its own. */
const runsOf = <V extends string | { readonly name: string }>(run: MysqlRun, variants: readonly V[]): V[] =>
  variants.filter((v) => {
    const name = typeof v === "string" ? v : v.name
    return name === "direct" || isMysqlPooledVariant(name) === run.pooled
  })

/** mysqlslap's "Average number of seconds to run all queries: 0.282 seconds". */
export const parseMysqlslap = (stdout: string): number | undefined => {
  const m = /Average number of seconds to run all queries: ([\d.]+) seconds/.exec(stdout)
  return m?.[1] === undefined ? undefined : Number(m[1])
}

const makeSlap = (server: MariaDbServer, queryFile: string) => {
  // The password travels in MYSQL_PWD (read by libmariadb), not on a command line anyone can list.
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C", MYSQL_PWD: server.password }
  const args = (port: number, kind: QueryKind, clients: number, queries: number): string[] => [
    "--no-defaults",
    "--protocol=tcp",
    "--host=127.0.0.1",
    `--port=${port}`,
    `--user=${server.user}`,
    // mysqlslap connects without a database and then selects this one (COM_INIT_DB).
    `--create-schema=${DATABASE}`,
    `--concurrency=${clients}`,
    `--number-of-queries=${queries}`,
    "--iterations=1",
    ...(kind === "select1" ? ["--query=SELECT 1"] : [`--query=${queryFile}`, "--delimiter=;"])
  ]
  const run = async (a: string[], timeoutMs: number): Promise<{ seconds: number; wall: number }> => {
    const t0 = process.hrtime.bigint()
    const r = await runBounded("mysqlslap", a, { env, timeoutMs })
    const wall = Number(process.hrtime.bigint() - t0) / 1e9
    const seconds = r.code === 0 ? parseMysqlslap(r.stdout) : undefined
    if (seconds === undefined || seconds <= 0) {
      const why = r.timedOut ? "timed out" : `exit code ${r.code}`
      throw new Error(`mysqlslap ${why}: ${`${r.stdout}\n${r.stderr}`.trim().split("\n").slice(-4).join(" / ")}`)
    }
    return { seconds, wall }
  }
  return { args, run, env }
}

const setupSql = [
  "CREATE TABLE sbtest1 (id INT NOT NULL PRIMARY KEY, k INT NOT NULL, c CHAR(120) NOT NULL, pad CHAR(60) NOT NULL)",
  `INSERT INTO sbtest1 SELECT seq, seq % 1000, REPEAT(CHAR(97 + seq % 26), 120), REPEAT('x', 60) FROM seq_1_to_${ROWS}`,
  "ANALYZE TABLE sbtest1",
  ""
].join(";\n")

export const runMysqlScenario = async (opts: MysqlOptions): Promise<ScenarioResult> => {
  const log = opts.log
  process.env.TEST_BACKENDS = "local"
  const logins = { lookupPassword: randomSecret(), monitorPassword: randomSecret() }
  const server = await startMariaDb({ databases: [DATABASE], setup: pooledSetup(logins) })
  log(`mysql: MariaDB on ${server.host}:${server.port}`)
  let monitor: Awaited<ReturnType<typeof openMonitor>> | undefined
  const proxies: Polyproxy[] = []
  const baselines: Baseline[] = []
  const relays: ReadyChild<number>[] = []
  const variants: Variant[] = []
  const notes: string[] = []
  const measurements: Measurement[] = []
  try {
    // The point-select script: mysqlslap cycles through these statements on every connection.
    const queryFile = join(opts.dir, "point-select.sql")
    const ids = Array.from({ length: 1000 }, () => 1 + Math.floor(Math.random() * ROWS))
    writeFileSync(queryFile, ids.map((id) => `SELECT c FROM sbtest1 WHERE id=${id};\n`).join(""))
    const slap = makeSlap(server, queryFile)
    const setup = await runBounded(
      "mariadb",
      [
        "--no-defaults",
        "--protocol=tcp",
        "-h",
        "127.0.0.1",
        "-P",
        String(server.port),
        "-u",
        server.user,
        DATABASE,
        "-e",
        setupSql
      ],
      { env: slap.env, timeoutMs: 60_000 }
    )
    if (setup.code !== 0) throw new Error(`table setup failed: ${setup.stderr.trim()}`)
    const version = versionOf("mariadbd", ["--version"])

    // Ready = the MySQL greeting arrives, then a real login and query go through (a 2-query mysqlslap run).
    const login = async (port: number) => {
      await firstBytes(port)
      await slap.run(slap.args(port, "select1", 1, 2), 10_000)
    }
    for (const name of opts.variants) {
      try {
        if (name === "direct") {
          variants.push(directVariant(name, server.port, `${version}, no proxy`))
        } else if (name === "polyproxy") {
          const started = await startPolyproxyVariants({
            name,
            entry: opts.entry,
            compare: opts.compare,
            dir: opts.dir,
            cpuProfDir: opts.cpuProfDir,
            // mysqlslap logs in without a database and then sends COM_INIT_DB (USE appdb), so the handshake has
            // no routing key: defaultRoute sends such clients to appdb. Auth switch and relay are the same.
            listener: (port) => ({ mysql: { host: "127.0.0.1", port, defaultRoute: DATABASE } }),
            routes: { [DATABASE]: `127.0.0.1:${server.port}` },
            ready: login,
            label: "polyproxy mysql",
            what:
              "`mysql` listener, `defaultRoute: appdb` (mysqlslap names no database in its handshake; it sends " +
              "`USE appdb` after login), auth switch carrying the backend's scramble"
          })
          proxies.push(...started.proxies)
          variants.push(...started.variants)
        } else if (name === "node-relay") {
          const relay = await startNodeRelay(server.port)
          relays.push(relay)
          await login(relay.info)
          variants.push(processVariant(name, relay.info, relay, "minimal Node relay", NODE_RELAY_WHAT))
        } else if (name === "haproxy") {
          const b = await startHaproxy({ dir: join(opts.dir, "haproxy-mysql"), backendPort: server.port, ready: login })
          baselines.push(b)
          variants.push(
            processVariant(name, b.port, b, "HAProxy 1 thread", `${b.version}, \`mode tcp\`, \`nbthread 1\``)
          )
        } else {
          const started = await startPooledVariant({
            name,
            entry: opts.entry,
            compare: opts.compare,
            dir: opts.dir,
            cpuProfDir: opts.cpuProfDir,
            server,
            database: DATABASE,
            poolSize: opts.poolSize,
            logins,
            ready: login
          })
          proxies.push(...started.proxies)
          variants.push(...started.variants)
        }
        log(`mysql: ${startedText(variants, name)}`)
      } catch (error) {
        const message = (error as Error).message
        log(`mysql: ${name} could not be started: ${message}`)
        notes.push(`${name} could not be started: ${message.split("\n")[0]}`)
      }
    }

    const runs = mysqlRuns(opts)
    // The pooled row counts the server's connections of the bench user and reads MariaDB's CPU.
    monitor = runs.some((r) => r.pooled) ? await openMonitor(server, logins) : undefined
    const backendPid = monitor === undefined ? undefined : await serverPid(monitor)
    const workloads: Workload[] = []
    for (const run of runs) {
      const { workload, kind, clients, pooled } = run
      workloads.push(workload)
      const runVariants = runsOf(run, variants)
      // Calibrate: a short warm-up run per variant (also warms the JIT, MariaDB's caches and thread cache), then
      // as many queries as that variant answers in `duration` seconds, so every measured run lasts about as long.
      const queries = new Map<string, number>()
      for (const v of runVariants) {
        const n = Math.max(clients * 100, 2_000)
        try {
          const r = await slap.run(slap.args(v.port, kind, clients, n), 60_000)
          const count = Math.round(((n / r.seconds) * opts.duration) / clients) * clients
          queries.set(v.name, Math.max(count, clients * 50))
        } catch (error) {
          log(`mysql ${workload.id} ${v.name}: warm-up failed: ${(error as Error).message}`)
        }
      }
      const measured = await interleave({
        workload,
        variants: runVariants,
        rounds: opts.rounds,
        noise: opts.noise,
        log: (line) => log(`mysql ${line}`),
        measure: async (variant, round, position) => {
          const n = queries.get(variant.name)
          if (n === undefined) throw new Error("no calibration (warm-up failed)")
          const args = slap.args(variant.port, kind, clients, n)
          const timed = async () => {
            const before = sampleCpu(variant.pids, pooled ? backendPid : undefined)
            const generator = reapedChildrenCpu()
            const r = await slap.run(args, (opts.duration * 10 + 60) * 1000)
            const after = sampleCpu(variant.pids, pooled ? backendPid : undefined)
            return { r, w: windowCpu(before, after), loadgenCpuSeconds: reapedChildrenCpu() - generator }
          }
          // The pooled row: the server's connections of the bench user counted throughout the measured run, once
          // every earlier run's are gone. All of them, not "at most the pool size": with `--compare` the other
          // polyproxy's pool may still hold its idle connections (closed after its `idleTimeout: 1`), and this
          // variant's run would then count them with its own.
          if (pooled && monitor) {
            if (!(await waitForSessions(monitor, server.user, 0))) log(`mysql ${workload.id}: connections linger`)
          }
          const sampled = pooled && monitor ? await whileCounting(monitor, server.user, timed) : undefined
          const { r, w, loadgenCpuSeconds } = sampled?.result ?? (await timed())
          if (sampled !== undefined) checkMysqlPoolBound(variant.name, sampled.max, opts.poolSize)
          await sleep(100)
          return {
            variant: variant.name,
            round,
            position,
            command: `mysqlslap ${args.join(" ")}`,
            rate: n / r.seconds,
            ops: n,
            seconds: r.seconds,
            proxyCpuSeconds: w.proxyCpuSeconds,
            cpuPerUnit: w.proxyCpuSeconds === undefined ? undefined : (w.proxyCpuSeconds * 1000) / n,
            loadgenCpuSeconds,
            machineBusy: w.machineBusy,
            foreignCpuSeconds: w.foreignCpuSeconds,
            foreignShare: w.foreignShare,
            ...(w.backendCpuSeconds === undefined ? {} : { backendCpuSeconds: w.backendCpuSeconds }),
            ...(sampled === undefined ? {} : { serverConnectionsMax: sampled.max })
          }
        }
      })
      measurements.push(...measured)
    }
    const labelOf = (name: string) => variants.find((v) => v.name === name)?.info.label ?? name
    const pooledRow = workloads.find((w) => w.id.startsWith("pooled-"))
    return {
      scenario: "mysql",
      title:
        "mysql: mysqlslap direct vs polyproxy `mysql` listener vs HAProxy tcp" +
        (pooledRow === undefined ? "" : "; transaction pooling vs direct"),
      workloads,
      variants: variantInfos(opts.variants, variants),
      reference: "direct",
      ...compareToHaproxy(variants),
      measurements,
      setup: {
        mariadb: version,
        mysqlslap: versionOf("mysqlslap", ["--version"]),
        rounds: opts.rounds,
        durationSeconds: opts.duration,
        clients: opts.clients,
        ...(pooledRow === undefined ? {} : { poolSize: opts.poolSize, pooledClients: opts.pooledClients }),
        table: `sbtest1: ${ROWS} rows (id INT PRIMARY KEY, k INT, c CHAR(120), pad CHAR(60)), InnoDB`,
        pointSelect: "SELECT c FROM sbtest1 WHERE id=<random>, 1000 statements cycled per connection",
        baselineConfigs: Object.fromEntries(baselines.map((b) => [b.name, b.config]))
      },
      notes: [
        ...notes,
        "Each run is one `mysqlslap --iterations=1` process: N connections (mysql_native_password, no TLS) " +
          "opened, then queries/N each; the rate is queries ÷ mysqlslap's own time for the run, which includes the " +
          "N logins (a few ms).",
        "The query count per variant is calibrated from a warm-up run so each measured run lasts about " +
          `${opts.duration} s; ${opts.rounds} round(s), order rotated every round.`,
        "Proxy CPU covers the whole mysqlslap run (logins included), per 1000 queries.",
        ...(pooledRow === undefined
          ? []
          : [
              `Transaction pooling row: mysqlslap's ${opts.pooledClients} clients through a pool of ` +
                `${opts.poolSize} server connections (logins checked by the proxy), beside direct, where MariaDB ` +
                `holds ${opts.pooledClients} connections (max_connections raised to 300 for it).`,
              ...pooledNotes(pooledRow, measurements, labelOf)
            ])
      ]
    }
  } finally {
    await monitor?.end().catch(() => {})
    for (const p of proxies) await p.stop().catch(() => {})
    for (const b of baselines) await b.stop().catch(() => {})
    for (const r of relays) r.stop()
    await server.stop().catch(() => {})
  }
}
