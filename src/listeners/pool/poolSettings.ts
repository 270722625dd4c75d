// The `pool` keys every protocol's server-connection pools read from a route's metadata (size, minIdle, idleTimeout,
// lifetime, maxWait, maxWaiting), with PgBouncer's defaults; each protocol adds its own keys (settings.ts beside its
// pool) and picks the modes it has.
import { ConfigError, int, type Obj, seconds } from "../../config/fields.ts"
import type { Route } from "../../domain/Route.ts"

/** The settings every pool reads (the protocol's own settings add to them). */
export interface PoolSizing {
  readonly mode: string
  /** Server connections per pool (backend, database, user, and what else its protocol keys it by); 0: no cap. */
  readonly size: number
  /** Server connections kept open even when idle (at most `size`). */
  readonly minIdle: number
  /** Seconds a server connection may stay idle before it is closed; 0: never. */
  readonly idleTimeout: number
  /** Seconds after which an idle server connection is closed however useful; 0: after its first use. */
  readonly lifetime: number
  /** Seconds a client may wait for a server connection; 0: no limit. */
  readonly maxWait: number
  /** Clients that may wait for a server connection of one pool at once; more are refused at once. */
  readonly maxWaiting: number
}

export type Sizing = Omit<PoolSizing, "mode">

/** The keys decoded here, `mode` included (its values are the protocol's). */
export const sizingKeys = ["mode", "size", "minIdle", "idleTimeout", "lifetime", "maxWait", "maxWaiting"]

/** PgBouncer's: default_pool_size, min_pool_size, server_idle_timeout, server_lifetime, query_wait_timeout. */
export const sizingDefaults: Sizing = {
  size: 20,
  minIdle: 0,
  idleTimeout: 600,
  lifetime: 3600,
  maxWait: 120,
  maxWaiting: 10_000
}

/**
 * The sizing keys of the `pool` mapping `o` (its key path `key`), `defaults` for those left out. `minSize` 0 lets
 * `size: 0` mean "no cap".
 */
export const decodeSizing = (o: Obj, key: string, defaults: Sizing, minSize = 1): Sizing => {
  const size = int(o.size, `${key}.size`, minSize, 10_000, defaults.size)
  const minIdle = int(o.minIdle, `${key}.minIdle`, 0, 10_000, defaults.minIdle)
  if (size > 0 && minIdle > size) throw new ConfigError(`${key}.minIdle`, `${minIdle} is more than pool.size (${size})`)
  return {
    size,
    minIdle,
    idleTimeout: seconds(o.idleTimeout, `${key}.idleTimeout`, defaults.idleTimeout),
    lifetime: seconds(o.lifetime, `${key}.lifetime`, defaults.lifetime),
    maxWait: seconds(o.maxWait, `${key}.maxWait`, defaults.maxWait),
    maxWaiting: int(o.maxWaiting, `${key}.maxWaiting`, 1, 10_000_000, defaults.maxWaiting)
  }
}

/**
 * `decode` of a route's metadata, run once per Route object (the listeners read routes from any resolver, per client
 * connection); a ConfigError becomes a string saying what is wrong, for the log (the client hears only that the
 * route is unavailable).
 */
export const parsedPerRoute = <A>(decode: (metadata: Readonly<Obj>) => A): ((route: Route) => A | string) => {
  const parsed = new WeakMap<Route, A | string>()
  return (route) => {
    if (parsed.has(route)) return parsed.get(route) as A | string
    let settings: A | string
    try {
      settings = decode(route.metadata)
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e
      settings = `route ${route.resourceId}: ${e.message}`
    }
    parsed.set(route, settings)
    return settings
  }
}
