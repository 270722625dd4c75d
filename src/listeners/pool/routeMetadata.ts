// check-config's look at a route's pooling blocks (`metadata.pool`, `metadata.auth`). A route is not tied to one
// listener: with a mysql listener in the config, a block passes when the pools of either protocol can read it,
// PostgreSQL's (`pool` with `auth` in transaction mode) or MySQL's (`pool` alone: the mysql listener's own `auth`
// checks logins); without one, PostgreSQL's rules alone, so a PostgreSQL route missing its `auth` is named at once.
// The error is PostgreSQL's, which names the key.
import { ConfigError, isObj } from "../../config/fields.ts"
import { decodeMysqlPool } from "../mysql/pool/settings.ts"
import { checkRouteMetadata as checkPgRouteMetadata } from "../postgres/pool/settings.ts"

/** Throws a ConfigError naming the key (`routes.ID.metadata.pool.size`) when no protocol's pools can read it. */
export const checkRouteMetadata = (metadata: unknown, key: string, mysqlPools: boolean): void => {
  if (!isObj(metadata)) return
  try {
    checkPgRouteMetadata(metadata, key)
  } catch (pgError) {
    if (
      !mysqlPools ||
      !(pgError instanceof ConfigError) ||
      metadata.auth !== undefined ||
      metadata.pool === undefined
    ) {
      throw pgError
    }
    try {
      decodeMysqlPool(metadata.pool, `${key}.pool`)
    } catch {
      throw pgError
    }
  }
}
