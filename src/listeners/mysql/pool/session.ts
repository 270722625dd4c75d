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
import { holdLimit, readPooledShared } from "../../postgres/pool/sharedReads.ts"
import type { MysqlSessionHome, ProxyAuthState } from "../proxyAuth/types.ts"
import type { MysqlSessionRecord } from "../sessions.ts"
import { fromClient } from "./clientStream.ts"
import { afterGrant, failureBytes, type Slow } from "./commands.ts"
import { CLOSED, ENDING, Holding, QUIT, Wait } from "./holding.ts"
import type { MysqlPool } from "./mysqlPool.ts"
import type { MysqlServerConn } from "./serverConn.ts"
import { ignoreError, onClientClose, onClientData, onClientDrain, onClientEnd } from "./sessionSockets.ts"

const initDb = Buffer.from([Command.INIT_DB])

export class MysqlSession extends Holding implements ServedSession, MysqlSessionRecord {
  /** The connection id of its greeting (KILL). */
  readonly proxyId: number
  /** The greeting's nonce: COM_CHANGE_USER answers are hashed with it. */
  readonly nonce: Buffer
  /** Bytes read while `wait` is not NONE, in order. */
  held: Array<Buffer> | undefined = undefined
  heldBytes = 0
  /** Payload length of the command `held` starts with (Wait.SERVER): dropped when no server connection comes. */
  heldLength = 0
  /** What a slow command (USE elsewhere, COM_CHANGE_USER, a KILL looked up) is doing (commands.ts). */
  slow: Slow | undefined = undefined
  /** A COM_QUERY's effects, judged before it waited for a server connection (clientStream.ts). */
  effects: StatementEffects | undefined = undefined
  private cancelWait: (() => void) | undefined = undefined
  private sharedReads = false
  private first: MysqlServerConn | undefined
  private readonly owed: ProxyAuthState["owed"]
  private pending: Buffer | undefined
  private closed: ((totals: RelayTotals, state: unknown) => void) | undefined = undefined
  private state: unknown = undefined

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

  get quit(): boolean {
    return (this.flags & (QUIT | CLOSED)) !== 0
  }

