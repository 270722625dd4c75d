// What a mysql listener with `auth` (logins checked by the proxy) hands from identify to its served session: the
// client's login as the proxy checked it (ProxyAuthState, in `Identified.state`), and the listener's services a
// session needs later on (MysqlSessionHome: another database's pool on USE, a new user's check on COM_CHANGE_USER,
// the KILL table).
import type { HandshakeResponse41 } from "../../../codec/mysql/index.ts"
import type { ProxyError } from "../../../domain/ProxyError.ts"
import type { LogShape } from "../../../services/Log.ts"
import type { MysqlPool } from "../pool/mysqlPool.ts"
import type { ProxyLogin } from "../pool/serverLogin.ts"
import type { MysqlSessions } from "../sessions.ts"

/**
 * What the client waits for when its session starts: the login's OK (it named its database in the handshake), the
 * answer to its COM_INIT_DB or lone `USE db` (sequence 1 of that command), or nothing (its first command, in
 * `pending`, is the server's to answer).
 */
export type Owed = "login" | "init-db" | "none"

export interface ProxyAuthState {
  readonly user: string
  /** SHA1(password), recovered from the client's answer (NativePassword.ts): what server logins answer with. */
  readonly stage1: Buffer
  /** The client's HandshakeResponse41 (flags, collation, attributes). */
  readonly response: HandshakeResponse41
  /** The routed database; "" when the client was routed without one (routeBy user, defaultRoute). */
  readonly database: string
  readonly owed: Owed
  /** The connection id of the proxy's greeting (what the client KILLs it by). */
  readonly connectionId: number
  readonly clientTls: boolean
  /** The greeting's nonce: a client hashes COM_CHANGE_USER with it (mysql2 does). */
  readonly nonce: Buffer
  /**
   * Bytes the client sent after its login that the session reads first, in order: its first command (the server's
   * to answer: owed "none") and whatever it pipelined behind it. Bytes behind a COM_INIT_DB/USE the proxy answers
   * itself are put back on the socket instead (`unshift`).
   */
  readonly pending?: Buffer | undefined
  /** How the server connections of its pool log in (database = `database`, collation after a `SET NAMES`). */
  readonly login: ProxyLogin
}

/** The listener's side of every served session, made once per listener (proxyAuth/served.ts). */
export interface MysqlSessionHome {
  readonly log: LogShape
  readonly listener: string
  /**
   * USE of another database mid-session: the pool of that database for the same login (same user, flags, collation),
   * resolved and vetted as a new client's would be; or the refusal, in the client's words when the server has some
   * (`cause`: an ERR payload, e.g. 1049 "Unknown database 'x'"), else as the listener's refusals are worded.
   */
  readonly poolFor: (database: string, login: ProxyLogin) => Promise<MysqlPool | ProxyError>
  /**
   * COM_CHANGE_USER: the new user's stage1 when `answer` (mysql_native_password over `nonce`) is right; undefined when
   * not, or when the user is unknown (the same check against a mock hash: the client gets 1045 either way). Rejects
   * (a UserLookupError, loggable: no secret in it) only when the lookup itself fails.
   */
  readonly checkUser: (user: string, answer: Buffer, nonce: Buffer) => Promise<Buffer | undefined>
  /** The KILL table of the process (sessions.ts). */
  readonly sessions: MysqlSessions
}
