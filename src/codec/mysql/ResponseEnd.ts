// Server → client: where the response to one command ends, packet by packet, so a pooled session knows when the
// server connection is free again. Pure and allocation-free after construction: it runs on every server packet.
//
// The wire rules (mariadb.com "Result Set Packets", "COM_STMT_PREPARE", "OK_Packet", "EOF_Packet", "LOCAL INFILE";
// dev.mysql.com "Text Resultset", "Multi-Resultset"):
// - OK (0x00) or ERR (0xFF) ends a response, unless the OK's status says SERVER_MORE_RESULTS_EXISTS: another result
//   follows (multi-statements, CALL). An ERR never has a successor. MariaDB's progress reports are ERR packets with
//   code 0xFFFF, sent mid-statement to clients that asked for them: not an end.
// - A result set: a column count, that many column definitions, an EOF (not with CLIENT_DEPRECATE_EOF), the rows,
//   then an EOF, or with CLIENT_DEPRECATE_EOF an OK whose header is 0xFE (its status may say more results follow).
//   A row can begin with 0xFE too (a length-encoded string of 2^24 bytes or more): a 0xFE packet ends the rows only
//   when it is shorter than 9 bytes (EOF) or, with CLIENT_DEPRECATE_EOF, shorter than 0xFFFFFF (such a row's first
//   packet is always exactly 0xFFFFFF long).
// - MARIADB_CLIENT_CACHE_METADATA (and MySQL's CLIENT_OPTIONAL_RESULTSET_METADATA) add one byte after the column
//   count, "metadata follows" (0/1); when it is 0 the column definitions are skipped but the EOF after them is not.
//   MariaDB 10.11 sends that byte on every result set once negotiated (text ones too), and 0 on COM_STMT_EXECUTE
//   whose columns its prepare response gave. It is read from the packet's length (a column count packet is otherwise
//   exactly its int<lenenc>), so this works whether or not the capability was negotiated.
// - COM_STMT_EXECUTE that opened a cursor ends after the column definitions: their EOF (or, with
//   CLIENT_DEPRECATE_EOF, the 0xFE OK the server sends in its place) carries SERVER_STATUS_CURSOR_EXISTS; the rows
//   come with COM_STMT_FETCH (rows, then EOF/OK).
// - COM_QUERY can answer 0xFB (LOCAL INFILE): the client sends the file in packets and an empty one, then the
//   server answers as to a query (OK or ERR, which may say more results follow).
// - COM_STMT_PREPARE: a 12-byte OK with the column and parameter counts, then the parameter definitions and an
//   EOF, then the column definitions and an EOF (each block only when its count is not 0; the EOFs not with
//   CLIENT_DEPRECATE_EOF).
// - COM_FIELD_LIST: column definitions then EOF (OK 0xFE with CLIENT_DEPRECATE_EOF). COM_STATISTICS: one text packet
//   with no marker. COM_QUIT, COM_STMT_CLOSE and COM_STMT_SEND_LONG_DATA: no answer. Everything else: one packet.
// - COM_CHANGE_USER: an authentication exchange; AuthSwitchRequest (0xFE) and AuthMoreData (0x01) hand the turn to
//   the client for one packet (MariaDB 10.11 always switches, with a fresh nonce). A pooled session answers a
//   client's COM_CHANGE_USER itself (the nonces differ), so this is for completeness.
// - A payload of exactly 0xFFFFFF bytes continues in the next packet (a large row, file chunk…), whatever that packet
//   holds: it is never read as a marker.
import { Command, MAX_PACKET_PAYLOAD, Marker, Status } from "./Protocol.ts"
import { ResponseFraming, type ServerVerdict } from "./ResponseFraming.ts"

export type { ServerVerdict }

/** Who speaks next: nobody (no command pending), the server, or the client (LOCAL INFILE data, an auth answer). */
export type Turn = "idle" | "server" | "client"

