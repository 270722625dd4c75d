// The server connections of one MySQL pool: one (backend address, user, database, negotiated flags, character set,
// TLS setting). The waiting and sizing (size, minIdle, idleTimeout, lifetime, the FIFO queue bounded by maxWaiting
// and maxWait, the breaker before every dial, who listens to a socket when) are every protocol's:
// src/listeners/pool/serverPool.ts. What is MySQL's here: the login its connections share (the client's user and
// SHA1(password), the newest one given), the reset before a reuse (COM_RESET_CONNECTION: always after a session-mode
// client, else when the holder left state on it or its status says so), what an idle server says before it hangs up,
// and refusals a client reads as ERR 1040.
//
// Given back: the session unhooks itself from the socket (its handlers stay, finding no session) and calls `release`
// (the response it was reading has ended) or `discard` (anything else: the client gone mid-response, a broken
// exchange).
import { encodeErrPacket, parseErrPacket } from "../../../codec/mysql/index.ts"
import type { VettedEndpoint } from "../../../domain/Endpoint.ts"
import { type ProxyError, proxyError } from "../../../domain/ProxyError.ts"
import type { BreakerHooks } from "../../../services/BackendPool.ts"
import type { LogShape } from "../../../services/Log.ts"
import type { ServerConnOptions } from "../../pool/serverOptions.ts"
import { ServerPool, type Waiter } from "../../pool/serverPool.ts"
import { clientText } from "../../refusal.ts"
import { mysqlErrorFor } from "../errPacket.ts"
import { MysqlServerConn, type MysqlServerConnOwner, type ProxyLogin } from "./serverConn.ts"
import type { MysqlPoolSettings } from "./settings.ts"

/** A client waiting for a server connection: told once, unless it cancels first. */
export type MysqlPoolWaiter = Waiter<MysqlServerConn>

/**
 * Why a waiter got no server connection from the pool itself (the ProxyError's `cause`): too many clients already
 * wait, or the wait passed `maxWait`. A client reads either as ERR 1040 (ER_CON_COUNT_ERROR, SQLSTATE 08004), which
 * drivers know as "retry later"; the ProxyError's clientMessage says which.
 */
export class MysqlPoolRefusal {
  readonly kind: "queue-full" | "wait-timeout"
  readonly code = 1040
  readonly sqlState = "08004"
  constructor(kind: "queue-full" | "wait-timeout") {
    this.kind = kind
  }
}

/**
 * The ERR payload a client should read for a pool's failure: the server's own when it refused the login (1045, 1049,
 * 1226…), 1040 for a pool's refusal, else the proxy's words for the reason (errPacket.ts). Frame it with the
 * sequence id the client expects.
 */
export const poolErrPayload = (error: ProxyError): Buffer => {
  const cause = error.cause
  if (Buffer.isBuffer(cause)) return cause
  if (cause instanceof MysqlPoolRefusal) {
    return encodeErrPacket({ code: cause.code, sqlState: cause.sqlState, message: clientText(error) })
  }
  return mysqlErrorFor(error, 0).subarray(4)
}

export interface MysqlPoolDeps {
  /** The group's breaker (BackendPool `group.breaker`); undefined: dial always. */
  readonly breaker: BreakerHooks | undefined
  readonly conn: ServerConnOptions
  readonly log: LogShape | undefined
}

export class MysqlPool extends ServerPool<MysqlServerConn, MysqlPoolSettings> implements MysqlServerConnOwner {
  /** How its next connections log in: the first client's, with the newest stage1 (`useLogin`). */
  login: ProxyLogin
  protected readonly protocol = "mysql"
  private readonly conn: ServerConnOptions

  constructor(target: VettedEndpoint, login: ProxyLogin, settings: MysqlPoolSettings, deps: MysqlPoolDeps) {
    super(target, settings, deps)
    this.login = login
    this.conn = deps.conn
  }

  get database(): string {
    return this.login.database
  }

  get user(): string {
    return this.login.user
  }

  /** A client of this pool logged in: its stage1 opens the next connections (the password may have changed). */
  useLogin(login: ProxyLogin): void {
    if (!login.stage1.equals(this.login.stage1)) this.login = { ...this.login, stage1: login.stage1 }
  }

  protected connect(): void {
    new MysqlServerConn(this, this.target, this.login, this.conn)
  }

  /**
   * Back from a session, its last response read to the end: idle again (or straight to the next waiter), reset first
   * in session mode and whenever `needsReset`; closed when broken, or past its lifetime.
   */
  release(conn: MysqlServerConn): void {
    if (conn.dropped || conn.idle) return
    if (conn.socket.destroyed) {
      this.drop(conn, false)
      return
    }
    // A KILL in flight to it (killClaim.ts): out of service, not reset nor closed (the KILL would find no thread),
    // until it is answered (`unhold` comes back here).
    if (conn.holds > 0) {
      this.park(conn)
      return
    }
    // Killed: MariaDB hangs up, perhaps not yet heard of here.
    if (conn.killed) {
      this.drop(conn, false)
      return
    }
    if (this.expired(conn, performance.now())) {
      this.drop(conn, true)
      return
    }
    if (this.settings.mode === "session" || conn.needsReset) conn.reset(this.afterReset)
    else this.handOff(conn)
  }

  private readonly afterReset = (conn: MysqlServerConn, ok: boolean): void => {
    if (conn.dropped) return
    if (ok) {
      this.handOff(conn)
      return
    }
    const error = conn.resetError ?? conn.error?.message ?? "no answer within the login deadline, or the server hung up"
    this.log?.warn("mysql server connection reset failed", this.fields({ error }))
    this.drop(conn, false)
  }

  spoke(conn: MysqlServerConn, chunk: Buffer): void {
    // An ERR packet (1053 server shutdown, 1927 connection killed, 4031 inactivity) after its 4-byte header.
    const err = parseErrPacket(chunk.subarray(4))
    this.droppedIdle(conn, err._tag === "ErrPacket" ? `${err.code} ${err.message}` : "unexpected bytes")
  }

  private pool(): string {
    return `pool of ${this.login.user}@${this.where}/${this.login.database}`
  }

  protected queueFull(): ProxyError {
    const n = this.settings.maxWaiting
    return proxyError("UNAVAILABLE", "policy", `${this.pool()}: ${n} clients already waiting`, {
      clientMessage: `Too many connections: ${n} clients already wait for a server connection`,
      cause: new MysqlPoolRefusal("queue-full")
    })
  }

  protected waitedTooLong(): ProxyError {
    const s = this.settings
    return proxyError("UNAVAILABLE", "policy", `${this.pool()}: no server connection free within ${s.maxWait} s`, {
      clientMessage: `Too many connections: no server connection was free within ${s.maxWait} s`,
      cause: new MysqlPoolRefusal("wait-timeout")
    })
  }
}
