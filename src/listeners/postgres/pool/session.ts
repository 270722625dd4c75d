// One pooled client from its ReadyForQuery on (transaction pooling, PgBouncer's semantics): it holds no server
// connection while idle; its first message after ReadyForQuery('I') takes one from the pool of its (backend,
// database, role) — the client paused while it waits — and the ReadyForQuery('I') that leaves nothing unanswered
// gives it back (clientStream.ts, serverStream.ts). Inside a transaction ('T', 'E') it keeps it.
// An idle client is this one object and its socket: shared handlers find it through the socket, no timer, no closure.
import type * as net from "node:net"
import { encodeTypedMessage } from "../../../codec/pg/Framing.ts"
import { encodeBackendKeyData, encodeParameterStatus, encodeReadyForQuery } from "../../../codec/pg/SessionMessages.ts"
import type { ProxyError } from "../../../domain/ProxyError.ts"
import { writeDirect } from "../../../relay/directWrite.ts"
import type { RelayTotals } from "../../../relay/relay.ts"
import type { LogShape } from "../../../services/Log.ts"
import type { ServedSession } from "../../Protocol.ts"
import { fatal, poolFailureBytes } from "./answers.ts"
import { fromClient } from "./clientStream.ts"
import { Link } from "./link.ts"
import type { PgPool, PoolWaiter } from "./pgPool.ts"
import { type Cancellable, type CancelTarget, forgetPooledKey, issuePooledKey } from "./pooledKeys.ts"
import type { ServerConn } from "./serverConn.ts"
import { encodeQuery } from "./serverMessages.ts"
import {
  ignoreError,
  listenServer,
  onClientClose,
  onClientData,
  onClientDrain,
  onClientEnd,
  type Sock
} from "./sessionSockets.ts"
import { holdLimit, readPooledShared } from "./sharedReads.ts"
import type { Statement } from "./statements.ts"
import { alignment, type Tracked, trackedNames } from "./tracked.ts"

/** What every session of one listener shares. */
export interface SessionHome {
  readonly log: LogShape
  readonly listener: string
}

const WAITING = 1 // for a server connection: the client is paused
const SERVER_FULL = 2 // the server connection's buffer is full: the client is paused
const ENDING = 4 // Terminate or the client's FIN: close once nothing is owed
const TERMINATED = 8 // Terminate read: nothing after it is
const CLOSED = 16
const CLIENT_FULL = 32 // a reply left with no server connection to hold back waits in the client's buffer: paused

const empty = Buffer.alloc(0)

const lostServer = fatal("08006", "server closed the connection unexpectedly", {
  hint: "The server connection this client's transaction ran on went away; the transaction is lost."
})

export class PooledSession implements ServedSession, PoolWaiter, Cancellable {
  readonly client: Sock
  readonly pool: PgPool
  readonly home: SessionHome
  /** The tracked parameters as this client was told them (tracked.ts). */
  params: Tracked
  /** The table's key of the BackendKeyData it was given (pooledKeys.ts), from start on. */
  key = ""
  link: Link | undefined = undefined
  /** While waiting for a server connection: the bytes read meanwhile, and the cancel of the wait. */
  held: Array<Buffer> | undefined = undefined
  heldBytes = 0
  private cancelWait: (() => void) | undefined = undefined
  /** The client reads into the shared buffer (sharedReads.ts). */
  private sharedReads = false
  /** Its named prepared statements, by its names (statements.ts); undefined until the first. */
  statements: Map<string, Statement> | undefined = undefined
  /** A client message's first bytes, not yet enough to frame it. */
  rest: Buffer = empty
  /** Bytes of the client's current message still to pass (or, `skipping`, to drop). */
  remaining = 0
  skipping = false
  private flags = 0
  /** Until start: the server's parameters, for the client's ParameterStatus (the pool's, shared). */
  private server: ReadonlyMap<string, string> | undefined
  private closed: ((totals: RelayTotals, state: unknown) => void) | undefined = undefined
  private state: unknown = undefined

  constructor(
    client: net.Socket,
    pool: PgPool,
    home: SessionHome,
    params: Tracked,
    server: ReadonlyMap<string, string>
  ) {
    this.client = client
    this.pool = pool
    this.home = home
    this.params = params
    this.server = server
  }

