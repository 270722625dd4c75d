// Every server-connection pool of one listener, whatever the protocol: its group of the BackendPool service (one sweep
// timer, the dashboard's counts, the backends' circuit breakers), one pool per backend address, TLS setting and what
// the protocol keys it by (pgPools.ts, mysqlPools.ts), each pool's series in /metrics while the listener runs.
import * as Effect from "effect/Effect"
import type { VettedEndpoint } from "../../domain/Endpoint.ts"
import type { Route } from "../../domain/Route.ts"
import { backendPoolOrOwn, type PooledBackend, type PoolGroup } from "../../services/BackendPool.ts"
import type { LogShape } from "../../services/Log.ts"
import type { ProtocolContext } from "../ProtocolContext.ts"
import type { ClientTlsOptions } from "../tls.ts"
import type { CountedPool, PoolSeries } from "./poolMetrics.ts"
import { poolTls, type ServerConnOptions, serverConnOptions } from "./serverOptions.ts"

export interface ServerPoolsOptions {
  /** `timeouts.connect` in ms (a route's `timeout` does not apply: pools are shared by routes). 0: the kernel's. */
  readonly connectTimeoutMs: number
  /** From the TCP connect to the end of the login (TLS, the login), and a reset: `timeouts.handshake` in ms. */
  readonly loginTimeoutMs: number
  /** The listener's `upstreamTls`; a route's `metadata.tls` overrides it. */
  readonly upstreamTls: ClientTlsOptions | undefined
  readonly log?: LogShape | undefined
}

/**
 * A listener's pool options from its config: `timeouts.connect`, the login bounded by `timeouts.handshake` or, with no
 * handshake limit, by `serverLoginSeconds` (what the server itself would wait: PostgreSQL's authentication_timeout,
 * MariaDB's connect_timeout), its `upstreamTls`.
 */
export const serverPoolsOptions = (
  ctx: ProtocolContext,
  log: LogShape,
  serverLoginSeconds: number
): ServerPoolsOptions => {
  const { connect, handshake } = ctx.config.timeouts
  return {
    connectTimeoutMs: connect * 1000,
    loginTimeoutMs: (handshake > 0 ? handshake : serverLoginSeconds) * 1000,
    upstreamTls: ctx.upstreamTls,
    log
  }
}

export class ServerPools<P extends PooledBackend & CountedPool> {
  protected readonly options: ServerPoolsOptions
  private readonly group: PoolGroup<P>
  private readonly series: PoolSeries
  private readonly onClose: (() => void) | undefined
  /** Every pool made, for their series in /metrics. */
  private readonly made: Array<P> = []

  /** `onClose`: also run at `close` (a private BackendPool the listener made for itself). */
  constructor(group: PoolGroup<P>, options: ServerPoolsOptions, series: PoolSeries, onClose?: () => void) {
    this.group = group
    this.options = options
    this.series = series
    this.onClose = onClose
  }

  /** The group's breaker, for the pools `make` creates. */
  protected get breaker() {
    return this.group.breaker
  }

  /**
   * The pool of `variant` (the protocol's key) at `target`, plain or TLS per the route's `metadata.tls` and the
   * listener's `upstreamTls`, made by `make` the first time.
   */
  protected poolOf(target: VettedEndpoint, route: Route, variant: string, make: (conn: ServerConnOptions) => P): P {
    const { tls, key } = poolTls(route, this.options.upstreamTls, target)
    return this.group.get(target, key === "" ? variant : `${variant}\0${key}`, () => {
      const made = make(serverConnOptions({ ...this.options, tls }))
      this.series.track(this.group.owner, made)
      this.made.push(made)
      return made
    })
  }

  /** The listener stops: idle server connections close, busy ones when their clients give them back. */
  close(): void {
    this.group.close()
    for (const pool of this.made) this.series.untrack(pool)
    this.made.length = 0
    this.onClose?.()
  }
}

/**
 * A listener's pools (`make`s) from the caller's services: the BackendPool service (and so the CircuitBreaker it
 * consults); an embedder whose layers leave it out gets a private one, closed with the pools (`onClose`).
 */
export const listenerPools = <P extends PooledBackend, T>(
  owner: string,
  make: (group: PoolGroup<P>, onClose: (() => void) | undefined) => T
): Effect.Effect<T> =>
  Effect.map(backendPoolOrOwn, ({ pool, owned }) => make(pool.group<P>(owner), owned ? pool.closeAll : undefined))
