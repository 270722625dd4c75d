// What the PostgreSQL pools show in /metrics and /admin/pools: the per-pool series every protocol's pools have
// (src/listeners/pool/poolMetrics.ts, here as `polyproxy_pg_pool_…`), and the series of the pooled logins.
import * as Metric from "effect/Metric"
import { poolSeries, registerRead } from "../../pool/poolMetrics.ts"
import type { SecretLookupStats } from "./secrets.ts"

export {
  type CountedPool,
  describePool,
  maxPoolSeries,
  type PoolCensus,
  PoolTally
} from "../../pool/poolMetrics.ts"

/** The per-pool series of the PostgreSQL pools, `polyproxy_pg_pool_…`. */
export const pgSeries = poolSeries("pg", "PostgreSQL")

const lookups = Metric.counter("polyproxy_pg_secret_lookups_total", {
  description: "Role secret lookups of pooled logins by result (hit: from memory; query: sent; failure: query failed)",
  incremental: true
})
const loginFailures = Metric.counter("polyproxy_pg_client_login_failures_total", {
  description: "Pooled clients refused by the proxy's authentication (wrong password, unknown role: 28P01)",
  incremental: true
})

/**
 * The series of a listener's pooled logins, registered with its first pooled client: secret lookups by result (read
 * from `stats` at scrape time) and client login failures (counted by the function returned).
 */
export const loginSeries = (listener: string, stats: () => SecretLookupStats | undefined): (() => void) => {
  const read = (pick: (s: SecretLookupStats) => number) => () => {
    const s = stats()
    return { count: s === undefined ? 0 : pick(s), incremental: true }
  }
  registerRead(
    lookups,
    { listener, result: "hit" },
    read((s) => s.hits)
  )
  registerRead(
    lookups,
    { listener, result: "query" },
    read((s) => s.queries)
  )
  registerRead(
    lookups,
    { listener, result: "failure" },
    read((s) => s.failures)
  )
  let failed = 0
  registerRead(loginFailures, { listener }, () => ({ count: failed, incremental: true }))
  return () => {
    failed++
  }
}