const State = {
  IDLE: 0,
  /** One packet, whatever it holds. */
  ONE: 1,
  /** The first packet of a (next) result: OK, ERR, LOCAL INFILE or a column count. */
  RESULT: 2,
  COLUMNS: 3,
  COLUMNS_EOF: 4,
  ROWS: 5,
  /** Packets until an EOF (or 0xFE OK) or an ERR: COM_FIELD_LIST, COM_STMT_FETCH, binlog dumps. */
  UNTIL_EOF: 6,
  PREPARE: 7,
  PREPARE_DEFS: 8,
  PREPARE_EOF: 9,
  AUTH: 10,
  CLIENT_INFILE: 11,
  CLIENT_AUTH: 12
} as const
type State = (typeof State)[keyof typeof State]

/** An EOF_Packet is 0xFE with fewer than 9 payload bytes. */
const EOF_LIMIT = 9
/** MariaDB's progress report: an ERR packet with this code. */
const PROGRESS = 0xffff

/** Bytes of the int<lenenc> whose first byte is `first` (0xFB, NULL, and 0xFF take one). */
const lenencSize = (first: number): number => (first === 0xfc ? 3 : first === 0xfd ? 4 : first === 0xfe ? 9 : 1)

export class ResponseEnd extends ResponseFraming {
  /** Server status flags of the last OK or EOF seen (an ERR carries none: the previous value stays). */
  status: number
  /** The response ended with an ERR. */
  failed = false
  /** The last OK's last-insert-id (0 when it had none): LAST_INSERT_ID() reads it on this server connection only. */
  lastInsertId = 0

  private state: State = State.IDLE
  private deprecateEof = false
  /** Definitions left in the current block (columns, or a prepared statement's parameters then columns). */
  private count = 0
  private thenColumns = 0
  /** The previous packet (per direction) was 0xFFFFFF long: this one continues it. */
  private serverContinues = false
  private clientContinues = false
  /** A verdict held back until the 0xFFFFFF packet that carried it has all its continuation packets. */
  private deferred: ServerVerdict | undefined

  /** `status`: the server status the session starts from (the login's OK). */
  constructor(status: number = Status.AUTOCOMMIT) {
    super()
    this.status = status
  }

  get turn(): Turn {
    if (this.state === State.IDLE) return "idle"
    return this.state === State.CLIENT_INFILE || this.state === State.CLIENT_AUTH ? "client" : "server"
  }

  /**
   * A command was sent: `command` is its first payload byte. "none": no response comes (COM_QUIT, COM_STMT_CLOSE,
   * COM_STMT_SEND_LONG_DATA). `deprecateEof`: the connection negotiated CLIENT_DEPRECATE_EOF.
   */
  begin(command: number, deprecateEof: boolean): "response" | "none" {
    this.deprecateEof = deprecateEof
    this.failed = false
    this.count = 0
    this.thenColumns = 0
    this.serverContinues = false
    this.clientContinues = false
    this.deferred = undefined
    this.resetFraming()
    switch (command) {
      case Command.QUIT:
      case Command.STMT_CLOSE:
      case Command.STMT_SEND_LONG_DATA:
        this.state = State.IDLE
        return "none"
      case Command.QUERY:
      case Command.STMT_EXECUTE:
      case Command.STMT_BULK_EXECUTE:
      case Command.PROCESS_INFO:
        this.state = State.RESULT
        break
      case Command.FIELD_LIST:
      case Command.STMT_FETCH:
      case Command.BINLOG_DUMP:
      case Command.BINLOG_DUMP_GTID:
      case Command.TABLE_DUMP:
        this.state = State.UNTIL_EOF
        break
      case Command.STMT_PREPARE:
        this.state = State.PREPARE
        break
      case Command.CHANGE_USER:
        this.state = State.AUTH
        break
      default:
        this.state = State.ONE
    }
    return "response"
  }

  /**
   * One server packet's payload, as framed on the wire (not reassembled: a 0xFFFFFF-byte payload is followed by its
   * continuation packets, which must be passed too). A payload longer than that is taken as already reassembled.
   */
  serverPacket(payload: Buffer): ServerVerdict {
    return this.classify(payload, 0, payload.length, payload.length)
  }

  /** One client packet's payload while `turn` is "client". True when the client's turn is over. */
  clientPacket(payload: Buffer): boolean {
    return this.clientPart(payload.length)
  }

