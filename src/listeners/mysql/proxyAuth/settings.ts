// A mysql listener's `auth` option: with it the proxy checks logins itself, reading each user's mysql_native_password
// hash from the backend of route `auth.route` through the login `auth.user` (PgBouncer's auth_user + auth_query):
//   auth.route        the resource id of the backend holding mysql.user     required
//   auth.user         the lookup login                                      required
//   auth.password     its password                                          "" (never shown in an error)
//   auth.query        `?` = the user name; row 1: hash, plugin              mysqlAuthDefaults.query
//   auth.ttl          seconds a hash is reused                              60 (PgBouncer has none; pg pooling's)
//   auth.negativeTtl  seconds an unknown user is remembered                 5
import type { MysqlListenerAuth } from "../../../config/Config.ts"
import { ConfigError, object, seconds, show, str } from "../../../config/fields.ts"

export type MysqlAuthSettings = MysqlListenerAuth

export const mysqlAuthDefaults = {
  // mysql.user has authentication_string and plugin on MariaDB 10.4+ (a view over mysql.global_priv, readable with
  // SELECT on the view alone) and on MySQL 5.7+. A user may have several rows, one per Host pattern; the backend picks
  // the most specific row that matches the address a login comes from, and the proxy's own logins come from where
  // this lookup login does (USER() names that address as the server sees it). So: of the rows whose Host matches it
  // as a LIKE pattern or as an IPv4 address/netmask, the one the server prefers (checked against MariaDB 10.11): an
  // exact host, then a netmask, then the wildcard pattern with the longest part before its first wildcard. IPv6
  // netmasks, MySQL's CIDR form and host-name rows when the server resolves no names are not matched (a custom query
  // may).
  query: [
    "SELECT u.authentication_string, u.plugin",
    "FROM mysql.user u, (SELECT SUBSTRING_INDEX(USER(), '@', -1) AS host) me",
    "WHERE u.User = ? AND (me.host LIKE u.Host OR (u.Host LIKE '%/%' AND",
    "INET_ATON(me.host) & INET_ATON(SUBSTRING_INDEX(u.Host, '/', -1)) = INET_ATON(SUBSTRING_INDEX(u.Host, '/', 1))))",
    "ORDER BY u.Host REGEXP '[%_]', u.Host LIKE '%/%',",
    "LENGTH(SUBSTRING_INDEX(SUBSTRING_INDEX(u.Host, '%', 1), '_', 1)) DESC, LENGTH(u.Host) DESC LIMIT 1"
  ].join(" "),
  ttl: 60,
  negativeTtl: 5
} as const

const keys = ["route", "user", "password", "query", "ttl", "negativeTtl"]

/** Optional (a lookup login may have none); never shown in an error, not even when mistyped. */
const password = (v: unknown, key: string): string => {
  if (v === undefined) return ""
  if (typeof v !== "string") throw new ConfigError(key, "expected a string (quote it in YAML)")
  return v
}

/** The query's placeholders: mysql2 binds the user name to the only one (a server-side prepared statement). */
const query = (v: unknown, key: string): string => {
  const text = str(v, key, mysqlAuthDefaults.query)
  const marks = text.split("?").length - 1
  if (marks !== 1) {
    throw new ConfigError(key, `must take the user name as its one ? placeholder, got ${marks} in ${show(text)}`)
  }
  return text
}

/** The listener's `auth` (`key` names it in errors), undefined when absent; throws a ConfigError naming the key. */
export const decodeMysqlAuth = (v: unknown, key: string): MysqlAuthSettings | undefined => {
  if (v === undefined) return undefined
  const o = object(v, key, keys)
  if (o.route === undefined) {
    throw new ConfigError(`${key}.route`, "required: the resource id of the backend whose mysql.user holds the users")
  }
  if (o.user === undefined) {
    throw new ConfigError(`${key}.user`, "required: the login the proxy reads users' password hashes with")
  }
  return {
    route: str(o.route, `${key}.route`),
    user: str(o.user, `${key}.user`),
    password: password(o.password, `${key}.password`),
    query: query(o.query, `${key}.query`),
    ttl: seconds(o.ttl, `${key}.ttl`, mysqlAuthDefaults.ttl),
    negativeTtl: seconds(o.negativeTtl, `${key}.negativeTtl`, mysqlAuthDefaults.negativeTtl)
  }
}
