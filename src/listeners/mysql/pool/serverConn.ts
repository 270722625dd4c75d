// One connection from the proxy to a MySQL/MariaDB server, opened for a pool: dialled, TLS, the login deadline, idle
// and held, closed (src/listeners/pool/serverConnBase.ts, every protocol's). What is MySQL's here: the server's
// greeting, TLS after an SSLRequest when the route asks for it, the login (serverLogin.ts) until OK; and the reset
// before a reuse: COM_RESET_CONNECTION, which on MariaDB 10.11 clears user variables, temporary tables, prepared
// statements, session variables and locks and rolls back, but keeps the current database (whatever the last client
// USEd) and the login's character set; MySQL resets the character set to the server's default (MySQL bug 97633).
// So COM_INIT_DB of the pool's database follows it, and on MySQL a SET of the login's collation: all pipelined, one
// round trip. Once ready it reads into the shared buffer (src/listeners/pool/sharedReads.ts) and belongs to the pool
// (idle) or a session (busy): see src/listeners/pool/serverPool.ts for who listens when.
import {
  Capability,
  decodePacket,
  encodePacket,
  Marker,
  parseErrPacket,
  parseOkPacket,
  Status
} from "../../../codec/mysql/index.ts"
import type { VettedEndpoint } from "../../../domain/Endpoint.ts"
import { ProxyError } from "../../../domain/ProxyError.ts"
import {
  type ConnKind,
  LOGIN,
  PooledServerConn,
  READY,
  RESET,
  type ServerConnOwner
} from "../../pool/serverConnBase.ts"
import type { ServerConnOptions } from "../../pool/serverOptions.ts"
import { readPooledShared } from "../../pool/sharedReads.ts"
import { type LoginStep, MysqlLoginExchange, type ProxyLogin, serverFailure } from "./serverLogin.ts"

export type { ProxyLogin }

/** What a MysqlServerConn tells its pool, once each at most (`closed` only after `opened`). */
export type MysqlServerConnOwner = ServerConnOwner<MysqlServerConn>

/** Login and reset packets are small (the largest an ERR or an OK with session-state changes). */
const maxLoginPayload = 64 * 1024

const COM_QUIT = 0x01
const COM_INIT_DB = 0x02
const COM_QUERY = 0x03
const COM_RESET_CONNECTION = 0x1f

/** Waiting for the server's greeting (it speaks first). */
const GREETING = 1

/** The client library's words for a server gone mid-login; COM_QUIT: the server ends the session cleanly. */
const kind: ConnKind = {
  hungUp: "Lost connection to server during the proxy's login",
  goodbye: encodePacket(Buffer.from([COM_QUIT]), 0)
}

/** A command packet of its own (sequence id 0): the command byte, then `text`. */
const command = (code: number, text: string): Buffer => {
  const body = Buffer.from(` ${text}`, "utf8")
  body[0] = code
  return encodePacket(body, 0)
}

const empty = Buffer.alloc(0)

const RESET_CONNECTION = encodePacket(Buffer.from([COM_RESET_CONNECTION]), 0)

/** One server connection: logging in, then idle in its pool or serving a client. */
export class MysqlServerConn extends PooledServerConn<MysqlServerConn> {
  /** The server's thread id (its greeting's connection id): what KILL and CONNECTION_ID() name. */
  connectionId = 0
  /** The server's version string, from its greeting. */
  serverVersion = ""
  /** MariaDB (its greeting leaves CLIENT_MYSQL unset) or MySQL: they reset differently. */
  mariadb = false
  /** The capabilities of this connection: the login's flags narrowed to the server's (CLIENT_DEPRECATE_EOF…). */
  flags = 0
  /** The MariaDB extras this connection has. */
  mariadbCapabilities = 0
  /**
   * Server status flags of the last OK or EOF (Status.IN_TRANS, AUTOCOMMIT…): the holder keeps it current; a
   * connection given back in a transaction or with autocommit other than at login is reset before reuse.
   */
  status = 0
  /** Set by the holder when the session left state on it (variables, temporary tables, USE…): reset before reuse. */
  dirty = false
  /** A KILL CONNECTION was sent to it (killClaim.ts): once that is over, it is closed, never handed on. */
  killed = false
  /** The server's ERR to the last reset, for the log; undefined: none (or the reset had no answer). */
  resetError: string | undefined = undefined
  /** The login's, for the reset (database, character set). */
  private readonly login: ProxyLogin
  private exchange: MysqlLoginExchange | undefined
  /** The login's AUTOCOMMIT status flag (the server's default autocommit). */
  private autocommitAtLogin = 0
  /** Answers still due to the reset's commands, and whether all so far were OKs. */
  private resetAnswers = 0
  private resetOk = true

  /** Starts dialing at once; the owner hears how it went (never before this returns). */
  constructor(owner: MysqlServerConnOwner, target: VettedEndpoint, login: ProxyLogin, options: ServerConnOptions) {
    super(owner, target, options, kind)
    this.login = login
    this.exchange = new MysqlLoginExchange(login, target, options.tls !== undefined)
  }

