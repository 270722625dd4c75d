// The secret of a client's role ("SCRAM-SHA-256$…" or "md5…"), read from the backend through the route's `auth` login
// (PgBouncer's auth_user + auth_query), so the proxy checks the client's proof itself and no tenant password is ever
// configured. Control plane only (once per role per ttl), so it uses `pg`. Lookups of one backend and database share one
// connection (a pool of 1, closed after `idleMs` without lookups): a burst of new roles (a restart, a scan of made-up
// names) costs the tenant one extra server connection and one query each, never one login each.
import * as net from "node:net"
import pg from "pg"
import { formatEndpoint, type VettedEndpoint } from "../../../domain/Endpoint.ts"
import { LookupCache } from "../../lookupCache.ts"
import { nextSourceAddress } from "../../sourceAddress.ts"
import { type ClientTlsOptions, clientConnectOptions, clientTlsKey } from "../../tlsProfile.ts"
import type { AuthSettings } from "./settings.ts"

export interface SecretLookupOptions {
  /** Milliseconds for the lookup login (connect, TLS, authentication), and again for its query. Default 5000. */
  readonly timeoutMs?: number | undefined
  /** Milliseconds a lookup connection stays open after its last query. Default 10000. */
  readonly idleMs?: number | undefined
  /** Roles remembered at most, answers and misses alike; the oldest are forgotten first. Default 10000. */
  readonly maxEntries?: number | undefined
}

/** A lookup that could not be made. Its message names the backend and the lookup login, never a secret or password. */
export class SecretLookupError extends Error {
  /** The backend's SQLSTATE (28P01: the lookup login's password is wrong), or Node's error code (ECONNREFUSED). */
  readonly code: string | undefined
  constructor(message: string, code: string | undefined) {
    super(message)
    this.name = "SecretLookupError"
    this.code = code
  }
}

export interface SecretLookupStats {
  /** Queries sent to backends. */
  readonly queries: number
  /** Lookups answered from memory (including those that joined a query already under way). */
  readonly hits: number
  readonly failures: number
  readonly cached: number
}

const failure = (e: unknown, where: string): SecretLookupError => {
  const o = e as { message?: unknown; code?: unknown } | null
  const reason = typeof o?.message === "string" && o.message !== "" ? o.message : "no reason given"
  return new SecretLookupError(
    `secret lookup ${where} failed: ${reason}`,
    typeof o?.code === "string" ? o.code : undefined
  )
}

/** What `pg` dials with: a socket bound to the next of `upstream.sourceAddresses`, as every backend dial is. */
const sourceBoundSocket = (family: number) => (): net.Socket => {
  const socket = new net.Socket()
  const localAddress = nextSourceAddress(family)
  if (localAddress === undefined) return socket
  const connect = socket.connect.bind(socket)
  // pg calls connect(port, host); net takes the source address only in the options form.
  socket.connect = ((port: number, host: string) => connect({ port, host, localAddress })) as typeof socket.connect
  return socket
}

/** The secret column of a row of the auth query: PgBouncer's shape (name, secret), or the secret alone. */
const secretOf = (rows: ReadonlyArray<ReadonlyArray<unknown>>): string | undefined => {
  const row = rows[0]
  if (row === undefined) return undefined
  const value = row.length > 1 ? row[1] : row[0]
  return typeof value === "string" && value !== "" ? value : undefined
}

export class SecretLookup {
  readonly #timeoutMs: number
  readonly #idleMs: number
  readonly #answers: LookupCache<string>
  readonly #pools = new Map<string, pg.Pool>()
  #closed = false
  #queries = 0

  constructor(options: SecretLookupOptions = {}) {
    this.#timeoutMs = options.timeoutMs ?? 5000
    this.#idleMs = options.idleMs ?? 10_000
    this.#answers = new LookupCache(options.maxEntries ?? 10_000)
  }

