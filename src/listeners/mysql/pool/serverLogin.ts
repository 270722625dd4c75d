// The proxy's login to a MySQL/MariaDB server for a pool, as a conversation without a socket: the server's greeting,
// an SSLRequest when the route wants TLS, the HandshakeResponse41 as the client's user with the mysql_native_password
// answer to the server's own nonce (computed from SHA1(password), "stage1", which the proxy recovered from the
// client's login: no password is held anywhere), then one answer per server packet until OK. An AuthSwitchRequest
// to mysql_native_password (a fresh nonce) is followed; one to any other plugin is refused, since stage1 answers only
// that one. The server's ERR (1045 wrong password on that server, 1044/1049 database, 1226 max_user_connections…)
// is kept whole as the failure's `cause`, so the client can be told in the server's own words.
import {
  AuthPlugin,
  Capability,
  classifyAuthReply,
  encodeErrPacket,
  encodeHandshakeResponse41,
  encodePacket,
  encodeSslRequest,
  type HandshakeV10,
  nativeAnswer,
  type Packet,
  parseAuthSwitchRequest,
  parseErrPacket,
  parseHandshakeV10,
  parseOkPacket,
  SCRAMBLE_LENGTH
} from "../../../codec/mysql/index.ts"
import type { VettedEndpoint } from "../../../domain/Endpoint.ts"
import { type ProxyError, proxyError, type Reason } from "../../../domain/ProxyError.ts"
import { backendName } from "../../dial.ts"
import { backendLogin, backendNeeds } from "../capabilities.ts"

/** How the server connections of a pool log in: the client's user, stage1, database and negotiated session. */
export interface ProxyLogin {
  readonly user: string
  /** SHA1(password), recovered from the client's answer: answers any server's nonce. Empty: the empty password. */
  readonly stage1: Buffer
  /** The default schema; "": none. */
  readonly database: string
  /** The capabilities the client negotiated with the proxy (its answer's flags & the greeting's). */
  readonly flags: number
  /** The MariaDB extras the client negotiated with the proxy. */
  readonly mariadbCapabilities: number
  /** The client's collation id: sets character_set_client, _connection and _results on the server. */
  readonly characterSet: number
  readonly maxPacketSize: number
}

/** What to send after a server packet (whole packets), nothing (undefined), logged in ("ready"), or why not. */
export type LoginStep = Buffer | undefined | "ready" | ProxyError

/**
 * A login's flags never ask for the expired-password sandbox: a server connection in it could serve only SET
 * PASSWORD, so the server's refusal (1862) goes to the client instead.
 */
const notForwarded = Capability.CAN_HANDLE_EXPIRED_PASSWORDS

/** Every flag and extra the client negotiated counts (they were narrowed to the proxy's greeting already). */
const allOffered = 0xffffffff

/** The server broke or refused the login in a way only the log should detail. */
export const serverFailure = (target: VettedEndpoint, why: string): ProxyError =>
  proxyError("CONNECT_FAILED", "backend", `backend ${backendName(target)}: ${why}`)

/** The proxy's reason for a server's error code at login (its log and breaker; the client gets the server's ERR). */
const reasonOf = (code: number): Reason => {
  switch (code) {
    case 1044: // ER_DBACCESS_DENIED_ERROR
    case 1045: // ER_ACCESS_DENIED_ERROR
    case 1129: // ER_HOST_IS_BLOCKED
    case 1130: // ER_HOST_NOT_PRIVILEGED
    case 1862: // ER_MUST_CHANGE_PASSWORD_LOGIN
      return "FORBIDDEN"
    case 1049: // ER_BAD_DB_ERROR
      return "NOT_FOUND"
    case 1040: // ER_CON_COUNT_ERROR
    case 1203: // ER_TOO_MANY_USER_CONNECTIONS (max_user_connections, the global one)
    case 1226: // ER_USER_LIMIT_REACHED (an account's MAX_USER_CONNECTIONS)
      return "UNAVAILABLE"
    default:
      return "CONNECT_FAILED"
  }
}

/**
 * The server's ERR as the failure of the login: `cause` is its payload, as a protocol 4.1 client reads it after its
 * handshake (an ERR sent instead of a greeting has no SQLSTATE: HY000 is added, 08004 for 1040, as clients expect).
 */
export const serverRefusal = (target: VettedEndpoint, payload: Buffer): ProxyError => {
  const err = parseErrPacket(payload)
  if (err._tag === "Invalid") return serverFailure(target, `malformed ERR packet: ${err.reason}`)
  const sqlState = err.sqlState ?? (err.code === 1040 ? "08004" : "HY000")
  const cause = err.sqlState === undefined ? encodeErrPacket({ ...err, sqlState }) : Buffer.from(payload)
  const detail = `backend ${backendName(target)} refused the login: ${err.code} ${err.message}`
  return proxyError(reasonOf(err.code), "backend", detail, { cause, clientMessage: err.message })
}

