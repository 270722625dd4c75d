// Users' mysql_native_password hashes (SHA1(SHA1(password)), as mysql.user stores them), read from the backend of the
// listener's `auth.route` through the `auth` login, so the proxy checks a client's answer itself and no tenant password
// is ever configured (PgBouncer's auth_user + auth_query; pg pooling's secrets.ts is the same design). Control plane
// only (once per user per ttl), so it uses mysql2, loaded the first time a lookup runs. All lookups share one
// connection, opened on demand and closed after `idleMs` without lookups: a burst of new users (a restart, a scan of
// made-up names) costs the backend one connection and one query each, never one login each.
import * as net from "node:net"
import type mysql from "mysql2/promise"
import { parseNativeHash } from "../../../codec/mysql/NativePassword.ts"
import { AuthPlugin } from "../../../codec/mysql/Protocol.ts"
import { formatEndpoint, type VettedEndpoint } from "../../../domain/Endpoint.ts"
import { LookupCache } from "../../lookupCache.ts"
import { nextSourceAddress } from "../../sourceAddress.ts"
import { type ClientTlsOptions, clientTlsKey } from "../../tlsProfile.ts"
import type { MysqlAuthSettings } from "./settings.ts"

export interface UserRecord {
  /** SHA1(SHA1(password)): 20 bytes. */
  readonly hash: Buffer
  /** The account's plugin as mysql.user names it (mysql_native_password). */
  readonly plugin: string
}

/** Where the lookups go: the auth route resolved and vetted now, and TLS towards it as the route asks. */
export type AuthBackend = () => Promise<{
  readonly target: VettedEndpoint
  readonly tls: ClientTlsOptions | undefined
}>

export interface UserHashesOptions {
  /** Milliseconds for the lookup login (connect, TLS, authentication), and again for each query. Default 5000. */
  readonly timeoutMs?: number | undefined
  /** Milliseconds the lookup connection stays open after its last query. Default 10000. */
  readonly idleMs?: number | undefined
  /** Users remembered at most, hashes and misses alike; the oldest are forgotten first. Default 10000. */
  readonly maxEntries?: number | undefined
}

/** A lookup that could not be made. Its message names the backend and the lookup login, never a password or hash. */
export class UserLookupError extends Error {
  /** mysql2's code: the server's error name (ER_ACCESS_DENIED_ERROR), or Node's (ECONNREFUSED). */
  readonly code: string | undefined
  /** The server's error number (1045), when the server answered with an error. */
  readonly errno: number | undefined
  constructor(message: string, code: string | undefined, errno: number | undefined) {
    super(message)
    this.name = "UserLookupError"
    this.code = code
    this.errno = errno
  }
}

export interface UserHashesStats {
  /** Lookups not answered from memory: queries sent, or tried (a route that cannot be resolved counts too). */
  readonly lookups: number
  /** Lookups answered from memory (including those that joined a query already under way). */
  readonly hits: number
  readonly failures: number
  readonly cached: number
}

/** The lookup connection, and what it was opened for: another backend or other TLS settings is another connection. */
interface Link {
  readonly key: string
  readonly conn: Promise<mysql.Connection>
  busy: number
  idle: NodeJS.Timeout | undefined
  dropped: boolean
}

const failure = (e: unknown, where: string): UserLookupError => {
  const o = e as { message?: unknown; code?: unknown; errno?: unknown } | null
  const reason = typeof o?.message === "string" && o.message !== "" ? o.message : "no reason given"
  return new UserLookupError(
    `user lookup ${where} failed: ${reason}`,
    typeof o?.code === "string" ? o.code : undefined,
    typeof o?.errno === "number" ? o.errno : undefined
  )
}

const text = (v: unknown): string | undefined =>
  typeof v === "string" ? v : Buffer.isBuffer(v) ? v.toString("latin1") : undefined

/**
 * The first row of the query: the stored hash, then the plugin (absent: taken as native). An account of another
 * plugin, or with no password, has nothing here: the proxy refuses it as a wrong password. An empty plugin is how
 * MariaDB before 10.4 and MySQL before 5.7 mark a native account.
 */
const recordOf = (rows: unknown): UserRecord | undefined => {
  const row = Array.isArray(rows) ? rows[0] : undefined
  if (!Array.isArray(row)) return undefined
  const plugin = row.length > 1 ? text(row[1]) : AuthPlugin.NATIVE
  if (plugin !== AuthPlugin.NATIVE && plugin !== "") return undefined
  const stored = text(row[0])
  const hash = stored === undefined ? undefined : parseNativeHash(stored)
  return hash === undefined ? undefined : { hash, plugin: AuthPlugin.NATIVE }
}

let driver: Promise<typeof mysql> | undefined
/** mysql2, imported once, when the first lookup runs: a proxy without `auth` never loads it. */
const mysql2 = (): Promise<typeof mysql> => (driver ??= import("mysql2/promise").then((m) => m.default))

export class UserHashes {
  readonly #settings: MysqlAuthSettings
  readonly #backend: AuthBackend
  readonly #timeoutMs: number
  readonly #idleMs: number
  readonly #answers: LookupCache<UserRecord>
  #link: Link | undefined
  #closed = false
  #lookups = 0

  constructor(settings: MysqlAuthSettings, backend: AuthBackend, options: UserHashesOptions = {}) {
    this.#settings = settings
    this.#backend = backend
    this.#timeoutMs = options.timeoutMs ?? 5000
    this.#idleMs = options.idleMs ?? 10_000
    this.#answers = new LookupCache(options.maxEntries ?? 10_000)
  }