  /**
   * The role's secret, undefined when the role does not exist, cannot log in or has expired. Cached per (backend,
   * database, role, lookup login) for `auth.ttl`, misses for `auth.negativeTtl`; concurrent lookups of one key share
   * one query. Rejects with a SecretLookupError only when the lookup itself fails (lookup login refused, backend
   * down, query failed); the caller answers the client without naming any of it.
   * `database`: the client's; `auth.database` overrides it. `tls`: towards the backend, as the route asks
   * (upstreamTlsFor); the dial goes to `target.ip`, `target.host` only names the server for TLS.
   */
  lookup(
    target: VettedEndpoint,
    database: string,
    role: string,
    auth: AuthSettings,
    tls?: ClientTlsOptions | undefined
  ): Promise<string | undefined> {
    if (this.#closed) return Promise.reject(new SecretLookupError("secret lookup is closed", undefined))
    const db = auth.database ?? database
    // The TLS settings are part of the key: an answer read over an unverified connection never serves a route that
    // verifies its backend.
    const key = `${target.ip}\0${target.port}\0${db}\0${role}\0${auth.user}\0${auth.query}\0${tlsKey(target, tls)}`
    return this.#answers.get(
      key,
      () => this.#query(target, db, role, auth, tls),
      (secret) => (secret === undefined ? auth.negativeTtl : auth.ttl)
    )
  }

  stats(): SecretLookupStats {
    const answers = this.#answers
    return { queries: this.#queries, hits: answers.hits, failures: answers.failures, cached: answers.size }
  }

  /** Closes the lookup connections and forgets every answer; later lookups reject. */
  close(): void {
    this.#closed = true
    this.#answers.clear()
    for (const pool of this.#pools.values()) void pool.end().catch(() => {})
    this.#pools.clear()
  }

  async #query(
    target: VettedEndpoint,
    database: string,
    role: string,
    auth: AuthSettings,
    tls: ClientTlsOptions | undefined
  ): Promise<string | undefined> {
    const where = `on ${formatEndpoint({ host: target.ip, port: target.port })}/${database} as ${auth.user}`
    const poolKey = `${target.ip}\0${target.port}\0${database}\0${auth.user}\0${auth.password}\0${tlsKey(target, tls)}`
    this.#queries++
    let pool: pg.Pool | undefined
    try {
      pool = this.#poolFor(poolKey, target, database, auth, tls)
      const result = await pool.query<Array<unknown>>({ text: auth.query, values: [role], rowMode: "array" })
      return secretOf(result.rows)
    } catch (e) {
      throw failure(e, where)
    } finally {
      // A failed login leaves the pool empty without a "remove" event.
      if (pool !== undefined) this.#dropIfEmpty(poolKey, pool)
    }
  }

  #poolFor(
    key: string,
    target: VettedEndpoint,
    database: string,
    auth: AuthSettings,
    tls: ClientTlsOptions | undefined
  ): pg.Pool {
    const known = this.#pools.get(key)
    if (known !== undefined) return known
    const pool = new pg.Pool({
      host: target.ip,
      port: target.port,
      database,
      user: auth.user,
      // A function: pg would read PGPASSWORD or ~/.pgpass for an empty string, and the proxy's own environment must
      // never log in to a tenant's database.
      password: () => auth.password,
      // Explicit, so PGSSLMODE in the proxy's environment decides nothing either.
      ssl: tls === undefined ? false : clientConnectOptions({ ...tls, servername: tls.servername ?? target.host }),
      application_name: "polyproxy secret lookup",
      stream: sourceBoundSocket(target.family),
      max: 1,
      idleTimeoutMillis: this.#idleMs,
      connectionTimeoutMillis: this.#timeoutMs,
      query_timeout: this.#timeoutMs,
      allowExitOnIdle: true
    })
    // An idle connection that breaks (the backend restarts) is dropped by the pool; the next lookup dials again.
    pool.on("error", () => {})
    pool.on("remove", () => this.#dropIfEmpty(key, pool))
    this.#pools.set(key, pool)
    return pool
  }

  #dropIfEmpty(key: string, pool: pg.Pool): void {
    if (pool.totalCount > 0 || pool.waitingCount > 0 || this.#pools.get(key) !== pool) return
    this.#pools.delete(key)
    void pool.end().catch(() => {})
  }
}

const tlsKey = (target: VettedEndpoint, tls: ClientTlsOptions | undefined): string => clientTlsKey(target.host, tls)
