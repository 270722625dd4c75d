// One pooled client from its ReadyForQuery on (transaction pooling, PgBouncer's semantics): it holds no server
// connection while idle; its first message after ReadyForQuery('I') takes one from the pool of its (backend,
// database, role) — the client paused while it waits — and the ReadyForQuery('I') that leaves nothing unanswered
// gives it back (clientStream.ts, serverStream.ts). Inside a transaction ('T', 'E') it keeps it.
// An idle client is this one object and its socket: shared handlers find it through the socket, no timer, no closure.
import type * as net from "node:net"
import { encodeTypedMessage } from "../../../codec/pg/Framing.ts"
import { encodeBackendKeyData, encodeParameterStatus, encodeReadyForQuery } from "../../../codec/pg/SessionMessages.ts"
import type { ProxyError } from "../../../domain/ProxyError.ts"
import type { RelayTotals } from "../../../relay/relay.ts"
import type { LogShape } from "../../../services/Log.ts"
import type { ServedSession } from "../../Protocol.ts"
import { ConnHold } from "../../pool/connHold.ts"
import { ENDING, PooledSessionBase, QUIT, Wait } from "../../pool/pooledSession.ts"
import type { SessionKind } from "../../pool/sessionShapes.ts"
import type { Sock } from "../../pool/sessionSockets.ts"
import { fatal, poolFailureBytes } from "./answers.ts"
import { fromClient } from "./clientStream.ts"
import { BEGIN_MERGED, BEGIN_QUERY, BEGIN_REPLY, isStandaloneBegin, withBegin, withoutBegin } from "./deferredBegin.ts"
import { Link } from "./link.ts"
import type { PgPool } from "./pgPool.ts"
import { type Cancellable, forgetPooledKey, issuePooledKey, type PooledCancelTarget } from "./pooledKeys.ts"
import type { ServerConn } from "./serverConn.ts"
import { encodeQuery } from "./serverMessages.ts"
import { fromServer } from "./serverStream.ts"
import type { Statement } from "./statements.ts"
import { alignment, type Tracked, trackedNames } from "./tracked.ts"

/** What every session of one listener shares. */
export interface SessionHome {
  readonly log: LogShape
  readonly listener: string
}

/**
 * A server connection given back in transaction mode carries the tracked values of its last holder, which its own
 * now match (`giveBack`); a next holder with the same ones needs no SET. Cleared when it is handed out.
 */
type PgSock = Sock & { _pooledAligned?: Tracked | undefined }

const empty = Buffer.alloc(0)

/** A standalone BEGIN was answered and waits for the next server connection (deferredBegin.ts): a flag bit. */
const BEGIN_PENDING = 128

/** Why the client's bytes are held (pooledSession.ts `Wait`): the Query carrying the BEGIN was not yet answered. */
const BEGIN_WAIT = 2

/** What the client's welcome is made of, besides its own values (session.ts `welcome`). */
interface Startup {
  /** The server's parameters, for the client's ParameterStatus (the pool's, shared). */
  readonly server: ReadonlyMap<string, string>
  /** What the login held back (AuthenticationOk, after SCRAM's SASLFinal; clientAuth.ts `LoginOutput`). */
  readonly authOk: Buffer | undefined
}

const kind: SessionKind<PooledSession, Link> = {
  fromClient,
  fromServer,
  noServer: "pooled client got no server connection",
  lost: "pooled server connection lost mid-transaction",
  lostBytes: fatal("08006", "server closed the connection unexpectedly", {
    hint: "The server connection this client's transaction ran on went away; the transaction is lost."
  })
}

