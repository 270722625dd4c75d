// The backend of mode postgres-pooled: a real PostgreSQL 15 (started as the specs and the bench start it:
// spec/support/backends/postgres.ts), with `max_connections` just above what pooling may open, so that a pool that
// did not bound its server connections would be refused by the server itself. It holds D databases and R login roles
// (SCRAM-SHA-256 or md5 passwords); the proxy's postgres listener routes each database to it in transaction pooling
// mode (`metadata.pool: { mode: transaction, size: S }`) and looks the roles' secrets up as the superuser. A sampler
// counts the server's client backends per (database, role) from pg_stat_activity for the whole run: each proxy
// worker has its own pools, so the bound is workers × S per (database, role), workers × S × D × R in all.
import type pg from "pg"
import { type PostgresServer, startPostgres } from "../spec/support/backends/postgres.ts"
import { superuserClient } from "../spec/support/pgAdmin.ts"
import { sleep } from "./procs.ts"

export type PoolAuth = "scram" | "md5"

export interface PooledOptions {
  readonly databases: number
  readonly roles: number
  /** pool.size: server connections per (database, role) in each proxy process. */
  readonly poolSize: number
  readonly workers: number
  readonly auth: PoolAuth
  /** 0: just above the bound (at least 40). */
  readonly maxConnections: number
}

/** What the server held at one moment: client backends per "database/role" of the load, and the others. */
export interface PgCount {
  readonly total: number
  readonly perPool: Readonly<Record<string, number>>
  /** Other client backends: the proxy's secret lookups (superuser, database postgres), the sampler excluded. */
  readonly others: number
}

export interface PgPeak {
  /** The most client backends of one (database, role) seen in any sample, and which. */
  readonly perPool: number
  readonly pool: string
  /** The most client backends in the load's databases together in any sample. */
  readonly total: number
  readonly others: number
  readonly samples: number
}

export interface PooledBackend {
  readonly server: PostgresServer
  readonly databases: ReadonlyArray<string>
  readonly users: ReadonlyArray<string>
  readonly passwords: ReadonlyArray<string>
  readonly maxConnections: number
  /** Server connections the pools may hold: per (database, role), and in all. */
  readonly bound: { readonly perPool: number; readonly total: number }
  /** The proxy config's routes: one per database, transaction pooling, lookups as the superuser. */
  readonly routes: Readonly<Record<string, { endpoint: string; metadata: Record<string, unknown> }>>
  /** The last sample (taken every 250 ms from start to stop). */
  readonly now: () => PgCount
  readonly peak: () => PgPeak
  /** Sampling errors (the run fails when the count could not be watched). */
  readonly errors: () => ReadonlyArray<string>
  readonly stop: () => Promise<void>
}

/** Server connections the pools may hold; with the server's own max_connections (auto: bound + lookups + spare). */
export const pooledBound = (o: PooledOptions) => {
  const perPool = o.workers * o.poolSize
  const total = perPool * o.databases * o.roles
  // Superuser connections besides: one secret lookup per worker at most (closed 10 s after its last query), this
  // sampler, 3 reserved slots, and a few spare for a psql to look in.
  const maxConnections = o.maxConnections > 0 ? o.maxConnections : Math.max(40, total + o.workers + 1 + 3 + 5)
  return { perPool, total, maxConnections }
}

const literal = (value: string): string => `'${value.replaceAll("'", "''")}'`

export const startPooledBackend = async (o: PooledOptions): Promise<PooledBackend> => {
  const { perPool, total, maxConnections } = pooledBound(o)
  const databases = Array.from({ length: o.databases }, (_, i) => `load_d${i}`)
  const users = Array.from({ length: o.roles }, (_, i) => `load_r${i}`)
  const passwords = users.map((_, i) => `load-secret-${i}-${Math.random().toString(36).slice(2)}`)
  const server = await startPostgres({
    databases,
    maxConnections,
    // An md5 line lets md5 secrets log in; roles with SCRAM secrets still get SCRAM under it.
    ...(o.auth === "md5" ? { hba: ["host all all 127.0.0.1/32 md5"] } : {})
  })
  let monitor: pg.Client | undefined
  try {
    monitor = await superuserClient(server, "postgres", [
      `SET password_encryption = ${literal(o.auth === "md5" ? "md5" : "scram-sha-256")}`,
      ...users.map((u, i) => `CREATE ROLE ${u} LOGIN PASSWORD ${literal(passwords[i]!)}`)
    ])
  } catch (e) {
    await server.stop()
    throw e
  }
  const client = monitor
  const loadDatabases = new Set(databases)
  let last: PgCount = { total: 0, perPool: {}, others: 0 }
  let peak: PgPeak = { perPool: 0, pool: "", total: 0, others: 0, samples: 0 }
  const errors: Array<string> = []
  let stopped = false
  const sample = async () => {
    const { rows } = await client.query<{ datname: string; usename: string; n: number }>(
      "SELECT datname, usename, count(*)::int AS n FROM pg_stat_activity " +
        "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() GROUP BY 1, 2"
    )
    const perPool: Record<string, number> = {}
    let inLoad = 0
    let others = 0
    for (const r of rows) {
      if (loadDatabases.has(r.datname)) {
        perPool[`${r.datname}/${r.usename}`] = r.n
        inLoad += r.n
      } else others += r.n
    }
    last = { total: inLoad, perPool, others }
    const top = Object.entries(perPool).reduce((a, b) => (b[1] > a[1] ? b : a), ["", 0] as [string, number])
    peak = {
      perPool: Math.max(peak.perPool, top[1]),
      pool: top[1] > peak.perPool ? top[0] : peak.pool,
      total: Math.max(peak.total, inLoad),
      others: Math.max(peak.others, others),
      samples: peak.samples + 1
    }
  }
  const loop = (async () => {
    while (!stopped) {
      try {
        await sample()
      } catch (e) {
        if (!stopped) errors.push((e as Error).message)
        if (errors.length > 5) return
      }
      await sleep(250)
    }
  })()
  const metadata = {
    pool: { mode: "transaction", size: o.poolSize },
    auth: { user: server.superuser, password: server.password, database: "postgres" }
  }
  return {
    server,
    databases,
    users,
    passwords,
    maxConnections,
    bound: { perPool, total },
    routes: Object.fromEntries(databases.map((d) => [d, { endpoint: `${server.host}:${server.port}`, metadata }])),
    now: () => last,
    peak: () => peak,
    errors: () => errors,
    stop: async () => {
      stopped = true
      await loop
      await client.end().catch(() => {})
      await server.stop()
    }
  }
}
