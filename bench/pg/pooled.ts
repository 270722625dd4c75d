// The pg scenario's transaction-pooling workloads (issue 21): polyproxy's `postgres` listener with a route in
// `pool: { mode: transaction, size: N }` against PgBouncer in `pool_mode = transaction` with the same
// `default_pool_size`. Both authenticate the clients themselves with the role's SCRAM secret, looked up through a
// superuser login (polyproxy's `auth`, PgBouncer's `auth_user` + `auth_query`), and log in to PostgreSQL with the keys
// recovered from the client's proof, so no tenant password is configured in either. pgbench -S at 100 clients and
// TPC-B-like at 50 beside `direct` at N clients (the headroom check: see `directClients`); the server's backends of
// the bench role are sampled during every run of these workloads, and a pooled variant that lets the server hold more
// than N fails its run.
import type pg from "pg"
import type { PostgresServer } from "../../spec/support/backends/postgres.ts"
import type { Measurement, Workload } from "../support/interleave.ts"
import { type PinLayout, pin, processTree } from "../support/pin.ts"
import type { Polyproxy, ProxyEntry } from "../support/polyproxy.ts"
import { startPolyproxyVariants } from "../support/proxies.ts"
import { whileSampling as sampleWhile } from "../support/sampling.ts"
import { type Compared, comparedWith, processVariant, type Variant } from "../support/variant.ts"
import { DATABASE, type PgWorkload, pgWorkloadOf } from "./pgbench.ts"
import { type PgBouncer, startPgBouncer } from "./pgbouncer.ts"

export const PG_POOLED_VARIANTS = [
  "polyproxy-transaction",
  "pgbouncer-transaction",
  "polyproxy-transaction-2",
  "pgbouncer-transaction-2"
] as const
export type PgPooledVariantName = (typeof PG_POOLED_VARIANTS)[number]

/**
 * The `-2` variants, asked for by name only (not in the default `--pg-variants`): each pooler as two processes on the
 * two cores, polyproxy with `workers: 2`, PgBouncer as two processes on one port (`so_reuseport`), each process with
 * half the pool so that the server still holds at most `--pg-pool-size`. How each scales past one core; the published
 * ratio stays the one-process pair's.
 */
export const PG_OPT_IN_VARIANTS: readonly string[] = ["polyproxy-transaction-2", "pgbouncer-transaction-2"]

/** Processes of a pooled variant: its pools are split between them. */
const processesOf = (name: PgPooledVariantName): number => (name.endsWith("-2") ? 2 : 1)

/**
 * What the issue asks for: select-only at 100 clients, TPC-B-like at 50, each against a pool of `--pg-pool-size`;
 * each twice, first with every process on the shared cores, then `pinned`: the pooler on a core of its own,
 * PostgreSQL and pgbench on the others (bench/support/pin.ts), direct too. Shared, a pooler's CPU per transaction is
 * taken from PostgreSQL and pgbench and the TPS measures it with its speed; pinned, the TPS is the pooler's own
 * throughput and latency, as where a pooler has a host or core of its own. Only the one-process variants run pinned.
 */
export const POOLED_WORKLOADS: readonly {
  readonly kind: PgWorkload
  readonly clients: number
  readonly pinned: boolean
}[] = [
  { kind: "select-only", clients: 100, pinned: false },
  { kind: "tpcb-like", clients: 50, pinned: false },
  { kind: "select-only", clients: 100, pinned: true },
  { kind: "tpcb-like", clients: 50, pinned: true }
]

/** A variant of a pinned workload: direct and the one-process poolers (the pooler's core is one). */
export const runsPinned = (name: string): boolean => !(comparedWith(name) ?? name).endsWith("-2")

/**
 * The clients of `variant`'s pgbench in a pooled workload of `clients`. `direct` runs at the pool size: what a pooler
 * that costs nothing reaches, with PostgreSQL holding as many backends as the poolers let it hold. At the workload's
 * own count the server's 100 (or 50) backends contend with each other and direct came out slower than both poolers,
 * so the headroom check read every pooled variant as bound; against direct at the pool size it says whether pgbench
 * and PostgreSQL themselves leave the poolers room.
 */
export const directClients = (variant: string, clients: number, poolSize: number): number =>
  variant === "direct" ? poolSize : clients

/** The pooled workloads' ratios are taken against this one, not HAProxy. */
const POOLED_BASELINE: PgPooledVariantName = "pgbouncer-transaction"

export const pooledWorkloadOf = (kind: PgWorkload, clients: number, poolSize: number, pinned = false): Workload =>
  pgWorkloadOf(kind, clients, { size: poolSize, compareTo: POOLED_BASELINE, pinned })

/** A transaction-pooling variant, or its `--compare` twin. */
export const isPooledVariant = (name: string): boolean =>
  (PG_POOLED_VARIANTS as readonly string[]).includes(comparedWith(name) ?? name)

export interface PooledStart {
  readonly name: PgPooledVariantName
  readonly entry: ProxyEntry
  readonly compare?: ProxyEntry | undefined
  readonly dir: string
  readonly cpuProfDir?: string | undefined
  readonly server: PostgresServer
  readonly poolSize: number
  /** A real login as the bench role and a query through the port. */
  readonly ready: (port: number) => Promise<void>
}

export interface PooledStarted {
  readonly variants: Variant<PgPooledVariantName | Compared<PgPooledVariantName>>[]
  readonly proxies: Polyproxy[]
  readonly bouncer?: PgBouncer
}

