// Every PostgreSQL server-connection pool of one listener (src/listeners/pool/serverPools.ts): one pool per (backend
// address, database, user) and TLS setting.
import type * as Effect from "effect/Effect"
import type { VettedEndpoint } from "../../../domain/Endpoint.ts"
import type { Route } from "../../../domain/Route.ts"
import type { BackendPoolShape } from "../../../services/BackendPool.ts"
import { listenerPools, ServerPools, type ServerPoolsOptions } from "../../pool/serverPools.ts"
import { PgPool } from "./pgPool.ts"
import { pgSeries } from "./poolMetrics.ts"
import type { ServerLogin } from "./serverConn.ts"
import type { PoolSettings } from "./settings.ts"

export type PgPoolsOptions = ServerPoolsOptions

export class PgPools extends ServerPools<PgPool> {
  /**
   * The pool of `login`'s database and user at `target`, plain or TLS per the route's `metadata.tls` and the
   * listener's `upstreamTls`, made the first time (its startup parameters are that first login's). Takes the route's
   * current `settings` and `login`'s keys or secret, when it has them, for the connections it opens next.
   */
  get(target: VettedEndpoint, route: Route, login: ServerLogin, settings: PoolSettings): PgPool {
    const pool = this.poolOf(
      target,
      route,
      `${login.database}\0${login.user}`,
      (conn) => new PgPool(target, login, settings, { breaker: this.breaker, conn, log: this.options.log })
    )
    pool.settings = settings
    pool.useCredentials(login)
    return pool
  }
}

/** The pools of the listener `owner` (its name) in `backendPool`. */
export const pgPools = (backendPool: BackendPoolShape, owner: string, options: PgPoolsOptions): PgPools =>
  new PgPools(backendPool.group<PgPool>(owner), options, pgSeries)

/** The same from the caller's services (the BackendPool service, or a private one closed with the pools). */
export const listenerPgPools = (owner: string, options: PgPoolsOptions): Effect.Effect<PgPools> =>
  listenerPools<PgPool, PgPools>(owner, (group, onClose) => new PgPools(group, options, pgSeries, onClose))