  protected override clientPart(length: number): boolean {
    const continued = this.clientContinues
    this.clientContinues = length === MAX_PACKET_PAYLOAD
    // A 0xFFFFFF part and the packets that continue it are one packet: only its last part can end the turn.
    if (this.clientContinues) return false
    if (this.state === State.CLIENT_AUTH) {
      this.state = State.AUTH
      return true
    }
    if (this.state === State.CLIENT_INFILE && length === 0 && !continued) {
      // The empty packet that ends the file: the server now answers as to a query.
      this.state = State.RESULT
      return true
    }
    return false
  }

  /** `buf[at, at + available)` is the start of a payload of `length` bytes (available = min(length, HEAD) or more). */
  protected override classify(buf: Buffer, at: number, available: number, length: number): ServerVerdict {
    if (this.serverContinues) {
      this.serverContinues = length === MAX_PACKET_PAYLOAD
      if (this.serverContinues || this.deferred === undefined) return "more"
      const held = this.deferred
      this.deferred = undefined
      return held
    }
    this.serverContinues = length === MAX_PACKET_PAYLOAD
    const verdict = this.decide(buf, at, available, length)
    if (this.serverContinues && verdict !== "more") {
      this.deferred = verdict
      return "more"
    }
    return verdict
  }

  private decide(buf: Buffer, at: number, available: number, length: number): ServerVerdict {
    const first = available > 0 ? buf[at]! : -1
    switch (this.state) {
      case State.IDLE:
      case State.CLIENT_INFILE:
      case State.CLIENT_AUTH:
        // Nothing was asked (or it is the client's turn): not a response to anything; leave the state alone.
        return "more"
      case State.ONE:
        if (first === Marker.ERR) return this.err(buf, at, available)
        if (first === Marker.OK || (first === Marker.EOF && length >= EOF_LIMIT)) this.ok(buf, at, available)
        else if (first === Marker.EOF) this.eof(buf, at, available)
        return this.end()
      case State.RESULT:
        return this.result(buf, at, available, length, first)
      case State.COLUMNS:
        if (--this.count <= 0) this.state = this.deprecateEof ? State.ROWS : State.COLUMNS_EOF
        return "more"
      case State.COLUMNS_EOF:
        if (first === Marker.ERR) return this.err(buf, at, available)
        if (first === Marker.EOF && length < EOF_LIMIT) {
          this.eof(buf, at, available)
          if (this.status & Status.CURSOR_EXISTS) return this.end()
          this.state = State.ROWS
          return "more"
        }
        // Not the EOF this connection should send: take it as a row rather than wait for one that never comes.
        this.state = State.ROWS
        return this.rows(buf, at, available, length, first)
      case State.ROWS:
        return this.rows(buf, at, available, length, first)
      case State.UNTIL_EOF:
        if (first === Marker.ERR) return this.err(buf, at, available)
        if (first === Marker.EOF && length < this.eofLimit()) {
          this.terminator(buf, at, available, length)
          return this.end()
        }
        return "more"
      case State.PREPARE:
        return this.prepared(buf, at, available, length, first)
      case State.PREPARE_DEFS:
        if (--this.count > 0) return "more"
        if (!this.deprecateEof) {
          this.state = State.PREPARE_EOF
          return "more"
        }
        return this.nextDefinitions()
      case State.PREPARE_EOF:
        if (first === Marker.ERR) return this.err(buf, at, available)
        if (first === Marker.EOF) this.eof(buf, at, available)
        return this.nextDefinitions()
      case State.AUTH:
        if (first === Marker.ERR) return this.err(buf, at, available)
        if (first === Marker.OK) {
          this.ok(buf, at, available)
          return this.end()
        }
        // caching_sha2_password's "fast auth succeeded" (0x01 0x03) is followed by the server's OK, not the client.
        if (first === Marker.AUTH_MORE_DATA && length === 2 && available === 2 && buf[at + 1] === 0x03) return "more"
        if (first === Marker.EOF || first === Marker.AUTH_MORE_DATA || first === Marker.AUTH_NEXT_FACTOR) {
          this.state = State.CLIENT_AUTH
          return "infile"
        }
        return "more"
    }
  }

