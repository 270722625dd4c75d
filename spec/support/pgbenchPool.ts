// pgbench (bench/pg/pgbench.ts) through polyproxy in transaction pooling mode: a PostgreSQL holding pgbench's tables
// (scale 1), a proxy pooling that database with a pool of `size`, and a superuser connection to watch the server with.
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type pg from "pg"
import { DATABASE, makePgbench } from "../../bench/pg/pgbench.ts"
import { type PostgresOptions, type PostgresServer, startPostgres } from "./backends/index.ts"
import { superuserClient } from "./pgAdmin.ts"
import { pooledRoute, startPoolingProxy } from "./pgPooling.ts"
import type { TestProxy } from "./proxy.ts"

export interface PgbenchPool {
  readonly db: PostgresServer
  readonly proxy: TestProxy
  /** A direct superuser connection, in the postgres database (not one of the pooled database's backends). */
  readonly monitor: pg.Client
  /** pgbench's HOME, where a spec may write its scripts. */
  readonly home: string
  readonly pgbench: ReturnType<typeof makePgbench>
  readonly stop: () => Promise<void>
}

export const startPgbenchPool = async (size: number, postgres: PostgresOptions = {}): Promise<PgbenchPool> => {
  const db = await startPostgres({ ...postgres, databases: [DATABASE] })
  const home = mkdtempSync(join(tmpdir(), "pgbench-"))
  let monitor: pg.Client | undefined
  let proxy: TestProxy | undefined
  const stop = async () => {
    await proxy?.stop()
    await monitor?.end()
    await db.stop()
    rmSync(home, { recursive: true, force: true })
  }
  try {
    const pgbench = makePgbench(db, home)
    await pgbench.init(1)
    monitor = await superuserClient(db, "postgres")
    proxy = await startPoolingProxy({ [DATABASE]: pooledRoute(db, { size }) })
    return { db, proxy, monitor, home, pgbench, stop }
  } catch (error) {
    await stop()
    throw error
  }
}
