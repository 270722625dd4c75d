// One client of a mysql listener that checks logins itself (README "MySQL transaction pooling"), from its login's OK
// on. Its server connections come from the MysqlPool of its (backend, user, database, flags, charset, TLS).
// - mode transaction: it holds one only while it owes the client answers or the server holds state of the client's:
//   taken at its first command (the client paused while it waits), given back at the end of the response that leaves
//   nothing unanswered, no transaction open (!IN_TRANS) and autocommit on, unless the client made session state the
//   next client must not see (a user variable, a temporary table, LOCK TABLES, a prepared statement…: "pinned",
//   ProxySQL's multiplexing off, holding.ts), until it undoes it (UNLOCK TABLES…) or resets (COM_RESET_CONNECTION,
//   COM_CHANGE_USER).
// - mode session: it holds one for its whole life.
// The bytes stream through: client packets are framed by their 4-byte headers (clientStream.ts, which reads a few
// commands whole: USE, KILL, COM_CHANGE_USER…, commands.ts), server packets too, and only the first bytes of each are
// read, by ResponseEnd, to find where each response ends (serverStream.ts). A client's commands and the server's
// packets keep their sequence ids: each command restarts at 0 on both sides.
// An idle client is this one object and its socket: shared handlers find it through the socket, no timer, no closure.
import type * as net from "node:net"
import { Command, encodePacket } from "../../../codec/mysql/index.ts"
import type { StatementEffects } from "../../../codec/mysql/StatementEffects.ts"
import type { ProxyError } from "../../../domain/ProxyError.ts"
import type { RelayTotals } from "../../../relay/relay.ts"
import type { ServedSession } from "../../Protocol.ts"
import { ConnHold } from "../../pool/connHold.ts"
import { CLOSED, QUIT } from "../../pool/pooledSession.ts"
import type { SessionKind } from "../../pool/sessionShapes.ts"
import type { MysqlSessionHome, ProxyAuthState } from "../proxyAuth/types.ts"
import type { MysqlSessionRecord } from "../sessions.ts"
import { fromClient } from "./clientStream.ts"
import { afterGrant, failureBytes, type Slow } from "./commands.ts"
import { Holding, Wait } from "./holding.ts"
import type { Link } from "./link.ts"
import type { MysqlPool } from "./mysqlPool.ts"
import type { MysqlServerConn } from "./serverConn.ts"
import { fromServer } from "./serverStream.ts"

const initDb = Buffer.from([Command.INIT_DB])

/**
 * A client of a server that goes away mid-session sees its connection close (mysql2: PROTOCOL_CONNECTION_LOST, the
 * CLI: 2013 Lost connection): so does this one, after whatever the server sent last (a KILL's 1927, a shutdown's 1053).
 */
const kind: SessionKind<MysqlSession, Link> = {
  fromClient,
  fromServer,
  noServer: "mysql pooled client got no server connection",
  lost: "mysql pooled server connection lost",
  lostBytes: undefined
}

export class MysqlSession extends Holding implements ServedSession, MysqlSessionRecord {
  /** The connection id of its greeting (KILL). */
  readonly proxyId: number
  /** The greeting's nonce: COM_CHANGE_USER answers are hashed with it. */
  readonly nonce: Buffer
  /** What a slow command (USE elsewhere, COM_CHANGE_USER, a KILL looked up) is doing (commands.ts). */
  slow: Slow | undefined = undefined
  /** A COM_QUERY's effects, judged before it waited for a server connection (clientStream.ts). */
  effects: StatementEffects | undefined = undefined
  private first: MysqlServerConn | undefined
  private readonly owed: ProxyAuthState["owed"]
  private pending: Buffer | undefined

  constructor(
    client: net.Socket,
    pool: MysqlPool,
    state: ProxyAuthState,
    home: MysqlSessionHome,
    first: MysqlServerConn
  ) {
    super(client, pool, state.login, home)
    this.proxyId = state.connectionId
    this.nonce = state.nonce
    this.first = first
    this.owed = state.owed
    this.pending = state.pending
  }

  protected get kind(): SessionKind<this, Link> {
    return kind
  }

  // --- what a KILL needs (sessions.ts) ---

  /** The backend thread it holds now; 0 between transactions. */
  get backendId(): number {
    return this.link?.conn.connectionId ?? 0
  }
  get ip(): string {
    return this.pool.target.ip
  }
  get port(): number {
    return this.pool.target.port
  }
  get user(): string {
    return this.login.user
  }
  /** KILL CONNECTION of it while it holds no server connection: closed, as the server would close it. */
  killed(): void {
    this.fail()
  }
  /**
   * A KILL goes to the server connection it holds now: claimed until that KILL is answered (killClaim.ts). A KILL
   * CONNECTION ends this client as MariaDB ends the connection it names: through the server connection's hang-up
   * while it still holds it, else here once the KILL is over (its query had ended and the connection gone back: the
   * pool closes that one, and nothing would tell this client otherwise).
   */
  claimServer(connection: boolean): ConnHold<MysqlServerConn> | undefined {
    const conn = this.link?.conn
    if (conn === undefined) return undefined
    const claim = new ConnHold(this.pool, conn)
    if (connection) {
      conn.killed = true
      claim.ended = () => {
        if (this.link?.conn !== conn) this.fail()
      }
    }
    return claim
  }

  get quit(): boolean {
    return (this.flags & (QUIT | CLOSED)) !== 0
  }

  start<S>(closed: (totals: RelayTotals, state: S) => void, state: S): void {
    this.home.sessions.add(this.proxyId, this, false)
    const first = this.first!
    this.first = undefined
    if (first.socket.destroyed) this.pool.discard(first)
    else this.attach(first)
    this.listenClient(closed, state)
    const pending = this.pending
    this.pending = undefined
    if (this.owed === "init-db") {
      // The USE the client waits for: asked of the server, whose OK (its session tracking too) is the answer.
      const database = Buffer.from(this.login.database, "utf8")
      fromClient(this, encodePacket(Buffer.concat([initDb, database]), 0))
    }
    if (pending !== undefined) fromClient(this, pending)
    this.idleCheck()
    this.resumeClient()
  }

  protected forget(): void {
    this.home.sessions.remove(this.proxyId, false)
    this.slow = undefined
    if (this.first !== undefined) {
      this.pool.release(this.first)
      this.first = undefined
    }
  }

  // --- holding a server connection ---

  protected took(conn: MysqlServerConn): void {
    this.attach(conn)
    if (this.slow !== undefined) afterGrant(this, this.slow, conn)
  }

  protected override heldDone(): void {
    this.idleCheck()
  }

  failed(error: ProxyError): void {
    this.noServer(error)
    if (this.slow?.failed(this, error)) return
    // The command gets the error and is dropped; the session goes on (ProxySQL's way: the client may retry).
    this.answer(failureBytes(error, 1))
    this.effects = undefined
    this.dropCommand(this.heldLength)
    this.resumeHeld()
  }

  /**
   * A response ended with nothing more owed (serverStream.ts; `reply`: the last bytes for the client, which end with
   * it): the connection may go back — before the reply is written, as pooledSession.ts `replyUnheld` says why — and
   * a held command go on.
   */
  answered(link: Link, reply: Buffer): void {
    this.idleCheck()
    if (this.link === link) this.toClient(link, reply)
    else this.replyUnheld(reply)
    if (this.wait === Wait.SETTLE) this.resumeHeld()
    else this.endIfDone()
  }

  protocolViolation(why: string): void {
    this.home.log.info("mysql pooled client broke the protocol", { listener: this.home.listener, error: why })
    this.fail()
  }
}
