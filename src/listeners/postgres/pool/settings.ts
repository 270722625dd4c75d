// A route's `metadata.pool` and `metadata.auth`: how the proxy pools the route's PostgreSQL server connections and
// which login it looks client secrets up with. Defaults are PgBouncer's, so a PgBouncer user reads the same numbers:
//   pool.size        default_pool_size     20
//   pool.minIdle     min_pool_size         0
//   pool.idleTimeout server_idle_timeout   600 s (0: never closed for idleness)
//   pool.lifetime    server_lifetime       3600 s (0: PgBouncer's "used only once, then closed")
//   pool.maxWait     query_wait_timeout    120 s (0: wait without limit)
//   pool.resetQuery  server_reset_query    DISCARD ALL (session mode only; "" sends none)
//   pool.maxPreparedStatements  max_prepared_statements  200 (0: named prepared statements refused)
//   pool.ignoreStartupParameters ignore_startup_parameters ["extra_float_digits"] (PgBouncer's: none; see below)
//   pool.deferBegin  (PgCat, PgDog)        true: a standalone BEGIN is answered and sent with the next message
//   auth.query       auth_query            PgBouncer's current default (pg_authid, rolvaliduntil, rolcanlogin)
//   auth.database    auth_dbname           the client's database
// The same decoder serves the config check (a static route's bad block fails `check-config`) and the listener, which
// reads routes from any resolver: it parses once per Route object, since it runs per client connection.
import { bool, ConfigError, int, isObj, type Obj, object, oneOf, seconds, show, str } from "../../../config/fields.ts"
import type { Route } from "../../../domain/Route.ts"
import { decodeSizing, parsedPerRoute, sizingDefaults, sizingKeys } from "../../pool/poolSettings.ts"
import type { PoolSizing } from "../../pool/serverPool.ts"
import { trackedIndex } from "./tracked.ts"

export type PoolMode = "session" | "transaction"

export interface PoolSettings extends PoolSizing {
  /** session: one server connection per client, the plain relay (default); transaction: PgBouncer's transaction pooling. */
  readonly mode: PoolMode
  /** Sent before a server connection goes to another client in session mode; "": none. */
  readonly resetQuery: string
  /**
   * Protocol-level named prepared statements a client may hold, and a server connection keeps prepared (the least
   * recently used closed past it); 0: named statements are refused (0A000).
   */
  readonly maxPreparedStatements: number
  /**
   * Startup parameters a client may send that the proxy accepts and drops (never sent to a server connection); any
   * other untracked one is refused (`unsupported startup parameter`). Matched case-insensitively, as PostgreSQL does.
   */
  readonly ignoreStartupParameters: ReadonlyArray<string>
  /**
   * A client's standalone BEGIN is answered by the proxy and sent to the server connection its next message takes
   * (deferredBegin.ts); false: it takes a connection itself, as in PgBouncer.
   */
  readonly deferBegin: boolean
}

export interface AuthSettings {
  /** The login the proxy looks client secrets up with (PgBouncer's auth_user). */
  readonly user: string
  readonly password: string
  /** Takes the role name as $1; the secret is the second column of the first row (the first when only one). */
  readonly query: string
  /** The database the lookup runs in; undefined: the client's (PgBouncer's auth_dbname). */
  readonly database: string | undefined
  /** Seconds a role's secret is reused before it is looked up again (a password change takes effect within it). */
  readonly ttl: number
  /** Seconds an unknown role (or one that cannot log in) is remembered as such. */
  readonly negativeTtl: number
}

export interface PooledRoute {
  readonly pool: PoolSettings
  readonly auth: AuthSettings
}

export const poolDefaults: PoolSettings = {
  mode: "session",
  ...sizingDefaults,
  resetQuery: "DISCARD ALL",
  maxPreparedStatements: 200,
  // PgBouncer's default is none, which is why every guide to JDBC behind PgBouncer adds this one: pgjdbc before 42.7.6
  // and Go's lib/pq send extra_float_digits (2 or 3) at startup. Dropping it is harmless since PostgreSQL 12: any value
  // above 0 (the server's default is 1) gives the same shortest exact float output. An older server would round floats
  // a client asked 3 for: the README says to set it on the server there.
  ignoreStartupParameters: ["extra_float_digits"],
  deferBegin: true
}

export const authDefaults = {
  // PgBouncer's default auth_query since it reads pg_authid: an expired role's secret comes back NULL, a NOLOGIN role
  // not at all; both read as "no such role". Reading pg_authid needs a superuser; see the README for the
  // SECURITY DEFINER function a non-superuser lookup login calls instead.
  query:
    "SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END FROM pg_authid WHERE rolname = $1 AND rolcanlogin",
  ttl: 60,
  negativeTtl: 5
} as const

const poolKeys = [...sizingKeys, "resetQuery", "maxPreparedStatements", "ignoreStartupParameters", "deferBegin"]
const authKeys = ["user", "password", "query", "database", "ttl", "negativeTtl"]

