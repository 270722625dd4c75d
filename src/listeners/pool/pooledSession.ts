// What every pooled session (PostgreSQL's postgres/pool/session.ts, MySQL's mysql/pool/session.ts) does with its
// sockets, whatever the protocol: the client's bytes held (the client paused) while it waits for a server connection
// or anything else, the server connection taken and given back, the bytes both ways with backpressure (a full buffer
// on one side pauses the other until it drains), and the end (the client's goodbye or FIN finishes what it sent, a
// failure closes it, the server connection lost closes it). What is the protocol's: how it reads each side's bytes
// (`clientRead`, `serverRead`), what it does with a connection it is granted (`took`) and whether one goes back to the
// pool or is closed (`giveBack`).
// Hot path: writes go straight to the socket handle (relay/directWrite.ts), those to the server connection and the
// reply that ends a transaction at the end of the poll phase (deferredWrites.ts), reads straight to the session
// (sharedReads.ts), a server socket keeps one handler set for life (sessionSockets.ts); no closure or allocation per
// transaction or per read here.
import type { ProxyError } from "../../domain/ProxyError.ts"
import { writeDirect } from "../../relay/directWrite.ts"
import type { RelayTotals } from "../../relay/relay.ts"
import { type DeferredWriter, deferReply, deferServerWrite, flushWrites } from "./deferredWrites.ts"
import type { Waiter } from "./serverPool.ts"
import type { HeldConn, HeldLink, SessionHomeBase, SessionKind, SessionPool } from "./sessionShapes.ts"
import { listenClient, listenServer, type Sock, type SocketSession } from "./sessionSockets.ts"
import { holdLimit, readPooledShared } from "./sharedReads.ts"

const empty = Buffer.alloc(0)

/** Why the client's bytes are held (`held`); a protocol numbers its own reasons from 2 on. */
export const Wait = {
  NONE: 0,
  /** pool.acquire: `held` starts with what needs the connection. */
  SERVER: 1
} as const

export const SERVER_FULL = 1 // the server connection's buffer is full: the client is paused
export const CLIENT_FULL = 2 // a reply left with no server connection to hold back waits in the client's buffer: paused
export const ENDING = 4 // the client's goodbye or FIN: close once nothing is owed
export const QUIT = 8 // the goodbye read (or the session failed): nothing after it is
export const CLOSED = 16
const REPLY_DEFERRED = 32 // a reply waits in deferredWrites.ts: written before anything else for this client
const SERVER_DEFERRED = 64 // bytes for the server connection wait there: written before it is let go
// A protocol's own flags take the bits from 128 on (postgres/pool/session.ts BEGIN_PENDING).

export abstract class PooledSessionBase<
  C extends HeldConn,
  L extends HeldLink<C>,
  P extends SessionPool<C>,
  H extends SessionHomeBase
