// polyproxy in front of a spec's PostgreSQL with routes in transaction pooling mode (README "PostgreSQL connection
// pooling"): one postgres listener routing by database, the routes given by a resolver.

import type pg from "pg"
import { Resolver } from "../../src/services/Resolver.ts"
import type { PostgresServer } from "./backends/index.ts"
import { type CliProxy, startCliProxy } from "./cliProxy.ts"
import { eventually, startTestProxy, type TestProxy } from "./proxy.ts"

export interface PooledRoute {
  readonly endpoint: string
  readonly metadata: Readonly<Record<string, unknown>>
}

/**
 * A transaction-mode route to `db` with these `pool` keys; secrets are looked up as the superuser in the postgres
 * database, so the pooled database's backends are the pool's alone. `auth` overrides the lookup login's keys.
 */
export const pooledRoute = (
  db: PostgresServer,
  pool: Readonly<Record<string, unknown>>,
  auth: Readonly<Record<string, unknown>> = {}
): PooledRoute => ({
  endpoint: `127.0.0.1:${db.port}`,
  metadata: {
    pool: { mode: "transaction", ...pool },
    auth: { user: db.superuser, password: db.password, database: "postgres", ...auth }
  }
})

/**
 * A `polyproxy serve` config (startCliProxy) of `workers` processes, each with listener "postgres" routing `database`
 * to `db` in transaction mode with a pool of `size` (the lookup login as pooledRoute's), waiting for "workers ready".
 * `port`: the route's endpoint port, when something stands between the proxy and `db`.
 */
export const startPoolingCli = async (
  db: PostgresServer,
  database: string,
  size: number,
  workers = 2,
  port = db.port
): Promise<CliProxy> => {
  const cli = await startCliProxy(`workers: ${workers}
admin: { host: 127.0.0.1, port: 0 }
listeners:
  postgres: { host: 127.0.0.1, port: 0 }
routes:
  ${database}:
    endpoint: "127.0.0.1:${port}"
    metadata:
      pool: { mode: transaction, size: ${size} }
      auth: { user: ${db.superuser}, password: "${db.password}", database: postgres }
ssrf: { allow: ["127.0.0.0/8"] }
log: { format: json, connections: false }
`)
  await eventually(() => cli.output().includes('"event":"workers ready"'), 20_000)
  return cli
}

/** A proxy whose listener "postgres" (with `listener`'s keys added) routes each database to `routes[database]`. */
export const startPoolingProxy = (
  routes: Readonly<Record<string, PooledRoute>>,
  listener: Readonly<Record<string, unknown>> = {}
): Promise<TestProxy> =>
  startTestProxy(
    { listeners: { postgres: { host: "127.0.0.1", port: 0, ...listener } }, ssrf: { allow: ["127.0.0.0/8"] } },
    Resolver.layerAsync({ resolve: (id) => routes[id] ?? null })
  )

/**
 * Runs `f` while counting `database`'s client backends on the server through `monitor` every `everyMs`; resolves with
 * `f`'s result and the highest count seen (at least one sample is taken).
 */
export const whileSampling = async <A>(
  monitor: pg.Client,
  database: string,
  everyMs: number,
  f: () => Promise<A>
): Promise<{ result: A; max: number }> => {
  let max = 0
  let running = true
  const loop = (async () => {
    do {
      const r = await monitor.query<{ n: number }>(
        "select count(*)::int as n from pg_stat_activity where datname = $1 and backend_type = 'client backend'",
        [database]
      )
      max = Math.max(max, r.rows[0]!.n)
      await new Promise((r) => setTimeout(r, everyMs))
    } while (running)
  })()
  try {
    return { result: await f(), max }
  } finally {
    running = false
    await loop
  }
}
