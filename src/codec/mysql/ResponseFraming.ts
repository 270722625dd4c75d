// Raw bytes → packets for ResponseEnd: a session forwards a server's bytes in whatever chunks they arrive, and needs
// to know at which byte a response ends without reassembling packets or copying them. Packet headers and the first
// bytes of a payload (all that decides what a packet is) may be split across chunks: they are gathered in a small
// buffer allocated once; the rest of each payload is only counted.
import { PACKET_HEADER } from "./Protocol.ts"

/** "more": the response goes on; "done": that was its last packet; "infile": the client sends next (clientPacket). */
export type ServerVerdict = "more" | "done" | "infile"

/** The bytes of a packet's start that decide what it is (an OK's status sits at most 21 bytes in). */
export const HEAD = 24

export abstract class ResponseFraming {
  private readonly head = Buffer.alloc(HEAD)
  private headerSeen = 0
  private length = 0
  private left = 0
  private headFill = 0
  private classified = false
  private verdict: ServerVerdict = "more"

  /** A server packet: `buf[at, at + available)` is the start of its payload of `length` bytes. */
  protected abstract classify(buf: Buffer, at: number, available: number, length: number): ServerVerdict

  /** A client packet of `length` bytes during the client's turn: true when that turn is over. */
  protected abstract clientPart(length: number): boolean

  /** A new command: the next byte starts a packet. */
  protected resetFraming(): void {
    this.headerSeen = 0
    this.length = 0
    this.left = 0
    this.headFill = 0
    this.classified = false
    this.verdict = "more"
  }

  /**
   * Raw server bytes from `from` on, in whatever chunks they arrive. Returns the offset just past the packet that
   * ends the response or hands the turn to the client ("infile": see `turn`), or -1 when the chunk ends first.
   */
  serverBytes(buf: Buffer, from = 0): number {
    let i = from
    const end = buf.length
    while (i < end) {
      if (this.headerSeen < PACKET_HEADER) {
        if (!this.headerByte(buf[i++]!)) continue
        this.headFill = 0
        this.classified = false
        if (this.length > 0) continue
      }
      if (!this.classified) {
        const need = Math.min(this.length, HEAD)
        if (this.headFill === 0 && end - i >= need) {
          this.verdict = this.classify(buf, i, need, this.length)
        } else {
          const n = Math.min(need - this.headFill, end - i)
          buf.copy(this.head, this.headFill, i, i + n)
          this.headFill += n
          i += n
          this.left -= n
          if (this.headFill < need) continue
          this.verdict = this.classify(this.head, 0, need, this.length)
        }
        this.classified = true
      }
      i = this.skipPayload(i, end)
      if (this.left > 0) continue
      this.length = 0
      if (this.verdict !== "more") return i
    }
    return -1
  }

  /** Raw client bytes while `turn` is "client": the offset just past the packet that ends its turn, or -1. */
  clientBytes(buf: Buffer, from = 0): number {
    let i = from
    const end = buf.length
    while (i < end) {
      if (this.headerSeen < PACKET_HEADER && !this.headerByte(buf[i++]!)) continue
      i = this.skipPayload(i, end)
      if (this.left > 0) continue
      const over = this.clientPart(this.length)
      this.length = 0
      if (over) return i
    }
    return -1
  }

  /** One byte of a packet header; true when the header is whole (the payload's length then in `length` and `left`). */
  private headerByte(b: number): boolean {
    if (this.headerSeen < 3) this.length |= b << (8 * this.headerSeen)
    if (++this.headerSeen < PACKET_HEADER) return false
    this.left = this.length
    return true
  }

  /** Passes the current packet's payload bytes in `[i, end)`; when none are left, the next byte starts a header. */
  private skipPayload(i: number, end: number): number {
    const n = Math.min(this.left, end - i)
    this.left -= n
    if (this.left === 0) this.headerSeen = 0
    return i + n
  }
}
