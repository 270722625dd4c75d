// The bounds of the per-pool series (poolMetrics.ts) and the cluster's merge of /admin/pools (admin/pools.ts), which
// the conformance spec cannot reach with one PostgreSQL: more pools than `maxPoolSeries` share their listener's
// "other" label set, a stopped listener's counts stay in its series, and the workers' rows of one pool add up. No
// server is needed: a pool dials only when a client asks it for a connection.
import { describe, expect, it } from "vitest"
import { mergePools } from "../../../src/admin/pools.ts"
import type { Route } from "../../../src/domain/Route.ts"
import { pgPools } from "../../../src/listeners/postgres/pool/pgPools.ts"
import { maxPoolSeries } from "../../../src/listeners/postgres/pool/poolMetrics.ts"
import { poolDefaults } from "../../../src/listeners/postgres/pool/settings.ts"
import { makeBackendPool } from "../../../src/services/BackendPool.ts"
import { prometheusText } from "../../../src/services/prometheus.ts"

const target = { host: "127.0.0.1", port: 5999, ip: "127.0.0.1", family: 4 } as const
const route: Route = { resourceId: "db", endpoint: { host: "127.0.0.1", port: 5999 }, metadata: {} }
const settings = { ...poolDefaults, mode: "transaction" as const, size: 3 }

const series = (listener: string, name: string) =>
  prometheusText()
    .split("\n")
    .filter((l) => l.startsWith(`${name}{`) && l.includes(`listener="${listener}"`))

/** The pools of a listener named `owner`, in a BackendPool of their own. */
const listenerPools = (owner: string) => {
  const backendPool = makeBackendPool({ sweepMs: 0 })
  const options = { connectTimeoutMs: 1000, loginTimeoutMs: 1000, upstreamTls: undefined }
  return { backendPool, pools: pgPools(backendPool, owner, options) }
}

describe("per-pool series", () => {
  it("keeps a stopped listener's transactions in its series", () => {
    const { pools } = listenerPools("stopping")
    const pool = pools.get(target, route, { user: "app", database: "db", params: new Map() }, settings)
    pool.tally.granted(0)
    pool.tally.granted(30)
    const line = () => series("stopping", "polyproxy_pg_pool_transactions_total")
    expect(line()).toEqual([
      'polyproxy_pg_pool_transactions_total{listener="stopping",backend="127.0.0.1:5999",database="db",user="app"} 2'
    ])
    pools.close()
    expect(line()[0]).toMatch(/ 2$/)
    expect(series("stopping", "polyproxy_pg_pool_wait_duration_ms_sum")[0]).toMatch(/ 30$/)
  })

  // Last: the pools past the cap fill this process's label sets for the tests after it.
  it("gives the first maxPoolSeries pools their own labels, the rest one 'other' set per listener", () => {
    const { backendPool, pools } = listenerPools("capped")
    for (let i = 0; i < maxPoolSeries + 5; i++) {
      pools.get(target, route, { user: `role${i}`, database: "db", params: new Map() }, settings)
    }
    // The cap is per process: the label sets of every listener (the spec above took one) count.
    const own = prometheusText()
      .split("\n")
      .filter((l) => l.startsWith("polyproxy_pg_pool_clients_waiting{") && !l.includes('backend="other"'))
    expect(own).toHaveLength(maxPoolSeries)
    const waiting = series("capped", "polyproxy_pg_pool_clients_waiting")
    expect(waiting).toHaveLength(maxPoolSeries)
    expect(waiting.filter((l) => l.includes('user="other"'))).toEqual([
      'polyproxy_pg_pool_clients_waiting{listener="capped",backend="other",database="other",user="other"} 0'
    ])
    // /admin/pools lists every pool, capped or not.
    expect(backendPool.details()).toHaveLength(maxPoolSeries + 5)
    pools.close()
    expect(backendPool.details()).toHaveLength(0)
  })
})

describe("mergePools (workers: N)", () => {
  it("adds the workers' rows of one pool up, keeps its settings, and takes the longest wait", () => {
    const row = (open: number, waiting: number, maxWaitMs: number, user = "app") => ({
      listener: "postgres",
      backend: "10.0.0.5:5432",
      database: "db",
      user,
      mode: "transaction",
      size: 10,
      open,
      waiting,
      maxWaitMs,
      transactions: open * 100
    })
    const merged = mergePools([[row(3, 1, 40), row(1, 0, 0, "other")], [row(5, 2, 25)], { error: "starting" }])
    expect(merged).toEqual([
      { ...row(8, 3, 40), transactions: 800, workers: 2 },
      { ...row(1, 0, 0, "other"), workers: 1 }
    ])
  })
})