> implements Waiter<C>, SocketSession, DeferredWriter
{
  readonly client: Sock
  pool: P
  readonly home: H
  link: L | undefined = undefined
  wait: number = Wait.NONE
  flags = 0
  /** Bytes read while `wait` is not NONE, in order. */
  held: Array<Buffer> | undefined = undefined
  heldBytes = 0
  protected cancelWait: (() => void) | undefined = undefined
  /** The client reads into the shared buffer (sharedReads.ts). */
  protected sharedReads = false
  private closed: ((totals: RelayTotals, state: unknown) => void) | undefined = undefined
  private state: unknown = undefined

  constructor(client: Sock, pool: P, home: H) {
    this.client = client
    this.pool = pool
    this.home = home
  }

  abstract failed(error: ProxyError): void
  /** A granted connection: the protocol makes its link (`hook`) and does what comes before the held bytes. */
  protected abstract took(conn: C): void
  /** The link is let go: its connection back to the pool (`release`) or closed (`discard`). */
  protected abstract giveBack(link: L): void
  /** The client is gone or will not be served: what the protocol registered for it goes. */
  protected abstract forget(): void
  /** The protocol's: a module constant. */
  protected abstract get kind(): SessionKind<this, L>
  /** The held bytes were read on and nothing waits: the protocol may give the connection back. */
  protected heldDone(): void {}

  /** Bytes from the client: the protocol frames them. */
  clientRead(chunk: Buffer): void {
    this.kind.fromClient(this, chunk)
  }

  /** Bytes from the server connection `link` holds. */
  serverRead(link: L, chunk: Buffer): void {
    this.kind.fromServer(this, link, chunk)
  }

  /** The relay phase starts: the client's handlers, its reads shared (paused: `resumeClient` starts them). */
  protected listenClient<S>(closed: (totals: RelayTotals, state: S) => void, state: S): void {
    this.closed = closed as (totals: RelayTotals, state: unknown) => void
    this.state = state
    const c = this.client
    c._pooled = this
    listenClient(c)
    c.pause() // whoever read its login may have left it flowing
    this.sharedReads = readPooledShared(c)
  }

  destroy(): void {
    if (this.letGo()) this.client.destroy()
  }

  /** Closed: lets go of all it holds or waits for (false: it was already). */
  private letGo(): boolean {
    if (this.flags & CLOSED) return false
    this.flags |= CLOSED
    this.forget()
    this.cancelWait?.()
    this.cancelWait = undefined
    this.held = undefined
    this.dropServer()
    return true
  }

  // --- holding a server connection ---

  /** Holds `bytes` until `wait` is over: the client is paused, its reads kept in order. */
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

  /** Asks the pool for a server connection, the client's bytes held meanwhile. */
  acquire(): void {
    this.wait = Wait.SERVER
    const cancel = this.pool.acquire(this)
    // Granted or refused before acquire returned: nothing to cancel.
    if (this.wait === Wait.SERVER) this.cancelWait = cancel
  }

  granted(conn: C): void {
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
    this.took(conn)
    this.resumeHeld()
  }

  /** `link` holds `conn` from now on: the server socket's handlers (for its life) find this session, and it reads. */
  protected hook(link: L): void {
    this.link = link
    const socket = link.conn.socket
    listenServer(socket)
    socket._pooled = this
    socket.resume()
  }

  /** The wait is over: what was held is read on, in order (and held again if it must wait anew). */
  resumeHeld(): void {
    const held = this.held ?? []
    this.held = undefined
    this.wait = Wait.NONE
    for (const bytes of held) {
      if (this.flags & CLOSED) return
      this.clientRead(bytes)
    }
    if (this.wait !== Wait.NONE) return
    // Nothing held was for the server: what leads goes alone.
    if (this.link?.lead !== undefined) this.forward(this.link, empty)
    this.heldDone()
    this.endIfDone()
    this.resumeClient()
  }

  /** No server connection came: logged; the protocol tells the client. */
  protected noServer(error: ProxyError): void {
    this.cancelWait = undefined
    this.home.log.warn(this.kind.noServer, {
      listener: this.home.listener,
      backend: this.pool.where,
      reason: error.reason,
      error: error.message
    })
  }

  /** Bytes for the server connection, written at the end of this poll phase (deferredWrites.ts). */
  forward(link: L, bytes: Buffer): void {
    const lead = link.lead
    if (lead !== undefined) {
      bytes = bytes.length === 0 ? lead : Buffer.concat([lead, bytes])
      link.lead = undefined
    } else if (bytes.length === 0) return
    this.flags |= SERVER_DEFERRED
    deferServerWrite(this, link, bytes)
  }

  /** What `forward` gave, now: a full buffer pauses the client until it drains. */
  writeServerDeferred(link: L, bytes: Buffer): void {
    this.flags &= ~SERVER_DEFERRED
    const socket = link.conn.socket
    // A connection closed since (the session failed, the server went away) takes nothing more.
    if (socket.destroyed || !socket.writable) return
    if (!writeDirect(socket, bytes) && this.link === link && !(this.flags & SERVER_FULL)) {
      this.flags |= SERVER_FULL
      this.client.pause()
    }
  }

  /** Bytes for the client from the proxy itself, when nothing is owed before them. */
  answer(bytes: Buffer): void {
    this.repliesFirst()
    if (!(this.flags & CLOSED)) this.client.write(bytes)
  }

  /** Bytes for the client; a full buffer pauses the server connection until the client drains. */
  toClient(link: L, bytes: Buffer): void {
    if (bytes.length === 0) return
    this.repliesFirst()
    if (!writeDirect(this.client, bytes) && !link.paused) {
      link.paused = true
      link.conn.socket.pause()
    }
  }

  /**
   * The end of a reply whose server connection was given back just before (so that the server starts on the next
   * waiting client's work while this reply is written: the pool's few connections are what the clients wait for, and
   * a write that wakes this client can cost the proxy its core for a while). Written with the other such replies of
   * this pass of the event loop (deferredWrites.ts).
   */
  protected replyUnheld(reply: Buffer): void {
    this.flags |= REPLY_DEFERRED
    deferReply(this, reply)
  }

  /** Before any other bytes for the client (or its end): a reply of its still deferred goes out first. */
  private repliesFirst(): void {
    if (this.flags & REPLY_DEFERRED) flushWrites()
  }

  /** The deferred reply: one the client's buffer cannot take pauses its reads until it drains. */
  writeDeferred(reply: Buffer): void {
    this.flags &= ~REPLY_DEFERRED
    if (this.flags & CLOSED) return
    if (!writeDirect(this.client, reply)) {
      this.flags |= CLIENT_FULL
      this.client.pause()
    }
  }

  clientDrained(): void {
    const link = this.link
    if (link?.paused) {
      link.paused = false
      link.conn.socket.resume()
    }
    if (this.flags & CLIENT_FULL) {
      this.flags &= ~CLIENT_FULL
      this.resumeClient()
    }
  }

  serverDrained(): void {
    if (!(this.flags & SERVER_FULL)) return
    this.flags &= ~SERVER_FULL
    this.resumeClient()
  }

  resumeClient(): void {
    if (this.wait === Wait.NONE && !(this.flags & (SERVER_FULL | CLIENT_FULL | QUIT | CLOSED))) this.client.resume()
  }

  /** Lets the server connection go (`giveBack` says where): its handlers stay, finding no session. */
  dropServer(): void {
    const link = this.link
    if (link === undefined) return
    // What waits for the connection goes before anything else can be written to it (its next holder's, a reset).
    if (this.flags & SERVER_DEFERRED) flushWrites()
    this.link = undefined
    const conn = link.conn
    const socket = conn.socket
    socket._pooled = undefined
    if (!conn.sharedReads) socket.pause() // given back in this tick: see PooledServerConn.sharedReads
    this.giveBack(link)
    if (this.flags & SERVER_FULL) {
      this.flags &= ~SERVER_FULL
      this.resumeClient()
    }
  }

  // --- ending ---

  /** The goodbye (`byMessage`) or the client's FIN: as the server would, it finishes what it was sent, then closes. */
  terminate(byMessage: boolean): void {
    if (byMessage) this.flags |= QUIT
    if (this.flags & CLOSED) return
    this.flags |= ENDING
    this.endIfDone()
  }

  /** Ending, and nothing owed: close. A client waiting for a server connection gets one first (what it sent runs). */
  protected endIfDone(): void {
    if (!(this.flags & ENDING) || this.wait !== Wait.NONE) return
    const link = this.link
    if (link !== undefined && link.pending > 0) return
    this.dropServer()
    this.flags |= QUIT
    this.repliesFirst()
    const c = this.client
    if (c.writableEnded) return
    c.pause()
    c.destroySoon()
  }

  /** Closes the client after `last` (the protocol's words of why, if any) and gives the server connection up. */
  fail(last?: Buffer): void {
    if (this.flags & CLOSED) return
    this.flags |= ENDING | QUIT
    this.cancelWait?.()
    this.cancelWait = undefined
    this.held = undefined
    this.wait = Wait.NONE
    this.dropServer()
    this.repliesFirst()
    const c = this.client
    c.pause()
    if (last !== undefined) c.end(last)
    c.destroySoon()
  }

  /** The server connection closed while this client held it: nothing of it can go back to the pool. */
  serverLost(): void {
    const link = this.link
    if (link === undefined) return
    link.pending = 1
    const kind = this.kind
    this.home.log.info(kind.lost, {
      listener: this.home.listener,
      backend: this.pool.where,
      error: link.conn.error?.message
    })
    this.fail(kind.lostBytes)
  }

  clientClosed(): void {
    if (!this.letGo()) return
    const c = this.client
    c._pooled = undefined
    const closed = this.closed
    this.closed = undefined
    closed?.(
      { bytesFromClient: c.bytesRead, bytesFromBackend: c.bytesWritten, error: undefined, timedOut: undefined },
      this.state
    )
  }
}