  /**
   * The user's hash; undefined when there is no such user, or it has no native hash (another plugin, no password):
   * the caller refuses it as a wrong password. Cached per user for `ttl`, misses for `negativeTtl`; concurrent
   * lookups of one user share one query. Rejects with a UserLookupError only when the lookup itself fails (the
   * route cannot be resolved, the lookup login is refused, the backend is down, the query fails); the caller answers
   * the client without naming any of it.
   */
  lookup(user: string): Promise<UserRecord | undefined> {
    if (this.#closed) return Promise.reject(new UserLookupError("user lookup is closed", undefined, undefined))
    const { ttl, negativeTtl } = this.#settings
    return this.#answers.get(
      user,
      () => this.#query(user),
      (record) => (record === undefined ? negativeTtl : ttl)
    )
  }

  stats(): UserHashesStats {
    const answers = this.#answers
    return { lookups: this.#lookups, hits: answers.hits, failures: answers.failures, cached: answers.size }
  }

  /** Closes the lookup connection and forgets every answer; later lookups reject. */
  close(): void {
    this.#closed = true
    this.#answers.clear()
    if (this.#link !== undefined) this.#drop(this.#link, true)
  }

  async #query(user: string): Promise<UserRecord | undefined> {
    const { route, user: login } = this.#settings
    let where = `for route ${route} as ${login}`
    let link: Link | undefined
    this.#lookups++
    try {
      const { target, tls } = await this.#backend()
      where = `on ${formatEndpoint({ host: target.ip, port: target.port })} (route ${route}) as ${login}`
      if (this.#closed) throw new Error("closed while the route was resolved")
      link = this.#linkFor(target, tls)
      link.busy++
      clearTimeout(link.idle)
      const conn = await link.conn
      const [rows] = await this.#deadline(
        conn.execute({ sql: this.#settings.query, values: [user], rowsAsArray: true }),
        link
      )
      return recordOf(rows)
    } catch (e) {
      throw failure(e, where)
    } finally {
      if (link !== undefined) this.#release(link)
    }
  }

  /** The query's answer, or its failure after `timeoutMs`: then the connection is closed (its state is unknown). */
  #deadline<A>(query: Promise<A>, link: Link): Promise<A> {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.#drop(link, false)
        reject(Object.assign(new Error(`no answer within ${this.#timeoutMs} ms`), { code: "ETIMEDOUT" }))
      }, this.#timeoutMs)
    })
    return Promise.race([query, late]).finally(() => clearTimeout(timer))
  }

  #linkFor(target: VettedEndpoint, tls: ClientTlsOptions | undefined): Link {
    const key = `${target.ip}\0${target.port}\0${clientTlsKey(target.host, tls)}`
    const known = this.#link
    if (known !== undefined && known.key === key) return known
    if (known !== undefined) this.#drop(known, true)
    const link: Link = { key, conn: this.#connect(target, tls), busy: 0, idle: undefined, dropped: false }
    link.conn.then(
      (conn) => {
        // An idle connection that breaks (the backend restarts) is forgotten; the next lookup dials again.
        conn.on("error", () => this.#drop(link, false))
        conn.on("end", () => this.#drop(link, false))
        if (link.dropped) conn.destroy()
      },
      () => this.#drop(link, false)
    )
    this.#link = link
    return link
  }

  async #connect(target: VettedEndpoint, tls: ClientTlsOptions | undefined): Promise<mysql.Connection> {
    const { createConnection } = await mysql2()
    return createConnection({
      // Dialed at the vetted IP (below); `host` only names the server for TLS, as the route's host or tls.servername.
      host: tls?.servername ?? target.host,
      port: target.port,
      stream: () =>
        net.connect({
          host: target.ip,
          port: target.port,
          family: target.family,
          localAddress: nextSourceAddress(target.family)
        }),
      user: this.#settings.user,
      password: this.#settings.password,
      ...(tls === undefined
        ? {}
        : {
            ssl: {
              ...(tls.ca === undefined ? {} : { ca: tls.ca }),
              rejectUnauthorized: tls.rejectUnauthorized,
              // mysql2 checks the name only when asked; Node's own clients check it whenever they verify.
              verifyIdentity: tls.rejectUnauthorized,
              ...(tls.minVersion === undefined ? {} : { minVersion: tls.minVersion })
            }
          }),
      connectTimeout: this.#timeoutMs,
      // The proxy's environment names no database and runs nothing on connect.
      multipleStatements: false,
      connectAttributes: { program_name: "polyproxy user lookup" }
    })
  }

  #release(link: Link): void {
    link.busy--
    if (link.busy > 0 || link.dropped) return
    clearTimeout(link.idle)
    link.idle = setTimeout(() => this.#drop(link, true), this.#idleMs)
    link.idle.unref()
  }

  /** Forgets the connection; `graceful` says goodbye (COM_QUIT), otherwise the socket is destroyed. */
  #drop(link: Link, graceful: boolean): void {
    if (link.dropped) return
    link.dropped = true
    clearTimeout(link.idle)
    if (this.#link === link) this.#link = undefined
    link.conn.then(
      (conn) => (graceful ? void conn.end().catch(() => conn.destroy()) : conn.destroy()),
      () => {}
    )
  }
}