  private result(buf: Buffer, at: number, available: number, length: number, first: number): ServerVerdict {
    if (first === Marker.OK) {
      this.ok(buf, at, available)
      return this.status & Status.MORE_RESULTS_EXISTS ? "more" : this.end()
    }
    if (first === Marker.ERR) return this.err(buf, at, available)
    if (first === Marker.LOCAL_INFILE) {
      this.state = State.CLIENT_INFILE
      this.clientContinues = false
      return "infile"
    }
    if (first === Marker.EOF && length < this.eofLimit()) {
      // Not what a server sends first, but an end marker all the same: better than waiting for one.
      this.terminator(buf, at, available, length)
      return this.status & Status.MORE_RESULTS_EXISTS ? "more" : this.end()
    }
    if (first < 0) return "more"
    // A column count, maybe followed by the "metadata follows" byte.
    const size = lenencSize(first)
    let columns = first
    if (size > 1) {
      columns = 0
      for (let i = Math.min(size - 1, 4, available - 1); i >= 1; i--) columns = columns * 256 + buf[at + i]!
      if (size === 9) columns = Number.MAX_SAFE_INTEGER
    }
    const metadata = length > size && available > size ? buf[at + size]! !== 0 : true
    if (metadata && columns > 0) {
      this.state = State.COLUMNS
      this.count = columns
    } else {
      this.state = this.deprecateEof ? State.ROWS : State.COLUMNS_EOF
    }
    return "more"
  }

  private rows(buf: Buffer, at: number, available: number, length: number, first: number): ServerVerdict {
    if (first === Marker.ERR) return this.err(buf, at, available)
    if (first === Marker.EOF && length < this.eofLimit()) {
      this.terminator(buf, at, available, length)
      if (this.status & Status.MORE_RESULTS_EXISTS) {
        this.state = State.RESULT
        return "more"
      }
      return this.end()
    }
    return "more"
  }

  private prepared(buf: Buffer, at: number, available: number, length: number, first: number): ServerVerdict {
    if (first === Marker.ERR) return this.err(buf, at, available)
    if (first !== Marker.OK || available < 9) return this.end()
    const columns = buf[at + 5]! | (buf[at + 6]! << 8)
    const params = buf[at + 7]! | (buf[at + 8]! << 8)
    // MySQL's CLIENT_OPTIONAL_RESULTSET_METADATA: a 13th byte, 0 when no definitions follow. MariaDB sends 12.
    if (length > 12 && available > 12 && buf[at + 12] === 0) return this.end()
    this.thenColumns = params > 0 ? columns : 0
    const count = params > 0 ? params : columns
    if (count === 0) return this.end()
    this.state = State.PREPARE_DEFS
    this.count = count
    return "more"
  }

  private nextDefinitions(): ServerVerdict {
    if (this.thenColumns === 0) return this.end()
    this.state = State.PREPARE_DEFS
    this.count = this.thenColumns
    this.thenColumns = 0
    return "more"
  }

  private eofLimit(): number {
    return this.deprecateEof ? MAX_PACKET_PAYLOAD : EOF_LIMIT
  }

  /** An EOF, or with CLIENT_DEPRECATE_EOF the OK (0xFE header) that stands for it. */
  private terminator(buf: Buffer, at: number, available: number, length: number): void {
    if (length < EOF_LIMIT) this.eof(buf, at, available)
    else this.ok(buf, at, available)
  }

  private end(): ServerVerdict {
    this.state = State.IDLE
    return "done"
  }

  private err(buf: Buffer, at: number, available: number): ServerVerdict {
    if (available >= 3 && (buf[at + 1]! | (buf[at + 2]! << 8)) === PROGRESS) return "more"
    this.failed = true
    return this.end()
  }

  private eof(buf: Buffer, at: number, available: number): void {
    if (available >= 5) this.status = buf[at + 3]! | (buf[at + 4]! << 8)
  }

  /** OK: marker, int<lenenc> affected rows, int<lenenc> last insert id, int<2> status. */
  private ok(buf: Buffer, at: number, available: number): void {
    const stop = at + available
    let p = at + 1
    if (p >= stop) return
    p += lenencSize(buf[p]!)
    if (p >= stop) return
    const size = lenencSize(buf[p]!)
    if (p + size + 2 > stop) return
    let id = size === 1 ? buf[p]! : 0
    for (let i = size - 1; i >= 1; i--) id = id * 256 + buf[p + i]!
    p += size
    this.lastInsertId = id
    this.status = buf[p]! | (buf[p + 1]! << 8)
  }
}
