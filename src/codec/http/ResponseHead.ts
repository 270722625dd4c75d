// Server → proxy: an HTTP/1.x status line and its fields (RFC 9112 §4, §6.3). A response the proxy misreads would
// desynchronise a pooled connection shared by many clients, so framing problems are refused, not guessed at.
import { CR, type Decoded, describeByte, FIELD_BYTE, frame, invalid, LF, latin1, SP } from "./Decode.ts"
import { type FieldFacts, hasToken, readFields } from "./Fields.ts"

export interface ResponseHead extends FieldFacts {
  readonly status: number
  readonly reason: string
  readonly minor: number
}

/** How the body of a response is delimited. */
export const Framing = {
  /** HEAD, 1xx, 204, 304: no body whatever the fields say. */
  None: 0,
  Length: 1,
  Chunked: 2,
  /** Until the server closes the connection (HTTP/1.0 style); the connection cannot be reused. */
  Close: 3
} as const
export type Framing = (typeof Framing)[keyof typeof Framing]

const isDigit = (b: number | undefined) => b !== undefined && b >= 0x30 && b <= 0x39

/** Decodes the response head in `buf[start, end)`; its blank line must already be known to lie before `end`. */
export const decodeResponseHead = (buf: Buffer, start: number, end: number): Decoded<ResponseHead> => {
  let pos = start
  // "HTTP/1." DIGIT SP 3DIGIT
  if (
    end - pos < 12 ||
    buf[pos] !== 0x48 ||
    buf[pos + 1] !== 0x54 ||
    buf[pos + 2] !== 0x54 ||
    buf[pos + 3] !== 0x50 ||
    buf[pos + 4] !== 0x2f ||
    buf[pos + 5] !== 0x31 ||
    buf[pos + 6] !== 0x2e ||
    !isDigit(buf[pos + 7]) ||
    buf[pos + 8] !== SP ||
    !isDigit(buf[pos + 9]) ||
    !isDigit(buf[pos + 10]) ||
    !isDigit(buf[pos + 11])
  ) {
    return invalid(502, "malformed status line from the upstream server")
  }
  const minor = buf[pos + 7]! - 0x30
  const status = (buf[pos + 9]! - 0x30) * 100 + (buf[pos + 10]! - 0x30) * 10 + (buf[pos + 11]! - 0x30)
  if (status < 100) return invalid(502, `status ${status} from the upstream server`)
  pos += 12
  let reason = ""
  if (pos < end && buf[pos] === SP) {
    const reasonStart = ++pos
    while (pos < end && buf[pos] !== CR) {
      if (FIELD_BYTE[buf[pos]!] !== 1)
        return invalid(502, `invalid byte ${describeByte(buf[pos]!)} in the reason phrase`)
      pos++
    }
    reason = latin1(buf, reasonStart, pos)
  }
  if (pos + 1 >= end || buf[pos] !== CR || buf[pos + 1] !== LF) return invalid(502, "status line without CRLF")
  pos += 2
  const head: ResponseHead = {
    status,
    reason,
    minor,
    fields: [],
    contentLength: -1,
    transferEncoding: "",
    connection: "",
    upgrade: undefined,
    host: undefined,
    hostCount: 0,
    expect: undefined
  }
  const next = readFields(buf, pos, end, head)
  if (typeof next !== "number") return invalid(502, `upstream response: ${next.reason}`)
  if (head.transferEncoding.length > 0 && head.contentLength >= 0) {
    return invalid(502, "upstream response has both Content-Length and Transfer-Encoding")
  }
  return frame(head, next - start)
}

/** The framing of `head`'s body, given the method of the request it answers (RFC 9112 §6.3). */
export const responseFraming = (head: ResponseHead, method: string): Framing => {
  const s = head.status
  if (method === "HEAD" || s < 200 || s === 204 || s === 304) return Framing.None
  if (head.transferEncoding.length > 0) {
    // Only "chunked" alone is relayed as chunked; a coding list ending elsewhere is read until close (§6.3 rule 4).
    return head.transferEncoding === "chunked" || head.transferEncoding.endsWith(",chunked")
      ? Framing.Chunked
      : Framing.Close
  }
  if (head.contentLength >= 0) return Framing.Length
  return Framing.Close
}

/** Whether the server lets the connection be reused after this response. */
export const responseKeepsAlive = (head: ResponseHead): boolean =>
  head.minor >= 1 ? !hasToken(head.connection, "close") : hasToken(head.connection, "keep-alive")
