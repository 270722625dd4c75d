// The mysql scenario's transaction-pooling row (issue 22): mysqlslap `SELECT 1` at 200 clients through polyproxy's
// `mysql` listener checking the logins itself (`auth: { route: users, user: pooler, password }`, the users' hashes read
// from mysql.user through that login) with the route in `pool: { mode: transaction, size: N }`, beside `direct`: the
// same 200 clients straight to MariaDB, which then holds 200 server connections. mysqlslap names no database in its
// handshake and sends `USE appdb` (COM_INIT_DB) after logging in: the listener routes by it, no defaultRoute. The
// server's connections of the bench user are counted during every run of the row, and a pooled variant that lets the
// server hold more than N fails its run; MariaDB's own CPU per 1k queries is read for both.
import { readFileSync } from "node:fs"
import type mysql from "mysql2/promise"
import type { MariaDbServer } from "../../spec/support/backends/mariadb.ts"
import type { Measurement, Workload } from "../support/interleave.ts"
import type { Polyproxy, ProxyEntry } from "../support/polyproxy.ts"
import { sleep } from "../support/process.ts"
import { startPolyproxyVariants } from "../support/proxies.ts"
import { whileSampling } from "../support/sampling.ts"
import { type Compared, comparedWith, type Variant } from "../support/variant.ts"

export const MYSQL_POOLED_VARIANTS = ["polyproxy-transaction"] as const
export type MysqlPooledVariantName = (typeof MYSQL_POOLED_VARIANTS)[number]

/** What the issue asks for: 200 clients, against a pool of `--mysql-pool-size` (10). */
export const POOLED_CLIENTS = 200

/** The route of mysql.user for the listener's `auth`, and its lookup login (SELECT on mysql.user only). */
const USERS_ROUTE = "users"
const LOOKUP_USER = "pooler"
/** Sees every session in information_schema.PROCESSLIST (PROCESS), to count the bench user's. */
const MONITOR_USER = "benchmon"

export const pooledWorkloadOf = (clients: number, poolSize: number): Workload => ({
  id: `pooled-select1-c${clients}`,
  label: `SELECT 1, ${clients} clients, transaction pool of ${poolSize} (direct: ${clients} server connections)`,
  kind: "rate",
  unit: "queries/s",
  displayDivisor: 1,
  cpuPer: 1000,
  cpuUnit: "CPU s / 1k queries"
})

/** A transaction-pooling variant, or its `--compare` twin. */
export const isMysqlPooledVariant = (name: string): boolean =>
  (MYSQL_POOLED_VARIANTS as readonly string[]).includes(comparedWith(name) ?? name)

export interface PooledLogins {
  readonly lookupPassword: string
  readonly monitorPassword: string
}

/**
 * What MariaDB needs for the row, run as its administrator when it starts (startMariaDb's `setup`): room for the
 * direct variant's 200 connections plus mysqlslap's own and the monitor (the default max_connections is 151), the
 * lookup login and the monitor.
 */
export const pooledSetup = (logins: PooledLogins): string[] => [
  "SET GLOBAL max_connections = 300",
  `CREATE USER '${LOOKUP_USER}'@'%' IDENTIFIED BY '${logins.lookupPassword}'`,
  `GRANT SELECT ON mysql.user TO '${LOOKUP_USER}'@'%'`,
  `CREATE USER '${MONITOR_USER}'@'%' IDENTIFIED BY '${logins.monitorPassword}'`,
  `GRANT PROCESS ON *.* TO '${MONITOR_USER}'@'%'`
]

export interface PooledStart {
  readonly name: MysqlPooledVariantName
  readonly entry: ProxyEntry
  readonly compare?: ProxyEntry | undefined
  readonly dir: string
  readonly cpuProfDir?: string | undefined
  readonly server: MariaDbServer
  readonly database: string
  readonly poolSize: number
  readonly logins: PooledLogins
  /** A real login as the bench user and a query through the port. */
  readonly ready: (port: number) => Promise<void>
}