export const startPooledVariant = async (o: PooledStart): Promise<PooledStarted> => {
  const lookup = { user: o.server.superuser, password: o.server.password }
  const processes = processesOf(o.name)
  if (o.poolSize % processes !== 0) {
    throw new Error(`--pg-pool-size ${o.poolSize} cannot be split evenly between ${processes} processes`)
  }
  const size = o.poolSize / processes
  if (o.name.startsWith("polyproxy-")) {
    const pool = { mode: "transaction", size, idleTimeout: 1 }
    const started = await startPolyproxyVariants({
      name: o.name,
      workers: processes,
      entry: o.entry,
      compare: o.compare,
      dir: o.dir,
      cpuProfDir: o.cpuProfDir,
      listener: (port) => ({ postgres: { host: "127.0.0.1", port } }),
      routes: {
        [DATABASE]: {
          endpoint: `127.0.0.1:${o.server.port}`,
          // The lookup runs in the postgres database, so that its one kept connection is not among the bench
          // database's backends (which the runner waits to be gone between runs).
          metadata: { pool, auth: { ...lookup, database: "postgres" } }
        }
      },
      ready: o.ready,
      label: `polyproxy postgres, transaction pool${processes > 1 ? `, ${processes} workers` : ""}`,
      what:
        `\`postgres\` listener, its route in \`pool: { mode: transaction, size: ${size}, idleTimeout: 1 }\`` +
        `${processes > 1 ? ` per worker (${o.poolSize} in all)` : ""}, ` +
        "client secrets looked up as the superuser (`auth`, the default pg_authid query), SCRAM pass-through to the server"
    })
    return { variants: started.variants, proxies: started.proxies }
  }
  const bouncer = await startPgBouncer({
    backendHost: o.server.host,
    backendPort: o.server.port,
    database: DATABASE,
    user: o.server.user,
    password: o.server.userPassword,
    poolSize: size,
    processes,
    maxClientConn: Math.max(200, 2 * Math.max(...POOLED_WORKLOADS.map((w) => w.clients))),
    poolMode: "transaction",
    authUser: lookup
  })
  try {
    await o.ready(bouncer.port)
  } catch (error) {
    await bouncer.stop().catch(() => {})
    throw error
  }
  const settings = Object.entries(bouncer.settings).map(([k, v]) => `${k}=${v}`)
  return {
    bouncer,
    proxies: [],
    variants: [
      processVariant(
        o.name,
        bouncer.port,
        { pid: bouncer.pid, pids: bouncer.pids, alive: () => true },
        `PgBouncer transaction${processes > 1 ? `, ${processes} processes` : ""}`,
        `${bouncer.version.split(",")[0]}, ${settings.join(", ")}` +
          `${processes > 1 ? ` (${processes} processes on one port, ${o.poolSize} server connections in all)` : ""}; ` +
          "auth_query: its default (pg_shadow), SCRAM pass-through to the server"
      )
    ]
  }
}

/**
 * Runs `f` while counting the bench role's client backends of the bench database every 100 ms; resolves with its
 * result and the most seen (the lookup logins of either pooler are another role: not counted). A failed count fails
 * the run; when `f` fails, its own error is the one that counts.
 */
export const whileSampling = <A>(
  monitor: pg.Client,
  role: string,
  f: () => Promise<A>
): Promise<{ readonly result: A; readonly max: number }> =>
  sampleWhile(async () => {
    const r = await monitor.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_stat_activity " +
        "WHERE datname = $1 AND usename = $2 AND backend_type = 'client backend'",
      [DATABASE, role]
    )
    return r.rows[0]?.n ?? 0
  }, f)

/** A pooled variant may not let the server hold more backends of the role than its pool size. */
export const checkPoolBound = (variant: string, max: number, poolSize: number): void => {
  if (isPooledVariant(variant) && max > poolSize) {
    throw new Error(`the server held ${max} backends of the bench role, more than the pool size ${poolSize}`)
  }
}

/** One note per pooled workload: the most backends the server held for each variant over its kept runs. */
export const serverBackendsNotes = (
  workloads: readonly Workload[],
  measurements: readonly Measurement[],
  label: (variant: string) => string
): string[] =>
  workloads
    .filter((w) => w.compareTo === POOLED_BASELINE)
    .flatMap((w) => {
      const most = new Map<string, number>()
      for (const m of measurements) {
        if (m.workload !== w.id || m.serverConnectionsMax === undefined || m.discarded !== undefined) continue
        most.set(m.variant, Math.max(most.get(m.variant) ?? 0, m.serverConnectionsMax))
      }
      if (most.size === 0) return []
      const each = [...most].map(([v, n]) => `${label(v)}: ${n}`).join("; ")
      return [`${w.label}: the server's backends of the bench role, most sampled (every 100 ms) in a run: ${each}.`]
    })

/**
 * Runs `f` with the pooler's processes (and any it forked) on `layout.proxy` and PostgreSQL (the postmaster and
 * every process it forked; backends forked later inherit it) on `layout.rest`; pgbench is started pinned by the
 * caller. Undone afterwards whatever `f` did, so the next workload runs on every core again.
 */
export const whilePinned = async <A>(
  layout: PinLayout,
  postmaster: number,
  pooler: readonly number[],
  f: () => Promise<A>
): Promise<A> => {
  try {
    await pin(processTree(postmaster), layout.rest)
    await pin(pooler.flatMap(processTree), layout.proxy)
    return await f()
  } finally {
    await pin(processTree(postmaster), layout.all)
    await pin(pooler.flatMap(processTree), layout.all)
  }
}
