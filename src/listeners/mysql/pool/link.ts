// A MySQL session's hold on one server connection: the commands sent and not yet answered, in order (MySQL answers a
// pipelined client's commands one after the other), and the ResponseEnd that frames the server's bytes to find where
// the oldest one's response ends. Made per hold, dropped with it, so an idle client carries none of it.
import { ResponseEnd } from "../../../codec/mysql/ResponseEnd.ts"
import type { CancelTicket } from "../../pool/connHold.ts"
import type { MysqlServerConn } from "./serverConn.ts"

export class Link {
  readonly conn: MysqlServerConn
  /** Where the response being read ends (begun for the oldest unanswered command). */
  readonly end: ResponseEnd
  /** Commands sent whose response has not ended, the one `end` follows included. */
  pending = 0
  /** The command codes of the ones after it, oldest first (from `head`). */
  private readonly queue: Array<number> = []
  private head = 0
  /** The server asked for a LOCAL INFILE: the client's packets are the file's, up to an empty one (`end` frames them). */
  infile = false
  /** The server socket is paused because the client's buffer is full. */
  paused = false
  /** Bytes to send ahead of the client's (sessionShapes.ts `HeldLink`): none for MySQL. */
  lead: Buffer | undefined = undefined
  /** Responses ended so far; with `claims`, the count at which each ends (a KILL's claim: its own answer). */
  private ends = 0
  private claims: Array<{ readonly at: number; readonly ticket: CancelTicket }> | undefined = undefined

  constructor(conn: MysqlServerConn) {
    this.conn = conn
    this.end = new ResponseEnd(conn.status)
  }

  /** A command that the server answers was sent. */
  expect(command: number): void {
    if (this.pending++ === 0) this.end.begin(command, this.conn.deprecateEof)
    else this.queue.push(command)
  }

  /**
   * The command just sent (a translated KILL) holds `ticket`'s claim on another server connection until its answer
   * has come: the server has set the kill flag by then (or ended that connection), so the connection may serve again.
   * A hold dropped before (the client gone) leaves the claim to lapse: the command may still reach the server.
   */
  claimUntilAnswered(ticket: CancelTicket): void {
    ;(this.claims ??= []).push({ at: this.ends + this.pending, ticket })
  }

  /** A response ended: the next command's is read from here on. Returns whether any command is still unanswered. */
  answered(): boolean {
    this.ends++
    if (this.claims !== undefined) this.endClaims()
    if (this.pending > 0) this.pending--
    if (this.pending === 0) return false
    this.end.begin(this.queue[this.head++]!, this.conn.deprecateEof)
    if (this.head === this.queue.length) {
      this.queue.length = 0
      this.head = 0
    }
    return true
  }

  private endClaims(): void {
    const claims = this.claims!
    while (claims.length > 0 && claims[0]!.at <= this.ends) claims.shift()!.ticket.done()
    if (claims.length === 0) this.claims = undefined
  }

  /** Nothing sent is unanswered (and so no server packet is half read). */
  get settled(): boolean {
    return this.pending === 0 && !this.infile
  }
}