  /** What ends the client's startup: ParameterStatus of each server parameter, BackendKeyData, ReadyForQuery. */
  private welcome(): Buffer {
    const parts: Array<Buffer> = []
    for (const [name, value] of this.server ?? []) {
      if (!(trackedNames as ReadonlyArray<string>).includes(name)) parts.push(encodeParameterStatus(name, value))
    }
    this.server = undefined
    this.params.values.forEach((value, i) => {
      if (value !== undefined) parts.push(encodeParameterStatus(trackedNames[i]!, value))
    })
    const issued = issuePooledKey(this)
    this.key = issued.key
    parts.push(encodeBackendKeyData(issued.processId, issued.secretKey), encodeReadyForQuery("I"))
    return Buffer.concat(parts)
  }

  get terminated(): boolean {
    return (this.flags & TERMINATED) !== 0
  }

  get ending(): boolean {
    return (this.flags & ENDING) !== 0
  }

  start<S>(closed: (totals: RelayTotals, state: S) => void, state: S): void {
    this.closed = closed as (totals: RelayTotals, state: unknown) => void
    this.state = state
    const c = this.client
    c._pooled = this
    c.on("data", onClientData)
    c.on("drain", onClientDrain)
    c.on("end", onClientEnd)
    c.on("close", onClientClose)
    c.on("error", ignoreError)
    c.write(this.welcome())
    c.pause() // whoever read its login may have left it flowing
    this.sharedReads = readPooledShared(c)
    c.resume()
  }

  destroy(): void {
    if (this.flags & CLOSED) return
    this.flags |= CLOSED
    if (this.key !== "") forgetPooledKey(this.key)
    this.server = undefined
    this.client.destroy()
  }

  // --- holding a server connection ---

  /** The client's first message while it holds no server connection: wait for one, the client paused (`hold`). */
  waitForServer(bytes: Buffer): void {
    this.held = []
    this.heldBytes = 0
    this.flags |= WAITING
    if (!this.sharedReads) this.client.pause()
    this.hold(bytes)
    const cancel = this.pool.acquire(this)
    // Granted or refused before acquire returned: nothing to cancel.
    if (this.held !== undefined) this.cancelWait = cancel
  }

  /** Bytes read while waiting. One reading shared is paused past `holdLimit` only: see sharedReads.ts. */
  hold(bytes: Buffer): void {
    this.held!.push(bytes)
    this.heldBytes += bytes.length
    if (this.heldBytes > holdLimit) this.client.pause()
  }

  granted(conn: ServerConn): void {
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
    const link = new Link(conn)
    if (this.pool.settings.maxPreparedStatements > 0) link.expects = []
    this.link = link
    const socket: Sock = conn.socket
    listenServer(socket)
    socket._pooled = this
    const align = socket._pooledAligned === this.params ? undefined : alignment(this.params, conn.parameters)
    socket._pooledAligned = undefined
    if (align !== undefined) {
      link.swallow = 1
      link.setting = align.indexes
      writeDirect(socket, encodeQuery(align.sql))
    }
    socket.resume()
    const held = this.held ?? []
    this.held = undefined
    this.flags &= ~WAITING
    for (const bytes of held) {
      if (this.link !== link || this.flags & CLOSED) return
      fromClient(this, bytes)
    }
    this.endIfDone()
    this.resumeClient()
  }

  failed(error: ProxyError): void {
    this.cancelWait = undefined
    this.held = undefined
    this.flags &= ~WAITING
    this.home.log.warn("pooled client got no server connection", {
      listener: this.home.listener,
      backend: this.pool.where,
      reason: error.reason,
      error: error.message
    })
    this.fail(poolFailureBytes(error))
  }

  /** Bytes for the server connection; a full buffer pauses the client until it drains. */
  forward(link: Link, bytes: Buffer): void {
    if (bytes.length === 0) return
    if (!writeDirect(link.conn.socket, bytes) && !(this.flags & SERVER_FULL)) {
      this.flags |= SERVER_FULL
      this.client.pause()
    }
  }

  /** Bytes for the client from the proxy itself, while it holds no server connection. */
  answer(bytes: Buffer): void {
    this.client.write(bytes)
  }

