// Every MySQL server-connection pool of one listener (src/listeners/pool/serverPools.ts): one pool per backend
// address and what a server connection must share with the client it serves: the user, the database, the character
// set, the TLS setting and the capability flags that change what commands and answers look like. Two clients that
// differ only in flags that shape the handshake (attributes, plugin auth…) share a pool.
import type * as Effect from "effect/Effect"
import { Capability } from "../../../codec/mysql/index.ts"
import type { VettedEndpoint } from "../../../domain/Endpoint.ts"
import type { Route } from "../../../domain/Route.ts"
import type { BackendPoolShape } from "../../../services/BackendPool.ts"
import { poolSeries } from "../../pool/poolMetrics.ts"
import { listenerPools, ServerPools, type ServerPoolsOptions } from "../../pool/serverPools.ts"
import { MysqlPool } from "./mysqlPool.ts"
import type { ProxyLogin } from "./serverConn.ts"
import type { MysqlPoolSettings } from "./settings.ts"

/** The flags a server connection must share with its client: they change commands, results or the server's limits. */
export const sessionKeyFlags =
  (Capability.FOUND_ROWS |
    Capability.LOCAL_FILES |
    Capability.IGNORE_SPACE |
    Capability.INTERACTIVE |
    Capability.MULTI_STATEMENTS |
    Capability.MULTI_RESULTS |
    Capability.PS_MULTI_RESULTS |
    Capability.SESSION_TRACK |
    Capability.DEPRECATE_EOF) >>>
  0

/** The part of a pool's key that `login` sets, the backend and TLS aside. */
export const loginKey = (login: ProxyLogin): string =>
  `${login.user}\0${login.database}\0${((login.flags & sessionKeyFlags) >>> 0).toString(16)}.${login.mariadbCapabilities.toString(16)}\0${login.characterSet}`

const series = poolSeries("mysql", "MySQL")

export type MysqlPoolsOptions = ServerPoolsOptions

export class MysqlPools extends ServerPools<MysqlPool> {
  /**
   * The pool of `login` at `target`, plain or TLS per the route's `metadata.tls` and the listener's `upstreamTls`, made
   * the first time. Takes the route's current `settings` and `login`'s stage1 for the connections it opens next.
   */
  get(target: VettedEndpoint, route: Route, login: ProxyLogin, settings: MysqlPoolSettings): MysqlPool {
    const pool = this.poolOf(
      target,
      route,
      loginKey(login),
      (conn) => new MysqlPool(target, login, settings, { breaker: this.breaker, conn, log: this.options.log })
    )
    pool.settings = settings
    pool.useLogin(login)
    return pool
  }
}

/** The pools of the listener `owner` (its name) in `backendPool`. */
export const mysqlPools = (backendPool: BackendPoolShape, owner: string, options: MysqlPoolsOptions): MysqlPools =>
  new MysqlPools(backendPool.group<MysqlPool>(owner), options, series)

/** The same from the caller's services (the BackendPool service, or a private one closed with the pools). */
export const listenerMysqlPools = (owner: string, options: MysqlPoolsOptions): Effect.Effect<MysqlPools> =>
  listenerPools<MysqlPool, MysqlPools>(owner, (group, onClose) => new MysqlPools(group, options, series, onClose))
