// The connections the proxy keeps open to its backends, as one service: every pool of every owner (an HTTP
// listener's keep-alive pools today; the PostgreSQL server-connection pools later), keyed by vetted backend address,
// swept by one timer, counted for the dashboard, closed together. The service knows the CircuitBreaker, so a pool of
// any kind consults the one breaker of its backend address (`breakerKey`) before it dials.
// Its owners ask for a group once, when they start, and keep the plain objects it hands out: no Effect per request.
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { breakerKey, type VettedEndpoint } from "../domain/Endpoint.ts"
import { CircuitBreaker, type CircuitBreakerShape } from "./CircuitBreaker.ts"

/** The part of the CircuitBreaker a pool uses: may it dial, and how did the dial go. */
export type BreakerHooks = Pick<CircuitBreakerShape, "admit" | "success" | "failure">

/** Connections open (or opening) to one backend, idle among them, and requests queued for one. */
export interface PoolCounts {
  readonly open: number
  readonly idle: number
  readonly waiting: number
}

/** What a pool of any kind does for the service. */
export interface PooledBackend {
  readonly counts: () => PoolCounts
  /** About once a second (`now`: performance.now()): close connections idle too long, fail requests queued too long. */
  readonly sweep: (now: number) => void
  /** Closes the idle connections (its owner stops; busy ones finish what they carry). */
  readonly closeIdle: () => void
  /** What /admin/pools shows of it (a PostgreSQL pool: its database, user, settings, counts); none: not listed. */
  readonly describe?: () => Readonly<Record<string, unknown>>
}

/** One row per owner and backend address (the pools of its variants added up). */
export interface PoolStats extends PoolCounts {
  /** The backend's address, "ip:port": the same key as its circuit breaker's. */
  readonly backend: string
  readonly owner: string
}

/** One pool that describes itself, for /admin/pools. */
export interface PoolDetail {
  readonly owner: string
  readonly backend: string
  readonly detail: Readonly<Record<string, unknown>>
}

/** The pools of one owner, e.g. one HTTP listener (its own timeouts and limits): made at its start, closed with it. */
export interface PoolGroup<P extends PooledBackend> {
  readonly owner: string
  /** The breaker every pool of the group consults before it dials; undefined: dial always. */
  readonly breaker: BreakerHooks | undefined
  /**
   * The pool of `target` and `variant` (what else sets its connections apart, e.g. the TLS settings), made by
   * `create` the first time. Call it per route lookup, not per request: keep the pool it returns.
   */
  readonly get: (target: VettedEndpoint, variant: string, create: () => P) => P
  /** Closes the group's idle connections and forgets its pools. */
  readonly close: () => void
}

export interface BackendPoolShape {
  readonly group: <P extends PooledBackend>(owner: string) => PoolGroup<P>
  /** What every pool holds now, for /admin/stats and the dashboard. */
  readonly stats: () => ReadonlyArray<PoolStats>
  /** Every pool that describes itself, one row each (not added up), for /admin/pools. */
  readonly details: () => ReadonlyArray<PoolDetail>
  /** Closes every group (shutdown). */
  readonly closeAll: () => void
}

export interface BackendPoolOptions {
  readonly breaker?: BreakerHooks | undefined
  /** How often pools are swept, in ms (default 1000); 0 = never (a test sweeps by hand). */
  readonly sweepMs?: number | undefined
}

interface Entry {
  readonly backend: string
  readonly pool: PooledBackend
}

class Group<P extends PooledBackend> implements PoolGroup<P> {
  readonly owner: string
  readonly breaker: BreakerHooks | undefined
  readonly pools = new Map<string, Entry>()
  private readonly groups: Set<Group<PooledBackend>>

  constructor(owner: string, breaker: BreakerHooks | undefined, groups: Set<Group<PooledBackend>>) {
    this.owner = owner
    this.breaker = breaker
    this.groups = groups
  }

