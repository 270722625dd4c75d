// pgbench as the pg scenario (bench/pg/scenario.ts) drives it: the binary, its command line, its output, and a
// PostgreSQL that is quiet between runs.
import { existsSync } from "node:fs"
import { join } from "node:path"
import type pg from "pg"
import type { PostgresServer } from "../../spec/support/backends/postgres.ts"
import type { Workload } from "../support/interleave.ts"
import { pinnedCommand } from "../support/pin.ts"
import { runBounded, sleep } from "../support/process.ts"

export const DATABASE = "appdb"
export const PG_WORKLOADS = ["select-only", "tpcb-like"] as const
export type PgWorkload = (typeof PG_WORKLOADS)[number]

/**
 * A row of the pg scenario's tables. With `pool`, a transaction-pooling workload (bench/pg/pooled.ts): its own id,
 * its second ratio taken against PgBouncer in transaction mode instead of HAProxy, and its `direct` run at as many
 * clients as the pool has server connections (`directClients` there); `pinned`, the one with the pooler on a core of
 * its own (bench/support/pin.ts).
 */
export const pgWorkloadOf = (
  kind: PgWorkload,
  clients: number,
  pool?: { readonly size: number; readonly compareTo: string; readonly pinned?: boolean }
): Workload => ({
  id: `${pool ? "pooled-" : ""}${kind}-c${clients}${pool?.pinned ? "-pinned" : ""}`,
  label:
    `pgbench ${kind}, ${clients} client${clients > 1 ? "s" : ""}` +
    (pool ? `, transaction pooling (pool ${pool.size}; direct at ${pool.size} clients)` : "") +
    (pool?.pinned ? ", the pooler on a core of its own (PostgreSQL and pgbench on the other)" : ""),
  kind: "rate",
  unit: "TPS",
  displayDivisor: 1,
  cpuPer: 1000,
  cpuUnit: "CPU s / 1k tx",
  ...(pool ? { compareTo: pool.compareTo } : {})
})

/** Debian keeps the versioned binaries off PATH (/usr/bin/pgbench is a wrapper script): call the 15 one directly. */
export const pgbenchBin = (): string => {
  const candidates = [process.env.PG_BINDIR, "/usr/lib/postgresql/15/bin"].filter((d) => d !== undefined)
  for (const dir of candidates) if (existsSync(join(dir, "pgbench"))) return join(dir, "pgbench")
  return "pgbench"
}

export interface Target {
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

export const makePgbench = (server: PostgresServer, home: string) => {
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
    args: (t: Target, workload: PgWorkload, clients: number, seconds: number): string[] => [
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
    /** With `cpus`, pgbench runs pinned to them (bench/support/pin.ts). */
    run: async (args: string[], seconds: number, cpus?: string): Promise<PgbenchOutput> => {
      const [file, argv] = cpus === undefined ? [bin, args] : pinnedCommand(cpus, bin, args)
      const r = await runBounded(file, argv, { env, timeoutMs: (seconds + 60) * 1000 })
      const parsed = r.code === 0 ? parsePgbench(r.stdout) : undefined
      if (parsed === undefined) {
        const why = r.timedOut
          ? "timed out"
          : r.code === 0
            ? "no result in its output"
            : `exit code ${r.code}${r.signal ? `, signal ${r.signal}` : ""}`
        const tail = `${r.stdout}\n${r.stderr}`.trim().split("\n").slice(-8).join("\n")
        throw new Error(`pgbench ${args.join(" ")}: ${why}\n${tail}`)
      }
      return parsed
    }
  }
}

/** Client backends of the bench database still alive (a finished pgbench's backends exit asynchronously). */
export const waitForQuietServer = async (
  monitor: pg.Client,
  maxBackends: number,
  timeoutMs = 15_000
): Promise<boolean> => {
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