  /**
   * Whether it must be reset before it serves another client: the holder said so (`dirty`), or its last status says a
   * transaction is open or autocommit is not what a fresh login has.
   */
  get needsReset(): boolean {
    return this.dirty || !this.statusFresh()
  }

  /** No transaction open, autocommit as at login. */
  private statusFresh(): boolean {
    const s = this.status
    return (s & Status.IN_TRANS) === 0 && (s & Status.AUTOCOMMIT) === this.autocommitAtLogin
  }

  /** The client asked for CLIENT_DEPRECATE_EOF and the server has it: result sets end with an OK, not an EOF. */
  get deprecateEof(): boolean {
    return (this.flags & Capability.DEPRECATE_EOF) !== 0
  }

  protected connected(): void {
    this.phase = GREETING
  }

  /** Bytes from the server before the login's OK, or while the proxy resets it. */
  read(chunk: Buffer): void {
    let buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk])
    while (this.phase === GREETING || this.phase === LOGIN || this.phase === RESET) {
      const d = decodePacket(buf, maxLoginPayload)
      if (d._tag === "Need") {
        this.buf = buf
        return
      }
      if (d._tag === "Invalid") {
        this.fail(serverFailure(this.target, `invalid packet from the server: ${d.reason}`))
        return
      }
      buf = buf.subarray(d.size)
      if (this.phase === GREETING) this.greeted(d.value.payload, buf.length)
      else if (this.phase === LOGIN) this.loginStep(this.exchange!.reply(d.value, buf.length))
      else this.resetAnswer(d.value.payload, buf.length)
    }
    // The phase moved on (TLS, ready, closed): what was kept of a packet is spent.
    this.buf = empty
  }

  private greeted(payload: Buffer, left: number): void {
    const exchange = this.exchange!
    const next = exchange.greet(payload)
    if (next instanceof ProxyError) {
      this.fail(next)
      return
    }
    const greeting = exchange.greeting!
    this.connectionId = greeting.connectionId
    this.serverVersion = greeting.serverVersion
    this.mariadb = (greeting.capabilities & Capability.LONG_PASSWORD) === 0
    this.flags = exchange.flags
    this.mariadbCapabilities = exchange.mariadbCapabilities
    this.socket.write(next)
    if (this.options.tls === undefined) {
      this.phase = LOGIN
      return
    }
    // `next` was the SSLRequest: nothing may come between the greeting and the TLS handshake.
    if (left > 0) this.fail(serverFailure(this.target, "the server sent data before TLS started"))
    else this.startTls()
  }

  /** TLS is up: the login goes over it. */
  protected secured(): void {
    this.phase = LOGIN
    this.socket.write(this.exchange!.response())
  }

  private loginStep(step: LoginStep): void {
    if (step === undefined) return
    if (step === "ready") this.ready()
    else if (step instanceof ProxyError) this.fail(step)
    else this.socket.write(step)
  }

  private ready(): void {
    this.toReady()
    this.status = this.exchange!.status
    this.autocommitAtLogin = this.status & Status.AUTOCOMMIT
    this.exchange = undefined
    this.sharedReads = readPooledShared(this.socket)
    this.owner.opened(this)
  }

  protected override loginOver(): void {
    this.exchange = undefined
  }

  /**
   * Before the connection serves another client: COM_RESET_CONNECTION, COM_INIT_DB of the login's database, and on
   * MySQL the login's collation again; `done` hears whether every answer was an OK, within the login deadline. The
   * socket is paused again after.
   */
  reset(done: (conn: MysqlServerConn, ok: boolean) => void): void {
    if (this.phase !== READY) {
      done(this, false)
      return
    }
    const packets = [RESET_CONNECTION]
    const database = this.login.database
    if (database !== "") packets.push(command(COM_INIT_DB, database))
    if (!this.mariadb) {
      // By collation id, as the handshake sets them: no name to look up (MySQL and MariaDB take numbers here).
      const id = this.login.characterSet
      const sql = `SET character_set_client = ${id}, character_set_results = ${id}, collation_connection = ${id}`
      packets.push(command(COM_QUERY, sql))
    }
    this.resetAnswers = packets.length
    this.resetOk = true
    this.resetError = undefined
    this.dirty = false
    this.startReset(Buffer.concat(packets), done)
  }

  private resetAnswer(payload: Buffer, left: number): void {
    const ok = payload[0] === Marker.OK ? parseOkPacket(payload) : undefined
    if (ok !== undefined && ok._tag === "OkPacket") this.status = ok.statusFlags
    else {
      this.resetOk = false
      const err = parseErrPacket(payload)
      this.resetError = err._tag === "ErrPacket" ? `${err.code} ${err.message}` : "not an OK"
    }
    if (--this.resetAnswers > 0) return
    // Nothing may follow the last answer: bytes there would be read as the next client's.
    this.resetFinished(this.resetOk && this.statusFresh() && left === 0)
  }
}