export const startPooledVariant = async (
  o: PooledStart
): Promise<{
  readonly variants: Variant<MysqlPooledVariantName | Compared<MysqlPooledVariantName>>[]
  readonly proxies: Polyproxy[]
}> => {
  const endpoint = `127.0.0.1:${o.server.port}`
  // idleTimeout 1: the pool's connections close between the row's runs, so direct's count is direct's own.
  const pool = { mode: "transaction", size: o.poolSize, idleTimeout: 1 }
  return startPolyproxyVariants({
    name: o.name,
    entry: o.entry,
    compare: o.compare,
    dir: o.dir,
    cpuProfDir: o.cpuProfDir,
    listener: (port) => ({
      mysql: {
        host: "127.0.0.1",
        port,
        auth: { route: USERS_ROUTE, user: LOOKUP_USER, password: o.logins.lookupPassword }
      }
    }),
    routes: { [o.database]: { endpoint, metadata: { pool } }, [USERS_ROUTE]: endpoint },
    ready: o.ready,
    label: "polyproxy mysql, transaction pool",
    what:
      `\`mysql\` listener with \`auth: { route: ${USERS_ROUTE}, user: ${LOOKUP_USER} }\` (logins checked by the ` +
      `proxy, mysql_native_password hashes read from mysql.user), routing by mysqlslap's \`USE ${o.database}\`, ` +
      `the route in \`pool: { mode: transaction, size: ${o.poolSize}, idleTimeout: 1 }\``
  })
}

/** A connection that counts the bench user's sessions on the server (information_schema.PROCESSLIST). */
export const openMonitor = async (server: MariaDbServer, logins: PooledLogins): Promise<mysql.Connection> => {
  const { default: mysql2 } = await import("mysql2/promise")
  return mysql2.createConnection({
    host: "127.0.0.1",
    port: server.port,
    user: MONITOR_USER,
    password: logins.monitorPassword
  })
}

/** MariaDB's pid (from its pid file), for its CPU: the server runs on this machine in the bench. */
export const serverPid = async (monitor: mysql.Connection): Promise<number | undefined> => {
  const [rows] = await monitor.query("SELECT @@pid_file AS f")
  const file = (rows as Array<{ f?: string }>)[0]?.f
  try {
    const pid = Number(readFileSync(String(file), "utf8").trim())
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

/** How many sessions `user` has on the server. */
const sessionsOf = async (monitor: mysql.Connection, user: string): Promise<number> => {
  const sql = "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = ?"
  const [rows] = await monitor.query(sql, [user])
  return Number((rows as Array<{ n?: number }>)[0]?.n ?? 0)
}

/** Runs `f` while counting `user`'s sessions on the server every 100 ms: its result and the most seen. */
export const whileCounting = <A>(
  monitor: mysql.Connection,
  user: string,
  f: () => Promise<A>
): Promise<{ readonly result: A; readonly max: number }> => whileSampling(() => sessionsOf(monitor, user), f)

/**
 * Waits (at most `timeoutMs`) until `user` has no more than `atMost` sessions: the previous run's connections gone
 * (a pool keeps its own), so a run's count is its own. False when they linger.
 */
export const waitForSessions = async (
  monitor: mysql.Connection,
  user: string,
  atMost: number,
  timeoutMs = 5_000
): Promise<boolean> => {
  const until = Date.now() + timeoutMs
  for (;;) {
    if ((await sessionsOf(monitor, user)) <= atMost) return true
    if (Date.now() > until) return false
    await sleep(50)
  }
}

/** A pooled variant may not let the server hold more connections of the bench user than its pool size. */
export const checkMysqlPoolBound = (variant: string, max: number, poolSize: number): void => {
  if (isMysqlPooledVariant(variant) && max > poolSize) {
    throw new Error(`the server held ${max} connections of the bench user, more than the pool size ${poolSize}`)
  }
}

/** The row's notes: the most server connections each variant let the server hold, MariaDB's CPU per 1k queries. */
export const pooledNotes = (
  workload: Workload,
  measurements: readonly Measurement[],
  label: (variant: string) => string
): string[] => {
  const runs = measurements.filter((m) => m.workload === workload.id && m.discarded === undefined && !m.error)
  const variants = [...new Set(runs.map((m) => m.variant))]
  if (variants.length === 0) return []
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]
  const most = variants.map((v) => {
    const n = Math.max(...runs.filter((m) => m.variant === v).map((m) => m.serverConnectionsMax ?? 0))
    return `${label(v)}: ${n}`
  })
  const cpu = variants.flatMap((v) => {
    const per = runs.flatMap((m) =>
      m.variant === v && m.backendCpuSeconds !== undefined && m.ops ? [(m.backendCpuSeconds * 1000) / m.ops] : []
    )
    return per.length === 0 ? [] : [`${label(v)} ${median(per)!.toFixed(3)}`]
  })
  return [
    `${workload.label}: the server's connections of the bench user, most sampled (every 100 ms) in a run: ` +
      `${most.join("; ")}.`,
    ...(cpu.length === 0 ? [] : [`${workload.label}: MariaDB's CPU s / 1k queries (median): ${cpu.join("; ")}.`])
  ]
}