  start<S>(closed: (totals: RelayTotals, state: S) => void, state: S): void {
    this.closed = closed as (totals: RelayTotals, state: unknown) => void
    this.state = state
    const c = this.client
    c._mysql = this
    c.on("data", onClientData)
    c.on("drain", onClientDrain)
    c.on("end", onClientEnd)
    c.on("close", onClientClose)
    c.on("error", ignoreError)
    this.home.sessions.add(this.proxyId, this, false)
    const first = this.first!
    this.first = undefined
    if (first.socket.destroyed) this.pool.discard(first)
    else this.attach(first)
    c.pause() // whoever read its login may have left it flowing
    this.sharedReads = readPooledShared(c)
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

  destroy(): void {
    if (this.flags & CLOSED) return
    this.flags |= CLOSED
    this.home.sessions.remove(this.proxyId, false)
    if (this.first !== undefined) {
      this.pool.release(this.first)
      this.first = undefined
    }
    this.cancelWait?.()
    this.cancelWait = undefined
    this.held = undefined
    this.dropServer()
    this.client.destroy()
  }

  // --- holding a server connection ---

  /** Holds `bytes` (from a command's start on) until `wait` is over: the client is paused, its reads kept in order. */
  suspend(wait: number, bytes: Buffer): void {
    this.held = []
    this.heldBytes = 0
    this.wait = wait
    if (!this.sharedReads) this.client.pause()
    if (bytes.length > 0) this.hold(bytes)
  }

  /** Bytes read while suspended. One reading shared is paused past `holdLimit` only: see sharedReads.ts. */
  hold(bytes: Buffer): void {
    this.held!.push(bytes)
    this.heldBytes += bytes.length
    if (this.heldBytes > holdLimit) this.client.pause()
  }

  /** The command `bytes` starts with (payload `length`) needs a server connection: the client waits for one. */
  waitForServer(bytes: Buffer, length: number): void {
    this.suspend(Wait.SERVER, bytes)
    this.heldLength = length
    this.acquire()
  }

  /** Asks the pool for a server connection, the client's bytes held meanwhile. */
  acquire(): void {
    this.wait = Wait.SERVER
    const cancel = this.pool.acquire(this)
    // Granted or refused before acquire returned: nothing to cancel.
    if (this.wait === Wait.SERVER) this.cancelWait = cancel
  }

  /** The wait is over: what was held is read on, in order (and held again if it must wait anew). */
  resumeHeld(): void {
    const held = this.held ?? []
    this.held = undefined
    this.wait = Wait.NONE
    for (const bytes of held) {
      if (this.flags & CLOSED) return
      fromClient(this, bytes)
    }
    if (this.wait !== Wait.NONE) return
    this.idleCheck()
    this.endIfDone()
    this.resumeClient()
  }

  granted(conn: MysqlServerConn): void {
    if (this.flags & CLOSED) {
      this.pool.release(conn)
      return
    }
    this.cancelWait = undefined
    if (conn.socket.destroyed) {
      // Closed as it was handed over: the pool forgets it; the client waits on for another.
      this.pool.discard(conn)
      this.cancelWait = this.pool.acquire(this)
      return
    }
    this.attach(conn)
    if (this.slow !== undefined) afterGrant(this, this.slow, conn)
    this.resumeHeld()
  }

  failed(error: ProxyError): void {
    this.cancelWait = undefined
    this.home.log.warn("mysql pooled client got no server connection", {
      listener: this.home.listener,
      backend: this.pool.where,
      reason: error.reason,
      error: error.message
    })
    if (this.slow?.failed(this, error)) return
    // The command gets the error and is dropped; the session goes on (ProxySQL's way: the client may retry).
    this.answer(failureBytes(error, 1))
    this.effects = undefined
    this.dropCommand(this.heldLength)
    this.resumeHeld()
  }

  /** A response ended with nothing more owed (serverStream.ts): the connection may go back, a held command go on. */
  answered(): void {
    this.idleCheck()
    if (this.wait === Wait.SETTLE) this.resumeHeld()
    else this.endIfDone()
  }

  // --- ending ---

  /** COM_QUIT (`byCommand`) or the client's FIN: as the server would, it finishes what it was sent, then closes. */
  terminate(byCommand = false): void {
    if (byCommand) this.flags |= QUIT
    if (this.flags & CLOSED) return
    this.flags |= ENDING
    this.endIfDone()
  }

  /** Ending, and nothing owed: close. A command waiting for a server connection gets one first (it runs). */
  private endIfDone(): void {
    if (!(this.flags & ENDING) || this.wait !== Wait.NONE) return
    const link = this.link
    if (link !== undefined && link.pending > 0) return
    this.dropServer()
    this.flags |= QUIT
    const c = this.client
    if (c.writableEnded) return
    c.pause()
    c.destroySoon()
  }

  /** Closes the client (after what it was sent) and gives the server connection up. */
  fail(): void {
    if (this.flags & CLOSED) return
    this.flags |= ENDING | QUIT
    this.cancelWait?.()
    this.cancelWait = undefined
    this.held = undefined
    this.wait = Wait.NONE
    this.dropServer()
    const c = this.client
    c.pause()
    c.destroySoon()
  }

  protocolViolation(why: string): void {
    this.home.log.info("mysql pooled client broke the protocol", { listener: this.home.listener, error: why })
    this.fail()
  }

  /**
   * The server connection closed while this client held it. A client of a server that goes away mid-session sees its
   * connection close (mysql2: PROTOCOL_CONNECTION_LOST, the CLI: 2013 Lost connection): so does this one, after
   * whatever the server sent last (a KILL's 1927, a shutdown's 1053).
   */
  serverLost(): void {
    const link = this.link
    if (link === undefined) return
    link.pending = 1 // nothing of it can go back to the pool
    this.home.log.info("mysql pooled server connection lost", {
      listener: this.home.listener,
      backend: this.pool.where,
      error: link.conn.error?.message
    })
    this.fail()
  }

  clientClosed(): void {
    if (this.flags & CLOSED) return
    this.flags |= CLOSED
    this.home.sessions.remove(this.proxyId, false)
    this.cancelWait?.()
    this.cancelWait = undefined
    this.held = undefined
    this.slow = undefined
    this.dropServer()
    const c = this.client
    c._mysql = undefined
    const closed = this.closed
    this.closed = undefined
    closed?.(
      { bytesFromClient: c.bytesRead, bytesFromBackend: c.bytesWritten, error: undefined, timedOut: undefined },
      this.state
    )
  }
}