  get(target: VettedEndpoint, variant: string, create: () => P): P {
    const backend = breakerKey(target)
    const key = variant === "" ? backend : `${backend}|${variant}`
    const hit = this.pools.get(key)
    if (hit !== undefined) return hit.pool as P
    const pool = create()
    this.pools.set(key, { backend, pool })
    return pool
  }

  close(): void {
    this.groups.delete(this as Group<PooledBackend>)
    for (const e of this.pools.values()) e.pool.closeIdle()
    this.pools.clear()
  }
}

export const makeBackendPool = (options: BackendPoolOptions = {}): BackendPoolShape => {
  const groups = new Set<Group<PooledBackend>>()
  const sweepMs = options.sweepMs ?? 1_000
  let timer: NodeJS.Timeout | undefined
  const sweep = () => {
    const now = performance.now()
    for (const g of groups) for (const e of g.pools.values()) e.pool.sweep(now)
  }
  return {
    group: <P extends PooledBackend>(owner: string) => {
      const g = new Group<P>(owner, options.breaker, groups)
      groups.add(g as Group<PooledBackend>)
      // One timer for every pool, made with the first group (not one per connection, nor per listener).
      if (timer === undefined && sweepMs > 0) {
        timer = setInterval(sweep, sweepMs)
        timer.unref()
      }
      return g
    },
    stats: () => {
      const rows = new Map<string, { backend: string; owner: string; open: number; idle: number; waiting: number }>()
      for (const g of groups) {
        for (const e of g.pools.values()) {
          const c = e.pool.counts()
          const key = `${g.owner}\n${e.backend}`
          const row = rows.get(key)
          if (row === undefined) rows.set(key, { backend: e.backend, owner: g.owner, ...c })
          else {
            row.open += c.open
            row.idle += c.idle
            row.waiting += c.waiting
          }
        }
      }
      return [...rows.values()]
    },
    details: () => {
      const rows: Array<PoolDetail> = []
      for (const g of groups) {
        for (const e of g.pools.values()) {
          if (e.pool.describe !== undefined)
            rows.push({ owner: g.owner, backend: e.backend, detail: e.pool.describe() })
        }
      }
      return rows
    },
    closeAll: () => {
      clearInterval(timer)
      timer = undefined
      for (const g of [...groups]) g.close()
    }
  }
}

export class BackendPool extends Context.Service<BackendPool, BackendPoolShape>()("polyproxy/BackendPool") {
  static readonly make = makeBackendPool

  /** The default: pools that consult the CircuitBreaker; closed with the layer. */
  static readonly layer = (
    options: Omit<BackendPoolOptions, "breaker"> = {}
  ): Layer.Layer<BackendPool, never, CircuitBreaker> =>
    Layer.effect(
      BackendPool,
      Effect.acquireRelease(
        Effect.map(Effect.service(CircuitBreaker), (breaker) => makeBackendPool({ ...options, breaker })),
        (pool) => Effect.sync(pool.closeAll)
      )
    )

  /** For specs of other modules: no breaker (every dial is attempted) and no sweep timer. */
  static readonly layerTest = Layer.effect(
    BackendPool,
    Effect.acquireRelease(
      Effect.sync(() => makeBackendPool({ sweepMs: 0 })),
      (pool) => Effect.sync(pool.closeAll)
    )
  )
}

/**
 * The BackendPool of `context`'s caller, or a private one (with the CircuitBreaker if there is one) for an embedder
 * that builds its own layers without it; `owned`: the caller closes the private one itself.
 */
export const backendPoolOrOwn: Effect.Effect<{ readonly pool: BackendPoolShape; readonly owned: boolean }> = Effect.gen(
  function* () {
    const given = yield* Effect.serviceOption(BackendPool)
    if (Option.isSome(given)) return { pool: given.value, owned: false }
    const breaker = yield* Effect.serviceOption(CircuitBreaker)
    return { pool: makeBackendPool({ breaker: Option.getOrUndefined(breaker) }), owned: true }
  }
)
