// What a pooled MySQL session (session.ts) knows of the server connection it holds, and how it gives it back: the
// Link (its bytes both ways, the waits and the end are every protocol's: src/listeners/pool/pooledSession.ts), the
// session state that pins the connection, and the decision to give it back (transaction mode) or keep it.
import type * as net from "node:net"
import { encodePacket, RELEASES, Status } from "../../../codec/mysql/index.ts"
import { PooledSessionBase, Wait as PooledWait } from "../../pool/pooledSession.ts"
import type { MysqlSessionHome } from "../proxyAuth/types.ts"
import { okPacket } from "./commands.ts"
import { Link } from "./link.ts"
import type { MysqlPool } from "./mysqlPool.ts"
import type { MysqlServerConn, ProxyLogin } from "./serverConn.ts"

/** Why the client's bytes are held (`held`): nothing, a server connection, the held one's answers, a lookup. */
export const Wait = {
  ...PooledWait,
  /** The held connection owes answers: `held` starts with a command that acts once it owes none (commands.ts). */
  SETTLE: 2,
  /** A lookup (another pool, a user's hash, a KILL target in another worker): commands.ts goes on when it answers. */
  LOOKUP: 3
} as const

const empty = Buffer.alloc(0)

export abstract class Holding extends PooledSessionBase<MysqlServerConn, Link, MysqlPool, MysqlSessionHome> {
  /** Its current user and database (USE and COM_CHANGE_USER move it to another pool). */
  login: ProxyLogin
  /** The kinds of session state on the held connection that keep it held (transaction mode); undefined: none yet. */
  pins: Set<string> | undefined = undefined
  /** A client packet's first bytes, not yet enough to act on. */
  rest: Buffer = empty
  /** Bytes of the client's current packet still to pass (or, `skipping`, to drop). */
  remaining = 0
  skipping = false
  /** The client's current packet is 2^24-1 bytes long: the next one continues its payload. */
  continued = false
  /** Payload length of the command `held` starts with (Wait.SERVER): dropped when no server connection comes. */
  heldLength = 0
  /** The server status of the connection last held (a new one's is the same in all that matters: autocommit). */
  protected lastStatus: number = Status.AUTOCOMMIT

  constructor(client: net.Socket, pool: MysqlPool, login: ProxyLogin, home: MysqlSessionHome) {
    super(client, pool, home)
    this.login = login
  }

  /** The server status the session's statements run under: the held connection's, else the last one's. */
  get status(): number {
    return this.link?.conn.status ?? this.lastStatus
  }

  /** Session state holds the connection (its first kind, for the log and the client's error), or undefined. */
  get pinnedBy(): string | undefined {
    const pins = this.pins
    return pins === undefined || pins.size === 0 ? undefined : pins.values().next().value
  }

  get transactionMode(): boolean {
    return this.pool.settings.mode === "transaction"
  }

  protected attach(conn: MysqlServerConn): void {
    this.hook(new Link(conn))
  }

  /** The command `bytes` starts with (payload `length`) needs a server connection: the client waits for one. */
  waitForServer(bytes: Buffer, length: number): void {
    this.suspend(Wait.SERVER, bytes)
    this.heldLength = length
    this.acquire()
  }

  /** A command of the proxy's making (a translated KILL) for the held connection, answered to the client. */
  send(link: Link, payload: Buffer): void {
    this.forward(link, encodePacket(payload, 0))
    link.expect(payload[0]!)
  }

  /** OK to a command the proxy answers itself (COM_RESET_CONNECTION while it holds nothing). */
  answerOk(): void {
    this.answer(okPacket(1, Status.AUTOCOMMIT))
  }

  /** Session state the next client must not see: the connection stays with this one (transaction mode). */
  pin(why: string): void {
    ;(this.pins ??= new Set()).add(why)
    if (this.link !== undefined) this.link.conn.dirty = true
  }

  /**
   * Statements that undo state (UNLOCK TABLES…: `RELEASES`) were sent: other kinds may still pin. The connection is
   * reset before its next client all the same: a statement after an error in its text never ran (the state may live),
   * and what a text both made and undid is not among the kinds pinned.
   */
  release(statements: ReadonlyArray<string>): void {
    const pins = this.pins
    if (pins !== undefined) {
      for (const statement of statements) for (const kind of RELEASES[statement] ?? []) pins.delete(kind)
    }
    if (this.link !== undefined) this.link.conn.dirty = true
  }

  /** COM_RESET_CONNECTION (or a new user): the server forgets this client's state. */
  unpin(): void {
    this.pins = undefined
  }

  /** COM_CHANGE_USER, whatever its outcome: the state of the session goes, as the server's would. */
  resetState(): void {
    if (this.pinnedBy !== undefined && this.link !== undefined) this.link.conn.dirty = true
    this.dropServer()
    this.unpin()
  }

  /** Another database or user (or back, when none came): its pool serves the session from now on. */
  moveTo(pool: MysqlPool, login: ProxyLogin): void {
    this.pool = pool
    this.login = login
  }

  /** The client packet next read (payload `length`) is dropped, with any packets that continue its payload. */
  dropCommand(length: number): void {
    this.remaining = 4 + length
    this.skipping = true
    this.continued = length === 0xffffff
  }

  /** Transaction mode: gives the connection back when nothing keeps it (see the top of this file). */
  idleCheck(): void {
    const link = this.link
    if (link === undefined || !this.transactionMode || this.pinnedBy !== undefined || !link.settled) return
    if (this.remaining > 0 || this.continued || this.wait === Wait.SERVER) return
    const status = link.conn.status
    if (status & Status.IN_TRANS || !(status & Status.AUTOCOMMIT)) return
    this.dropServer()
  }

  /** To the pool when nothing is owed on the connection (reset first if dirty), else closed. */
  protected giveBack(link: Link): void {
    const conn = link.conn
    this.lastStatus = conn.status
    // The pool resets it first when dirty, a transaction is open or autocommit is off (and always in session mode).
    if (this.pinnedBy !== undefined) conn.dirty = true
    if (link.settled && this.remaining === 0 && !this.continued) this.pool.release(conn)
    else this.pool.discard(conn)
  }
}
