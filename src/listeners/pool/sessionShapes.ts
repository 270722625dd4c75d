// What a protocol's pooled session is made of, as PooledSessionBase (pooledSession.ts) sees it: the server connection
// and the link it holds, the pool it takes them from, what its listener shares, and how it reads each side's bytes.
import type { LogShape } from "../../services/Log.ts"
import type { Waiter } from "./serverPool.ts"
import type { Sock } from "./sessionSockets.ts"

/** A server connection as a session holds it. */
export interface HeldConn {
  readonly socket: Sock
  /** Reads into the shared buffer: not paused between holders (serverConnBase.ts). */
  readonly sharedReads: boolean
  readonly error: Error | undefined
}

/** A session's hold on one server connection (the protocol's Link). */
export interface HeldLink<C extends HeldConn> {
  readonly conn: C
  /** Sent and not yet answered: the connection is not given back, nor the client closed, while any is. */
  pending: number
  /** The server socket is paused because the client's buffer is full. */
  paused: boolean
  /**
   * What the protocol sends the connection before the client's bytes (`took`: PostgreSQL's SET and BEGIN), sent with
   * the first of them in one write (pooledSession.ts `forward`); undefined once sent.
   */
  lead: Buffer | undefined
}

export interface SessionPool<C> {
  acquire(waiter: Waiter<C>): () => void
  release(conn: C): void
  discard(conn: C): void
  readonly where: string
}

export interface SessionHomeBase {
  readonly log: LogShape
  readonly listener: string
}

/** What reads a protocol's bytes, and its words for the log (and the client's when its server connection is lost). */
export interface SessionKind<S, L> {
  readonly fromClient: (s: S, chunk: Buffer) => void
  readonly fromServer: (s: S, link: L, chunk: Buffer) => void
  readonly noServer: string
  readonly lost: string
  readonly lostBytes: Buffer | undefined
}
