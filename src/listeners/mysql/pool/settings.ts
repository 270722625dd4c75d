// A route's `metadata.pool` for the MySQL listener's logins checked by the proxy: how the route's server connections
// are pooled. The keys and defaults are PostgreSQL's (src/listeners/pool/poolSettings.ts, PgBouncer's numbers) with
// one difference: the mode. Every client of such a listener is served from a pool; without `pool` (or with mode
// `session`) each client holds one server connection for its whole session, reset with COM_RESET_CONNECTION and kept
// for the next client, so `size` defaults to 0 there: no cap, as many server connections as clients, the same load on
// the server as without the proxy. Mode `transaction` multiplexes: `size` defaults to 20.
// No `auth` block: the listener's own `auth` says how logins are checked.
import { type Obj, object, oneOf } from "../../../config/fields.ts"
import type { Route } from "../../../domain/Route.ts"
import { decodeSizing, parsedPerRoute, sizingDefaults, sizingKeys } from "../../pool/poolSettings.ts"
import type { PoolSizing } from "../../pool/serverPool.ts"

export type MysqlPoolMode = "session" | "transaction"

export interface MysqlPoolSettings extends PoolSizing {
  /** session: one server connection per client, reset and reused after it (default); transaction: multiplexed. */
  readonly mode: MysqlPoolMode
}

/** Without `pool`: session mode, no cap. */
export const mysqlSessionDefaults: MysqlPoolSettings = Object.freeze({ mode: "session", ...sizingDefaults, size: 0 })

export const mysqlTransactionDefaults: MysqlPoolSettings = Object.freeze({ mode: "transaction", ...sizingDefaults })

/** `pool` of a route's metadata (its key path `key`), or throws a ConfigError naming the key. */
export const decodeMysqlPool = (v: unknown, key: string): MysqlPoolSettings => {
  const o: Obj = object(v, key, sizingKeys)
  const mode = oneOf(o.mode, `${key}.mode`, ["session", "transaction"] as const, "session")
  const defaults = mode === "session" ? mysqlSessionDefaults : mysqlTransactionDefaults
  return { mode, ...decodeSizing(o, key, defaults, 0) }
}

const parsed = parsedPerRoute((metadata) => decodeMysqlPool(metadata.pool, "metadata.pool"))

/**
 * The pooling settings of `route` for a listener that checks logins itself; a string saying what is wrong with its
 * metadata (for the log; the client hears only that the route is unavailable). Parsed once per Route object.
 */
export const mysqlPoolSettingsOf = (route: Route): MysqlPoolSettings | string =>
  route.metadata.pool === undefined ? mysqlSessionDefaults : parsed(route)