const text = (v: unknown, key: string, fallback: string): string => {
  if (v === undefined) return fallback
  if (typeof v !== "string") throw new ConfigError(key, `expected a string, got ${show(v)}`)
  return v
}

/** Optional (a lookup login the server trusts needs none); never shown in an error, not even when mistyped. */
const password = (v: unknown, key: string): string => {
  if (v === undefined) return ""
  if (typeof v !== "string") throw new ConfigError(key, "expected a string (quote it in YAML)")
  return v
}

// A run-time parameter's name as PostgreSQL spells them (custom ones have a dot: "myext.flag").
const parameterName = /^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)*$/

/** Names only the proxy can drop; the ones it always reads or keeps per client are refused with why. */
const ignoredParameters = (v: unknown, key: string): ReadonlyArray<string> => {
  if (v === undefined) return poolDefaults.ignoreStartupParameters
  if (!Array.isArray(v)) throw new ConfigError(key, `expected a list of parameter names, got ${show(v)}`)
  return v.map((name: unknown, i) => {
    const at = `${key}[${i}]`
    if (typeof name !== "string" || !parameterName.test(name)) {
      throw new ConfigError(at, `expected a parameter name, got ${show(name)}`)
    }
    const lower = name.toLowerCase()
    if (lower === "user" || lower === "database") throw new ConfigError(at, `${name} is always read, never ignored`)
    if (lower.startsWith("_pq_.")) throw new ConfigError(at, "protocol options (_pq_.) are declined, never ignored")
    if (trackedIndex(name) >= 0) throw new ConfigError(at, `${name} is kept per client: it needs no ignoring`)
    return name
  })
}

const decodePool = (v: unknown, key: string): PoolSettings => {
  const o = object(v, key, poolKeys)
  const sizing = decodeSizing(o, key, poolDefaults)
  return {
    mode: oneOf(o.mode, `${key}.mode`, ["session", "transaction"], poolDefaults.mode),
    ...sizing,
    resetQuery: text(o.resetQuery, `${key}.resetQuery`, poolDefaults.resetQuery),
    maxPreparedStatements: int(
      o.maxPreparedStatements,
      `${key}.maxPreparedStatements`,
      0,
      100_000,
      poolDefaults.maxPreparedStatements
    ),
    ignoreStartupParameters: ignoredParameters(o.ignoreStartupParameters, `${key}.ignoreStartupParameters`),
    deferBegin: bool(o.deferBegin, `${key}.deferBegin`, poolDefaults.deferBegin)
  }
}

const decodeAuth = (v: unknown, key: string): AuthSettings => {
  const o = object(v, key, authKeys)
  const query = str(o.query, `${key}.query`, authDefaults.query)
  if (!query.includes("$1")) throw new ConfigError(`${key}.query`, "must take the role name as $1")
  return {
    user: str(o.user, `${key}.user`),
    password: password(o.password, `${key}.password`),
    query,
    database: o.database === undefined ? undefined : str(o.database, `${key}.database`),
    ttl: seconds(o.ttl, `${key}.ttl`, authDefaults.ttl),
    negativeTtl: seconds(o.negativeTtl, `${key}.negativeTtl`, authDefaults.negativeTtl)
  }
}

/**
 * Decodes `pool` and `auth` of a route's metadata, or throws a ConfigError whose key is `prefix` + the key path
 * ("pool.size"). Undefined: the route is not pooled (no `pool`, or mode session: the plain relay).
 */
export const decodePoolMetadata = (metadata: Readonly<Obj>, prefix = ""): PooledRoute | undefined => {
  const pool = metadata.pool === undefined ? undefined : decodePool(metadata.pool, `${prefix}pool`)
  const auth = metadata.auth === undefined ? undefined : decodeAuth(metadata.auth, `${prefix}auth`)
  if (pool === undefined || pool.mode === "session") return undefined
  if (auth === undefined) {
    throw new ConfigError(
      `${prefix}auth`,
      "required with pool.mode transaction: the login ({ user, password }) the proxy looks client secrets up with"
    )
  }
  return { pool, auth }
}

const parsed = parsedPerRoute((metadata) => decodePoolMetadata(metadata, "metadata."))

/**
 * The pooling settings of `route`: undefined when it is not pooled, a string saying what is wrong with its metadata
 * (for the log; the client hears only that the route is unavailable).
 */
export const poolSettingsOf = (route: Route): PooledRoute | string | undefined => {
  const metadata = route.metadata
  // Most routes have neither key: no WeakMap lookup for them.
  if (metadata.pool === undefined && metadata.auth === undefined) return undefined
  return parsed(route)
}

/** The static config's check of one route's metadata (`routes.ID.metadata`): throws a ConfigError naming the key. */
export const checkRouteMetadata = (metadata: unknown, key: string): void => {
  if (isObj(metadata)) decodePoolMetadata(metadata, `${key}.`)
}