  /** Bytes for the client; a full buffer pauses the server connection until the client drains. */
  toClient(link: Link, bytes: Buffer): void {
    if (bytes.length === 0) return
    if (!writeDirect(this.client, bytes) && !link.paused) {
      link.paused = true
      link.conn.socket.pause()
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

  private resumeClient(): void {
    if (!(this.flags & (WAITING | SERVER_FULL | CLIENT_FULL | TERMINATED | CLOSED))) this.client.resume()
  }

  /**
   * The ReadyForQuery that leaves nothing owed (the last bytes for the client, `reply`, end with it): the connection
   * goes back (serverStream.ts). It goes first, so that the server starts on the next waiting client's query while
   * this reply is written: the pool's few connections are what the clients wait for, and a write that wakes this
   * client can cost the proxy its core for a while. A reply the client's buffer cannot take pauses its reads until
   * it drains (there is no server connection left to hold back).
   */
  transactionEnded(reply: Buffer): void {
    this.dropServer()
    if (!writeDirect(this.client, reply) && !(this.flags & CLOSED)) {
      this.flags |= CLIENT_FULL
      this.client.pause()
    }
    this.endIfDone()
    this.resumeClient()
  }

  /** Gives the server connection back: to the pool when nothing is owed on it, else closed (its state unknown). */
  private dropServer(): void {
    const link = this.link
    if (link === undefined) return
    this.link = undefined
    const conn = link.conn
    const socket: Sock = conn.socket
    socket._pooled = undefined
    if (!conn.sharedReads) socket.pause() // given back in this tick: see ServerConn.sharedReads
    if (link.settled(this.remaining > 0) && conn.status === "I") {
      // Its tracked values are this client's now (its SET, if any, worked; the server's ParameterStatus since then
      // updated both). In session mode the pool's reset query may change them: no mark then.
      if (link.setFailed === undefined && this.pool.settings.mode === "transaction") socket._pooledAligned = this.params
      this.pool.release(conn)
    } else this.pool.discard(conn)
    if (this.flags & SERVER_FULL) {
      this.flags &= ~SERVER_FULL
      this.resumeClient()
    }
  }

  cancelTarget(): CancelTarget | undefined {
    const conn = this.link?.conn
    return conn === undefined
      ? undefined
      : { target: conn.target, processId: conn.processId, secretKey: conn.secretKey }
  }

  // --- ending ---

  /**
   * Terminate ('X', `byMessage`) or the client's FIN: as the server would, it finishes what it was sent, then closes.
   * A transaction left open is rolled back (the server connection is closed, never handed on mid-transaction).
   */
  terminate(byMessage: boolean): void {
    if (byMessage) this.flags |= TERMINATED
    if (this.flags & CLOSED) return
    this.flags |= ENDING
    this.endIfDone()
  }

  /** Ending, and nothing owed: close. A client waiting for a server connection gets one first (what it sent runs). */
  private endIfDone(): void {
    if (!(this.flags & ENDING) || this.flags & WAITING) return
    const link = this.link
    if (link !== undefined && link.pending > 0) return
    this.dropServer()
    this.endClient()
  }

  private endClient(): void {
    this.flags |= TERMINATED
    const c = this.client
    if (c.writableEnded) return
    c.pause()
    c.destroySoon()
  }

  /** Tells the client why it is closed (a FATAL ErrorResponse), then closes it and gives the server connection up. */
  fail(bytes: Buffer): void {
    if (this.flags & CLOSED) return
    this.flags |= ENDING | TERMINATED
    this.cancelWait?.()
    this.cancelWait = undefined
    this.held = undefined
    this.dropServer()
    const c = this.client
    c.pause()
    c.end(bytes)
    c.destroySoon()
  }

  protocolViolation(why: string): void {
    this.home.log.info("pooled client broke the protocol", { listener: this.home.listener, error: why })
    this.fail(fatal("08P01", why))
  }

  /** The proxy's own SET on the server connection failed (a client value the server refuses). */
  setFailed(body: Buffer): void {
    this.fail(encodeTypedMessage("E", body))
  }

  /** The server connection sent what is not PostgreSQL. */
  serverBroken(why: string): void {
    this.home.log.warn("pooled server connection broke the protocol", {
      listener: this.home.listener,
      backend: this.pool.where,
      error: why
    })
    const link = this.link
    if (link !== undefined) link.conn.socket.destroy()
    this.serverLost()
  }

  /** The server connection closed while this client held it. */
  serverLost(): void {
    const link = this.link
    if (link === undefined) return
    link.pending = 1 // nothing of it can go back to the pool
    this.home.log.info("pooled server connection lost mid-transaction", {
      listener: this.home.listener,
      backend: this.pool.where,
      error: link.conn.error?.message
    })
    this.fail(lostServer)
  }

  clientClosed(): void {
    if (this.flags & CLOSED) return
    this.flags |= CLOSED
    if (this.key !== "") forgetPooledKey(this.key)
    this.cancelWait?.()
    this.cancelWait = undefined
    this.held = undefined
    this.dropServer()
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
