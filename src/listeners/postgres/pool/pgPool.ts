// The server connections of one (backend address, database, user): PgBouncer's pool. The waiting and sizing (size,
// minIdle, idleTimeout, lifetime, the FIFO queue bounded by maxWaiting and maxWait, the breaker before every dial,
// who listens to a socket when) are every protocol's: src/listeners/pool/serverPool.ts. What is PostgreSQL's here:
// the login its connections share (the role's newest SCRAM keys or md5 secret), the session-mode reset query, the
// FATAL an idle server sends, and refusals with the SQLSTATE a PostgreSQL client reads.
//
// Given back: the session unhooks itself from the socket (its handlers stay, finding no session) and calls `release`
// (status "I") or `discard` (anything else, or the client gone mid-transaction). A granted socket reading shared
// (src/listeners/pool/sharedReads.ts) is not paused: nothing reads it before the session, told in the same tick,
// hooks itself on.

import { decodeErrorResponse } from "../../../codec/pg/index.ts"
import type { VettedEndpoint } from "../../../domain/Endpoint.ts"
import { type ProxyError, proxyError } from "../../../domain/ProxyError.ts"
import type { BreakerHooks } from "../../../services/BackendPool.ts"
import type { LogShape } from "../../../services/Log.ts"
import { ServerPool, type Waiter } from "../../pool/serverPool.ts"
import { ServerConn, type ServerConnOptions, type ServerConnOwner, type ServerLogin } from "./serverConn.ts"
import type { PoolSettings } from "./settings.ts"

/** A client waiting for a server connection: told once, unless it cancels first. */
export type PoolWaiter = Waiter<ServerConn>

/**
 * Why a waiter got no server connection from the pool itself (the ProxyError's `cause`), with the SQLSTATE and hint a
 * PostgreSQL client should read: 53300 when too many are already waiting, 57P03 when the wait passed `maxWait`.
 */
export class PoolRefusal {
  readonly kind: "queue-full" | "wait-timeout"
  readonly sqlstate: string
  readonly hint: string
  constructor(kind: "queue-full" | "wait-timeout", sqlstate: string, hint: string) {
    this.kind = kind
    this.sqlstate = sqlstate
    this.hint = hint
  }
}

export interface PgPoolDeps {
  /** The group's breaker (BackendPool `group.breaker`); undefined: dial always. */
  readonly breaker: BreakerHooks | undefined
  readonly conn: ServerConnOptions
  readonly log: LogShape | undefined
}

export class PgPool extends ServerPool<ServerConn, PoolSettings> implements ServerConnOwner {
  /** Shared by its connections; `useCredentials` keeps the role's newest keys (or md5 secret) in it. */
  readonly login: ServerLogin
  protected readonly protocol = "pg"
  private readonly conn: ServerConnOptions

  constructor(target: VettedEndpoint, login: ServerLogin, settings: PoolSettings, deps: PgPoolDeps) {
    super(target, settings, deps)
    this.login = { user: login.user, database: login.database, params: login.params }
    this.useCredentials(login)
    this.conn = deps.conn
  }

  get database(): string {
    return this.login.database
  }

  get user(): string {
    return this.login.user
  }

  /** A client of the role authenticated: its SCRAM keys (or the md5 secret) open the next server connections. */
  useCredentials(from: { readonly keys?: ServerLogin["keys"]; readonly secret?: string | undefined }): void {
    if (from.keys !== undefined) this.login.keys = from.keys
    if (from.secret !== undefined) this.login.secret = from.secret
  }

  protected connect(): void {
    new ServerConn(this, this.target, this.login, this.conn)
  }

  /** Back from a session: idle again (or straight to the next waiter) if its last ReadyForQuery said idle. */
  release(conn: ServerConn): void {
    if (conn.dropped || conn.idle) return
    if (conn.status !== "I" || conn.socket.destroyed) {
      this.drop(conn, false)
      return
    }
    if (this.expired(conn, performance.now())) {
      this.drop(conn, true)
      return
    }
    const s = this.settings
    if (s.mode !== "session" || s.resetQuery === "") this.handOff(conn)
    // A cancel request in flight would cancel the reset: it waits for the claim's end (`unhold` comes back here).
    else if (conn.holds > 0) this.park(conn)
    else conn.reset(s.resetQuery, this.afterReset)
  }

  private readonly afterReset = (conn: ServerConn, ok: boolean): void => {
    if (conn.dropped) return
    if (ok) this.handOff(conn)
    else this.drop(conn, false)
  }

  spoke(conn: ServerConn, chunk: Buffer): void {
    const e = decodeErrorResponse(chunk)
    this.droppedIdle(
      conn,
      e._tag === "Frame" ? `${e.value.fields.get("C")} ${e.value.fields.get("M")}` : "unexpected bytes"
    )
  }

  protected queueFull(): ProxyError {
    const n = this.settings.maxWaiting
    return proxyError(
      "UNAVAILABLE",
      "policy",
      `pool of ${this.login.database}/${this.login.user} at ${this.where}: ${n} clients already waiting`,
      {
        clientMessage: "sorry, too many clients already",
        cause: new PoolRefusal("queue-full", "53300", `${n} clients are already waiting for a server connection.`)
      }
    )
  }

  protected waitedTooLong(): ProxyError {
    const s = this.settings
    return proxyError(
      "UNAVAILABLE",
      "policy",
      `pool of ${this.login.database}/${this.login.user} at ${this.where}: no server connection free within ${s.maxWait} s`,
      {
        clientMessage: `query_wait_timeout: no server connection was free within ${s.maxWait} s`,
        cause: new PoolRefusal(
          "wait-timeout",
          "57P03",
          `All ${s.size} server connections of this pool stayed busy; retry later.`
        )
      }
    )
  }
}
