// What the server-connection pools (PostgreSQL, MySQL) show in /metrics and /admin/pools. A pool counts in plain
// fields (PoolTally: a few increments per transaction, no Effect, no metric update); its series are registered once,
// with hooks that read those fields and the pool's census when /metrics is scraped. Each protocol has its own metric
// names (`polyproxy_pg_pool_…`, `polyproxy_mysql_pool_…`, made by `poolSeries`). Label sets ({listener, backend,
// database, user}) are bounded by the routes already; past `maxPoolSeries` per process (all protocols together),
// further pools share their listener's "other" set, as the per-resource metrics do.
import * as Context from "effect/Context"
import * as Metric from "effect/Metric"

/** Pools with their own label set, per process; the rest are summed under backend/database/user "other". */
export const maxPoolSeries = 1000

/** Upper bounds of the wait histogram in ms; the first (0) counts the clients served at once. */
const waitBounds = [0, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 120_000]

/** A pool's running totals, written on its data path. */
export class PoolTally {
  /** Server connections handed to a client (one per transaction, or per statement outside one). */
  transactions = 0
  /** Server connections that failed to open (dial, TLS or the server's refusal of the proxy's login). */
  openFailures = 0
  /** Waits per bucket of `waitBounds` (not cumulative); the last slot counts those over the last bound. */
  readonly waits = new Float64Array(waitBounds.length + 1)
  waitSumMs = 0

  /** A client got a server connection after `waitedMs` (0: at once). */
  granted(waitedMs: number): void {
    this.transactions++
    let i = 0
    if (waitedMs > 0) {
      this.waitSumMs += waitedMs
      while (i < waitBounds.length && waitedMs > waitBounds[i]!) i++
    }
    this.waits[i]!++
  }
}

/** A pool's counts now, beside its settings. */
export interface PoolCensus {
  /** Open or opening. */
  readonly open: number
  readonly opening: number
  readonly idle: number
  /** Given back while a cancel request to them is in flight, serving nobody until it ends (being_canceled). */
  readonly cancelling: number
  readonly waiting: number
  /** performance.now() at which the longest-waiting client started waiting; undefined: none waits. */
  readonly oldestWait: number | undefined
}

/** What the series and /admin/pools read of a pool. */
export interface CountedPool {
  /** The backend's "ip:port". */
  readonly key: string
  readonly database: string
  readonly user: string
  readonly settings: { readonly mode: string; readonly size: number }
  readonly tally: PoolTally
  census(): PoolCensus
}

/** One row of GET /admin/pools (with `listener` and `backend`, which the BackendPool service adds). */
export const describePool = (pool: CountedPool, census: PoolCensus): Readonly<Record<string, unknown>> => ({
  database: pool.database,
  user: pool.user,
  mode: pool.settings.mode,
  size: pool.settings.size,
  open: census.open,
  active: census.open - census.idle - census.opening - census.cancelling,
  idle: census.idle,
  opening: census.opening,
  cancelling: census.cancelling,
  waiting: census.waiting,
  maxWaitMs: census.oldestWait === undefined ? 0 : Math.round(performance.now() - census.oldestWait),
  transactions: pool.tally.transactions,
  openFailures: pool.tally.openFailures
})

const ctx = Context.empty()
const noUpdate = () => {}
/** Registers a series whose value `get` reads at scrape time. */
export const registerRead = <I, S>(metric: Metric.Metric<I, S>, attributes: Record<string, string>, get: () => S) =>
  Metric.registerUnsafe(Metric.withAttributes(metric, attributes), ctx, { get, update: noUpdate, modify: noUpdate })

/** The pools of one label set, and what pools no longer in it had counted (counters never go back). */
interface Series {
  readonly pools: Set<CountedPool>
  readonly gone: PoolTally
}

/** Label sets of their own in this process, every protocol's. */
let own = 0

const total = (s: Series, read: (t: PoolTally) => number): number => {
  let n = read(s.gone)
  for (const p of s.pools) n += read(p.tally)
  return n
}

const census = (s: Series, read: (c: PoolCensus) => number): number => {
  let n = 0
  for (const p of s.pools) n += read(p.census())
  return n
}

