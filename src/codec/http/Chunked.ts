// Both directions: the chunked transfer coding (RFC 9112 §7.1). The proxy relays chunked bodies byte for byte when
// both sides speak HTTP/1.1, so this reader only has to find where the body ends and refuse anything a server
// could read differently (bare LF, junk after chunk data, oversized sizes); it can also hand out the decoded data.
import { CR, describeByte, FIELD_BYTE, HTAB, LF, SP, TCHAR } from "./Decode.ts"

/** Receives decoded chunk data: `buf[start, end)`, valid only during the call. */
export interface ChunkSink {
  chunkData(buf: Buffer, start: number, end: number): void
}

const SIZE_START = 0
const SIZE = 1
const EXT = 2
const SIZE_LF = 3
const DATA = 4
const DATA_CR = 5
const DATA_LF = 6
const TRAILER_START = 7
const TRAILER_NAME = 8
const TRAILER_VALUE = 9
const TRAILER_LF = 10
const FINAL_LF = 11
const DONE = 12

/** A chunk-size line (size plus extensions) longer than this is refused. */
export const MAX_CHUNK_LINE = 4096
/** The trailer section, all fields together. */
export const MAX_TRAILERS = 16384
// 13 hex digits = 2^52: beyond that the size would not survive as a JS number.
const MAX_SIZE_DIGITS = 13

const HEX: Int8Array = (() => {
  const t = new Int8Array(256).fill(-1)
  for (let i = 0; i < 10; i++) t[0x30 + i] = i
  for (let i = 0; i < 6; i++) {
    t[0x41 + i] = 10 + i
    t[0x61 + i] = 10 + i
  }
  return t
})()

export const CHUNK_MORE = -1
export const CHUNK_INVALID = -2

export class ChunkedReader {
  private state = SIZE_START
  private remaining = 0
  private digits = 0
  private lineBytes = 0
  private trailerBytes = 0
  /** Why the body is invalid, after `read` returned CHUNK_INVALID. */
  error = ""
  /** With `keepTrailers`: the trailer section's field lines, as received, once the body has ended. */
  trailerText = ""
  private readonly keepTrailers: boolean

  constructor(keepTrailers = false) {
    this.keepTrailers = keepTrailers
  }

  /** Ready for the next body. */
  reset(): void {
    this.state = SIZE_START
    this.remaining = 0
    this.digits = 0
    this.lineBytes = 0
    this.trailerBytes = 0
    this.error = ""
    this.trailerText = ""
  }

  get done(): boolean {
    return this.state === DONE
  }

  private fail(reason: string): number {
    this.error = reason
    return CHUNK_INVALID
  }

  /**
   * Reads `buf[pos, end)`: returns the index just after the body's last byte, CHUNK_MORE when every byte belongs to
   * the body and it has not ended, or CHUNK_INVALID (see `error`). With a sink, chunk data is handed to it.
   */
  read(buf: Buffer, pos: number, end: number, sink?: ChunkSink): number {
    while (pos < end) {
      const state = this.state
      if (state === DATA) {
        const take = Math.min(this.remaining, end - pos)
        if (sink !== undefined) sink.chunkData(buf, pos, pos + take)
        pos += take
        this.remaining -= take
        if (this.remaining === 0) this.state = DATA_CR
        continue
      }
      const b = buf[pos]!
      pos++
      switch (state) {
        case SIZE_START: {
          const d = HEX[b]!
          if (d < 0) return this.fail(`invalid byte ${describeByte(b)} where a chunk size should start`)
          this.remaining = d
          this.digits = 1
          this.lineBytes = 1
          this.state = SIZE
          break
        }
        case SIZE: {
          const d = HEX[b]!
          if (d >= 0) {
            if (++this.digits > MAX_SIZE_DIGITS) return this.fail("chunk size too large")
            this.remaining = this.remaining * 16 + d
            this.lineBytes++
          } else if (b === CR) this.state = SIZE_LF
          else if (b === 0x3b || b === SP || b === HTAB) {
            this.lineBytes++
            this.state = EXT
          } else return this.fail(`invalid byte ${describeByte(b)} in a chunk size`)
          break
        }
        case EXT:
          if (b === CR) this.state = SIZE_LF
          else if (b === LF || FIELD_BYTE[b] !== 1)
            return this.fail(`invalid byte ${describeByte(b)} in a chunk extension`)
          else if (++this.lineBytes > MAX_CHUNK_LINE) return this.fail("chunk extension too long")
          break
        case SIZE_LF:
          if (b !== LF) return this.fail("chunk size line without LF after CR")
          this.state = this.remaining === 0 ? TRAILER_START : DATA
          break
        case DATA_CR:
          if (b !== CR) return this.fail(`${describeByte(b)} instead of CRLF after chunk data`)
          this.state = DATA_LF
          break
        case DATA_LF:
          if (b !== LF) return this.fail(`${describeByte(b)} instead of LF after chunk data`)
          this.state = SIZE_START
          break
        case TRAILER_START:
          if (b === CR) this.state = FINAL_LF
          else if (TCHAR[b] === 1) {
            this.state = TRAILER_NAME
            if (this.keepTrailers) this.trailerText += String.fromCharCode(b)
          } else return this.fail(`invalid byte ${describeByte(b)} at the start of a trailer field`)
          if (++this.trailerBytes > MAX_TRAILERS) return this.fail("trailer section too large")
          break
        case TRAILER_NAME:
          if (b === 0x3a) this.state = TRAILER_VALUE
          else if (TCHAR[b] !== 1) return this.fail(`invalid byte ${describeByte(b)} in a trailer field name`)
          if (this.keepTrailers) this.trailerText += String.fromCharCode(b)
          if (++this.trailerBytes > MAX_TRAILERS) return this.fail("trailer section too large")
          break
        case TRAILER_VALUE:
          if (b === CR) this.state = TRAILER_LF
          else if (FIELD_BYTE[b] !== 1) return this.fail(`invalid byte ${describeByte(b)} in a trailer field value`)
          else if (this.keepTrailers) this.trailerText += String.fromCharCode(b)
          if (++this.trailerBytes > MAX_TRAILERS) return this.fail("trailer section too large")
          break
        case TRAILER_LF:
          if (b !== LF) return this.fail("trailer field without LF after CR")
          if (this.keepTrailers) this.trailerText += "\n"
          this.state = TRAILER_START
          break
        case FINAL_LF:
          if (b !== LF) return this.fail("trailer section without LF after CR")
          this.state = DONE
          return pos
        default:
          return this.fail("data after the end of a chunked body")
      }
    }
    return CHUNK_MORE
  }
}

/** `trailerText` as [name, value] pairs, names lower-cased. */
export const parseTrailerText = (text: string): Array<[string, string]> => {
  const out: Array<[string, string]> = []
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":")
    if (colon > 0) out.push([line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()])
  }
  return out
}

/** The chunk-size line that precedes `length` bytes of data when the proxy itself encodes a body as chunked. */
export const chunkHeader = (length: number): string => `${length.toString(16)}\r\n`

export const LAST_CHUNK = "0\r\n\r\n"
