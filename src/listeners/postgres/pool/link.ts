// A pooled client's hold on one server connection, from its first message after ReadyForQuery('I') to the
// ReadyForQuery('I') that ends its transaction: what the relay must know to tell when the connection can go back
// (nothing sent is still unanswered) and to read the server's messages across chunks. Made per transaction, dropped
// with it, so an idle client carries none of it.
import type { Expected } from "./replies.ts"
import type { ServerConn } from "./serverConn.ts"

const empty = Buffer.alloc(0)

export class Link {
  readonly conn: ServerConn
  /** Queries, Syncs and function calls sent whose ReadyForQuery has not come back. */
  pending = 0
  /** Extended-protocol messages sent since the last Sync: the server owes a ReadyForQuery once the Sync comes. */
  batch = false
  /** ReadyForQuery messages of the proxy's own SET (tracked.ts) to keep from the client. */
  swallow = 0
  /** The tracked parameters that SET sets; whether it failed. */
  setting: ReadonlyArray<number> = []
  setFailed: Buffer | undefined = undefined
  /**
   * Messages replaced by a probe that fails on the server (statementStream.ts), by the probe's portal name: the
   * server's error for each is replaced by the proxy's. Forgotten once nothing is owed.
   */
  probes: Map<string, Buffer> | undefined = undefined
  /** Named prepared statements on: the replies the relay follows, in the order the server owes them (replies.ts). */
  expects: Array<Expected> | undefined = undefined
  head = 0
  /** The server's bytes of a message not yet whole (only those the relay reads whole). */
  rest: Buffer = empty
  /** Bytes of the server's current message still to pass through. */
  remaining = 0
  /**
   * The BEGIN the proxy answered, sent in the text of the client's first Query (deferredBegin.ts): how far its reply
   * is read (`BEGIN_MERGED`, `BEGIN_SHIFT`, `BEGIN_RETRY`; 0 when no Query carries one), and that Query.
   */
  begin = 0
  merged: Buffer | undefined = undefined
  /** What goes to the server before the client's first bytes, with them (sessionShapes.ts). */
  lead: Buffer | undefined = undefined
  /** The server socket is paused because the client's buffer is full. */
  paused = false

  constructor(conn: ServerConn) {
    this.conn = conn
  }

  /** Nothing sent to the server is unanswered, no message is half sent or half read. */
  settled(clientMidMessage: boolean): boolean {
    return (
      this.pending === 0 &&
      !this.batch &&
      this.swallow === 0 &&
      this.remaining === 0 &&
      this.rest.length === 0 &&
      !clientMidMessage &&
      (this.expects === undefined || this.head === this.expects.length)
    )
  }
}