const histogram = (s: Series): Metric.HistogramState => {
  const buckets: Array<[number, number]> = []
  let count = 0
  waitBounds.forEach((le, i) => {
    count += total(s, (t) => t.waits[i]!)
    buckets.push([le, count])
  })
  count += total(s, (t) => t.waits[waitBounds.length]!)
  return { buckets, count, min: 0, max: 0, sum: total(s, (t) => t.waitSumMs) }
}

export interface PoolSeries {
  /** `pool` of the listener `listener` gets (or shares) its series, until `untrack`. */
  readonly track: (listener: string, pool: CountedPool) => void
  /** Its listener stopped: the series keeps what the pool counted and stops reading it. */
  readonly untrack: (pool: CountedPool) => void
}

/** The per-pool series of one protocol: `polyproxy_<prefix>_pool_…`, described as `<name>`'s ("PostgreSQL"). */
export const poolSeries = (prefix: string, name: string): PoolSeries => {
  const serverConnections = Metric.gauge(`polyproxy_${prefix}_pool_server_connections`, {
    description: `Server connections of a ${name} pool by state (active: held by a client; idle; opening; cancelling: given back, serving nobody until a cancel request in flight to it ends)`
  })
  const clientsWaiting = Metric.gauge(`polyproxy_${prefix}_pool_clients_waiting`, {
    description: `Clients of a ${name} pool waiting for a server connection`
  })
  const transactions = Metric.counter(`polyproxy_${prefix}_pool_transactions_total`, {
    description: `Server connections handed to clients of a ${name} pool (one per transaction)`,
    incremental: true
  })
  const openFailures = Metric.counter(`polyproxy_${prefix}_pool_server_open_failures_total`, {
    description: `Server connections of a ${name} pool that failed to open (dial, TLS or login)`,
    incremental: true
  })
  const waitMs = Metric.histogram(`polyproxy_${prefix}_pool_wait_duration_ms`, {
    description: "Time from a client's request for a server connection to its grant, in milliseconds",
    boundaries: waitBounds.slice(1)
  })

  const series = new Map<string, Series>()
  const seriesOf = new WeakMap<CountedPool, Series>()

  const newSeries = (labels: Record<string, string>): Series => {
    const s: Series = { pools: new Set(), gone: new PoolTally() }
    const states: ReadonlyArray<[string, (c: PoolCensus) => number]> = [
      ["active", (c) => c.open - c.idle - c.opening - c.cancelling],
      ["idle", (c) => c.idle],
      ["opening", (c) => c.opening],
      ["cancelling", (c) => c.cancelling]
    ]
    for (const [state, read] of states) {
      registerRead(serverConnections, { ...labels, state }, () => ({ value: census(s, read) }))
    }
    registerRead(clientsWaiting, labels, () => ({ value: census(s, (c) => c.waiting) }))
    registerRead(transactions, labels, () => ({ count: total(s, (t) => t.transactions), incremental: true }))
    registerRead(openFailures, labels, () => ({ count: total(s, (t) => t.openFailures), incremental: true }))
    registerRead(waitMs, labels, () => histogram(s))
    return s
  }

  return {
    track: (listener, pool) => {
      let labels = { listener, backend: pool.key, database: pool.database, user: pool.user }
      let key = JSON.stringify(labels)
      if (!series.has(key) && own >= maxPoolSeries) {
        labels = { listener, backend: "other", database: "other", user: "other" }
        key = JSON.stringify(labels)
      }
      let s = series.get(key)
      if (s === undefined) {
        if (labels.backend !== "other") own++
        series.set(key, (s = newSeries(labels)))
      }
      s.pools.add(pool)
      seriesOf.set(pool, s)
    },
    untrack: (pool) => {
      const s = seriesOf.get(pool)
      if (s === undefined || !s.pools.delete(pool)) return
      const t = pool.tally
      s.gone.transactions += t.transactions
      s.gone.openFailures += t.openFailures
      s.gone.waitSumMs += t.waitSumMs
      t.waits.forEach((n, i) => {
        s.gone.waits[i]! += n
      })
    }
  }
}
