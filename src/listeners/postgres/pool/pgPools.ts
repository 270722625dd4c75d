// Every PostgreSQL server-connection pool of one listener: its group of the BackendPool service (one sweep timer, the
// dashboard's counts, the backends' circuit breakers), one pool per (backend address, database, user) and TLS setting.
import * as net from "node:net"
import * as Effect from "effect/Effect"
import type { VettedEndpoint } from "../../../domain/Endpoint.ts"
import type { Route } from "../../../domain/Route.ts"
import { type BackendPoolShape, backendPoolOrOwn, type PoolGroup } from "../../../services/BackendPool.ts"
import type { LogShape } from "../../../services/Log.ts"
import { type ClientTlsOptions, upstreamTlsFor } from "../../tls.ts"
import { PgPool } from "./pgPool.ts"
import { trackPool, untrackPool } from "./poolMetrics.ts"
import { type ServerLogin, serverConnOptions, type UpstreamTls } from "./serverConn.ts"
import type { PoolSettings } from "./settings.ts"

export interface PgPoolsOptions {
  /** `timeouts.connect` in ms (a route's `timeout` does not apply: pools are shared by routes). 0: the kernel's. */
  readonly connectTimeoutMs: number
  /** From the TCP connect to the server's ReadyForQuery (TLS, startup, login): `timeouts.handshake` in ms. */
  readonly loginTimeoutMs: number
  /** The listener's `upstreamTls`; a route's `metadata.tls` overrides it. */
  readonly upstreamTls: ClientTlsOptions | undefined
  readonly log?: LogShape | undefined
}

export class PgPools {
  private readonly group: PoolGroup<PgPool>
  private readonly options: PgPoolsOptions
  private readonly onClose: (() => void) | undefined
  /** Every pool made, for their series in /metrics (poolMetrics.ts). */
  private readonly made: Array<PgPool> = []

  /** `onClose`: also run at `close` (a private BackendPool the listener made for itself). */
  constructor(group: PoolGroup<PgPool>, options: PgPoolsOptions, onClose?: () => void) {
    this.group = group
    this.options = options
    this.onClose = onClose
  }

  /**
   * The pool of `login`'s database and user at `target`, plain or TLS per the route's `metadata.tls` and the
   * listener's `upstreamTls`, made the first time (its startup parameters are that first login's). Takes the route's
   * current `settings` and `login`'s keys or secret, when it has them, for the connections it opens next.
   */
  get(target: VettedEndpoint, route: Route, login: ServerLogin, settings: PoolSettings): PgPool {
    const t = upstreamTlsFor(route, this.options.upstreamTls)
    const tls: UpstreamTls | undefined =
      t === undefined
        ? undefined
        : { ...t, servername: t.servername ?? (net.isIP(target.host) ? undefined : target.host) }
    const variant =
      tls === undefined
        ? `${login.database}\0${login.user}`
        : `${login.database}\0${login.user}\0tls|${tls.servername ?? ""}|${tls.rejectUnauthorized ? 1 : 0}|${tls.minVersion ?? ""}|${String(tls.ca ?? "")}`
    const pool = this.group.get(target, variant, () => {
      const conn = serverConnOptions({ ...this.options, tls })
      const made = new PgPool(target, login, settings, { breaker: this.group.breaker, conn, log: this.options.log })
      trackPool(this.group.owner, made)
      this.made.push(made)
      return made
    })
    pool.settings = settings
    pool.useCredentials(login)
    return pool
  }

  /** The listener stops: idle server connections close, busy ones when their clients give them back. */
  close(): void {
    this.group.close()
    for (const pool of this.made) untrackPool(pool)
    this.made.length = 0
    this.onClose?.()
  }
}

/** The pools of the listener `owner` (its name) in `backendPool`. */
export const pgPools = (backendPool: BackendPoolShape, owner: string, options: PgPoolsOptions): PgPools =>
  new PgPools(backendPool.group<PgPool>(owner), options)

/**
 * The same from the caller's services: the BackendPool service (and so the CircuitBreaker it consults); an embedder
 * whose layers leave it out gets a private one, closed with the pools.
 */
export const listenerPgPools = (owner: string, options: PgPoolsOptions): Effect.Effect<PgPools> =>
  Effect.map(
    backendPoolOrOwn,
    ({ pool, owned }) => new PgPools(pool.group<PgPool>(owner), options, owned ? pool.closeAll : undefined)
  )