export class PooledSession
  extends PooledSessionBase<ServerConn, Link, PgPool, SessionHome>
  implements ServedSession, Cancellable
{
  /** The tracked parameters as this client was told them (tracked.ts). */
  params: Tracked
  /** The table's key of the BackendKeyData it was given (pooledKeys.ts), from start on. */
  key = ""
  /** Its named prepared statements, by its names (statements.ts); undefined until the first. */
  statements: Map<string, Statement> | undefined = undefined
  /** A client message's first bytes, not yet enough to frame it. */
  rest: Buffer = empty
  /** Bytes of the client's current message still to pass (or, `skipping`, to drop). */
  remaining = 0
  skipping = false
  /** Until start (one slot, not a field each for the life of an idle client): what the welcome is made of. */
  private startup: Startup | undefined

  constructor(
    client: net.Socket,
    pool: PgPool,
    home: SessionHome,
    params: Tracked,
    server: ReadonlyMap<string, string>,
    authOk: Buffer | undefined
  ) {
    super(client, pool, home)
    this.params = params
    this.startup = { server, authOk }
  }

  protected get kind(): SessionKind<this, Link> {
    return kind
  }

  /**
   * What ends the client's startup, in one write as PostgreSQL flushes it once: what the login held
   * (AuthenticationOk), ParameterStatus of each server parameter, BackendKeyData, ReadyForQuery.
   */
  private welcome(): Buffer {
    const parts: Array<Buffer> = []
    const startup = this.startup
    this.startup = undefined
    if (startup?.authOk !== undefined) parts.push(startup.authOk)
    for (const [name, value] of startup?.server ?? []) {
      if (!(trackedNames as ReadonlyArray<string>).includes(name)) parts.push(encodeParameterStatus(name, value))
    }
    this.params.values.forEach((value, i) => {
      if (value !== undefined) parts.push(encodeParameterStatus(trackedNames[i]!, value))
    })
    const issued = issuePooledKey(this)
    this.key = issued.key
    parts.push(encodeBackendKeyData(issued.processId, issued.secretKey), encodeReadyForQuery("I"))
    return Buffer.concat(parts)
  }

  get terminated(): boolean {
    return (this.flags & QUIT) !== 0
  }

  get ending(): boolean {
    return (this.flags & ENDING) !== 0
  }

  /** In a transaction the proxy answered the BEGIN of, on no server connection yet (deferredBegin.ts). */
  get beginPending(): boolean {
    return (this.flags & BEGIN_PENDING) !== 0
  }

  start<S>(closed: (totals: RelayTotals, state: S) => void, state: S): void {
    this.listenClient(closed, state)
    this.client.write(this.welcome())
    this.client.resume()
  }

  protected forget(): void {
    if (this.key !== "") forgetPooledKey(this.key)
    this.startup = undefined
  }

  // --- holding a server connection ---

  /**
   * The Query at `i` of the client's bytes, while it holds no server connection: a standalone BEGIN is answered here
   * and sent ahead of the next message (true); anything else needs a connection (false).
   */
  beginWithoutServer(buf: Buffer, i: number, length: number): boolean {
    // The length check first: it turns down every other first message of a transaction.
    if (!isStandaloneBegin(buf, i, length) || this.flags & BEGIN_PENDING || !this.pool.settings.deferBegin) return false
    this.flags |= BEGIN_PENDING
    // No server connection holds it back: written with the poll phase's other such replies.
    this.replyUnheld(BEGIN_REPLY)
    return true
  }

  /** The client's first message while it holds no server connection: wait for one, the client paused (`hold`). */
  waitForServer(bytes: Buffer): void {
    this.suspend(Wait.SERVER, bytes)
    this.acquire()
  }

  protected took(conn: ServerConn): void {
    const link = new Link(conn)
    if (this.pool.settings.maxPreparedStatements > 0) link.expects = []
    this.hook(link)
    const socket: PgSock = conn.socket
    const align = socket._pooledAligned === this.params ? undefined : alignment(this.params, conn.parameters)
    socket._pooledAligned = undefined
    // What goes before the client's bytes goes with them, in one write (the link's `lead`).
    let lead: Buffer | undefined
    if (align !== undefined) {
      link.swallow = 1
      link.setting = align.indexes
      lead = encodeQuery(align.sql)
    }
    if (this.flags & BEGIN_PENDING) {
      this.flags &= ~BEGIN_PENDING
      const merged = this.held === undefined ? undefined : withBegin(this.held)
      if (merged !== undefined) {
        // In the text of the client's Query: its reply starts with the BEGIN's (serverStream.ts drops it).
        this.held![0] = merged
        link.begin = BEGIN_MERGED
        link.merged = merged
      } else {
        // A Query of its own, whose reply, like the SET's, is kept from the client.
        link.swallow++
        lead = lead === undefined ? BEGIN_QUERY : Buffer.concat([lead, BEGIN_QUERY])
      }
    }
    link.lead = lead
  }

  /** The Query carrying the BEGIN went: until its reply shows that the BEGIN ran, the client's next bytes wait. */
  protected override heldDone(): void {
    if (this.link?.begin === BEGIN_MERGED) this.suspend(BEGIN_WAIT, empty)
  }

  /** The reply on `link` showed that the BEGIN ran, or the two went again: what the client sent since goes on. */
  beginSettled(link: Link): void {
    if (this.wait === BEGIN_WAIT && this.link === link) this.resumeHeld()
  }

  /**
   * The Query that carried the BEGIN failed before the BEGIN ran (serverStream.ts dropped its reply): the two go again
   * as two Queries, the BEGIN's reply kept from the client, so its error comes inside its transaction.
   */
  beginAgain(link: Link): void {
    const merged = link.merged!
    link.merged = undefined
    link.begin = 0
    link.swallow++
    this.forward(link, Buffer.concat([BEGIN_QUERY, withoutBegin(merged)]))
  }

  failed(error: ProxyError): void {
    this.noServer(error)
    this.held = undefined
    this.wait = Wait.NONE
    this.fail(poolFailureBytes(error))
  }

  /**
   * The ReadyForQuery that leaves nothing owed (the last bytes for the client, `reply`, end with it): the connection
   * goes back (serverStream.ts) before the reply is written (`replyUnheld`).
   */
  transactionEnded(reply: Buffer): void {
    this.dropServer()
    this.replyUnheld(reply)
    // The Query carrying the BEGIN ended it too (`BEGIN;COMMIT`): what the client sent since goes on.
    if (this.wait === BEGIN_WAIT) {
      this.resumeHeld()
      return
    }
    this.endIfDone()
    this.resumeClient()
  }

  /** To the pool when nothing is owed on the connection, else closed (its state unknown). */
  protected giveBack(link: Link): void {
    const conn = link.conn
    if (link.settled(this.remaining > 0) && conn.status === "I") {
      // Its tracked values are this client's now (its SET, if any, worked; the server's ParameterStatus since then
      // updated both). In session mode the pool's reset query may change them: no mark then.
      if (link.setFailed === undefined && this.pool.settings.mode === "transaction") {
        ;(conn.socket as PgSock)._pooledAligned = this.params
      }
      this.pool.release(conn)
    } else this.pool.discard(conn)
  }

  /** The server connection running the client's query now, claimed until the cancel is over (connHold.ts). */
  cancelTarget(): PooledCancelTarget | undefined {
    const conn = this.link?.conn
    if (conn === undefined) return undefined
    const ticket = new ConnHold(this.pool, conn)
    return { target: conn.target, processId: conn.processId, secretKey: conn.secretKey, ticket }
  }

  // --- ending ---

  protocolViolation(why: string): void {
    this.home.log.info("pooled client broke the protocol", { listener: this.home.listener, error: why })
    this.fail(fatal("08P01", why))
  }

  /** The proxy's own SET, or the BEGIN it answered, failed on the server connection (the server's error, then closed). */
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
}
