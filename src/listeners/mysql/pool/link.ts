// A MySQL session's hold on one server connection: the commands sent and not yet answered, in order (MySQL answers a
// pipelined client's commands one after the other), and the ResponseEnd that frames the server's bytes to find where
// the oldest one's response ends. Made per hold, dropped with it, so an idle client carries none of it.
import { ResponseEnd } from "../../../codec/mysql/ResponseEnd.ts"
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

  constructor(conn: MysqlServerConn) {
    this.conn = conn
    this.end = new ResponseEnd(conn.status)
  }

  /** A command that the server answers was sent. */
  expect(command: number): void {
    if (this.pending++ === 0) this.end.begin(command, this.conn.deprecateEof)
    else this.queue.push(command)
  }

  /** A response ended: the next command's is read from here on. Returns whether any command is still unanswered. */
  answered(): boolean {
    if (this.pending > 0) this.pending--
    if (this.pending === 0) return false
    this.end.begin(this.queue[this.head++]!, this.conn.deprecateEof)
    if (this.head === this.queue.length) {
      this.queue.length = 0
      this.head = 0
    }
    return true
  }

  /** Nothing sent is unanswered (and so no server packet is half read). */
  get settled(): boolean {
    return this.pending === 0 && !this.infile
  }
}