export class MysqlLoginExchange {
  /** The server's greeting, once read. */
  greeting: HandshakeV10 | undefined = undefined
  /** The capabilities of this connection (the client's narrowed to the server's, with the proxy's per-hop ones). */
  flags = 0
  mariadbCapabilities = 0
  /** Server status flags of the final OK. */
  status = 0
  private readonly login: ProxyLogin
  private readonly target: VettedEndpoint
  private readonly tls: boolean
  /** Sequence id of the proxy's next packet. */
  private sequence = 1
  private switched = false

  constructor(login: ProxyLogin, target: VettedEndpoint, tls: boolean) {
    this.login = login
    this.target = target
    this.tls = tls
  }

  /** The greeting's payload: what to send next (SSLRequest when TLS, else the login), or why not. */
  greet(payload: Buffer): Buffer | ProxyError {
    // e.g. 1040 Too many connections, 1129 host blocked: sent instead of a greeting.
    if (payload[0] === 0xff) return serverRefusal(this.target, payload)
    const greeting = parseHandshakeV10(payload)
    if (greeting._tag === "Invalid") return serverFailure(this.target, `greeting: ${greeting.reason}`)
    this.greeting = greeting
    if ((greeting.capabilities & backendNeeds) >>> 0 !== backendNeeds) {
      return serverFailure(this.target, `the server ${greeting.serverVersion} cannot log in with plugins over 4.1`)
    }
    if (this.tls && (greeting.capabilities & Capability.SSL) === 0) {
      return serverFailure(this.target, "the server does not offer TLS")
    }
    const login = this.login
    const narrowed = backendLogin(
      { capabilities: (login.flags & ~notForwarded) >>> 0, mariadbCapabilities: login.mariadbCapabilities },
      greeting,
      {
        offered: allOffered,
        offeredMariaDb: allOffered,
        database: login.database !== "",
        attributes: false,
        tls: this.tls
      }
    )
    if ("lacks" in narrowed) {
      return proxyError("CONNECT_FAILED", "backend", `backend ${backendName(this.target)} lacks ${narrowed.lacks}`, {
        clientMessage: `the server lacks ${narrowed.lacks}, which this connection negotiated with the proxy's greeting`
      })
    }
    this.flags = narrowed.flags
    this.mariadbCapabilities = narrowed.mariadbCapabilities
    if (!this.tls) return this.response()
    return encodePacket(
      encodeSslRequest({
        capabilities: this.flags,
        maxPacketSize: login.maxPacketSize,
        characterSet: login.characterSet,
        mariadbCapabilities: this.mariadbCapabilities
      }),
      this.sequence++
    )
  }

  /** The HandshakeResponse41: the client's user and database, the native answer to the greeting's nonce. */
  response(): Buffer {
    const login = this.login
    const nonce = this.greeting!.authPluginData
    return encodePacket(
      encodeHandshakeResponse41({
        capabilities: this.flags,
        maxPacketSize: login.maxPacketSize,
        characterSet: login.characterSet,
        user: login.user,
        // Whatever plugin the greeting names: a server whose account uses mysql_native_password takes this answer,
        // one that uses another plugin switches (and is refused below).
        authResponse: nativeAnswer(login.stage1, nonce),
        database: login.database === "" ? undefined : login.database,
        authPlugin: AuthPlugin.NATIVE,
        mariadbCapabilities: this.mariadbCapabilities
      }),
      this.sequence++
    )
  }

  /** One server packet after the login was sent; `left`: bytes already read after it. */
  reply(packet: Packet, left: number): LoginStep {
    const payload = packet.payload
    const kind = classifyAuthReply(payload)
    if (typeof kind !== "string") return serverFailure(this.target, kind.reason)
    switch (kind) {
      case "OK": {
        const ok = parseOkPacket(payload)
        if (ok._tag === "Invalid") return serverFailure(this.target, ok.reason)
        // Nothing may follow the OK until the proxy sends a command.
        if (left > 0) return serverFailure(this.target, "the server broke the login sequence")
        this.status = ok.statusFlags
        return "ready"
      }
      case "ERR":
        return serverRefusal(this.target, payload)
      case "AuthSwitchRequest": {
        const request = parseAuthSwitchRequest(payload)
        if (request._tag === "Invalid") return serverFailure(this.target, request.reason)
        if (request.plugin !== AuthPlugin.NATIVE) return this.refuse(`the server asks for ${request.plugin}`)
        if (this.switched || request.data.length < SCRAMBLE_LENGTH) {
          return serverFailure(this.target, "the server broke the login sequence")
        }
        this.switched = true
        return encodePacket(nativeAnswer(this.login.stage1, request.data), (packet.lastSequenceId + 1) & 0xff)
      }
      default:
        // AuthMoreData (caching_sha2_password, sha256_password) or a second factor: not for a native answer.
        return this.refuse(`the server asks for more than mysql_native_password (${kind})`)
    }
  }

  private refuse(why: string): ProxyError {
    const detail = `backend ${backendName(this.target)}: cannot log in as '${this.login.user}': ${why}`
    return proxyError("CONNECT_FAILED", "backend", detail, {
      clientMessage: `the server's account '${this.login.user}' does not use mysql_native_password, the only plugin the proxy can log in with`
    })
  }
}
