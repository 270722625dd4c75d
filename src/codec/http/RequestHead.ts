// Client → proxy: an HTTP/1.0 or 1.1 request line and its fields (RFC 9112 §3, §6), with the body's framing decided
// once, here, so that the proxy and the server behind it can never disagree on where this request ends.
import { CR, type Decoded, describeByte, frame, type Invalid, invalid, LF, latin1, SP, TCHAR } from "./Decode.ts"
import { type FieldFacts, readFields } from "./Fields.ts"

export interface RequestHead extends FieldFacts {
  readonly method: string
  /** What the server behind gets: the origin-form path and query ("/a?b"), "*", or an absolute-form target's path. */
  target: string
  /** The authority of an absolute-form target ("example.com:8080"); it overrides Host (RFC 9112 §3.2.2). */
  authority: string | undefined
  /** 0 for HTTP/1.0, 1 for HTTP/1.1 (and any later 1.x, which must be understood as 1.1). */
  minor: number
  /** The body is chunked (Transfer-Encoding: chunked); else `contentLength` bytes, 0 when absent. */
  chunked: boolean
}

/** The HTTP/2 connection preface a prior-knowledge (h2c) client sends first. */
export const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1")

/** true: the bytes are the h2 preface; false: they cannot be; undefined: too few bytes to tell. */
export const isH2Preface = (buf: Buffer, start: number, end: number): boolean | undefined => {
  const n = Math.min(end - start, H2_PREFACE.length)
  for (let i = 0; i < n; i++) if (buf[start + i] !== H2_PREFACE[i]) return false
  return n === H2_PREFACE.length ? true : undefined
}

/** Empty lines a client may send before a request line (RFC 9112 §2.2: after a body some clients add a CRLF). */
export const skipEmptyLines = (buf: Buffer, start: number, end: number): number => {
  while (start + 1 < end && buf[start] === CR && buf[start + 1] === LF) start += 2
  return start
}

const TARGET_BYTE = (b: number) => b > 0x20 && b < 0x7f

/** How far into a head still arriving the method is checked; longer methods are left to the whole-head decoder. */
const METHOD_PEEK = 32

/**
 * What already makes a request head invalid while it is still arriving (`buf[start, end)` holds no blank line yet),
 * so that the client gets its 400 at once instead of a 408 when the head deadline passes: a method that is not a
 * token (binary bytes, a TLS ClientHello on a plain port), or a bare LF anywhere. RFC 9112 §2.2 lets a server accept
 * a bare LF as a line end; this engine does not, because the server behind it might read the lines differently, and
 * a head ending in bare LFs would otherwise never be seen to end. `from`: bytes before it were checked already.
 */
export const partialHeadError = (buf: Buffer, start: number, from: number, end: number): Invalid | undefined => {
  if (from < start + METHOD_PEEK) {
    let pos = start
    const stop = Math.min(end, start + METHOD_PEEK)
    while (pos < stop && TCHAR[buf[pos]!] === 1) pos++
    if (pos < stop) {
      const b = buf[pos]!
      if (b === SP) {
        if (pos === start) return invalid(400, "request line without a method")
      } else if (b === LF) {
        // After method bytes or at the start, an LF has no CR before it.
        return invalid(400, "bare LF in the head")
      } else if (!(b === CR && pos === start && pos + 1 === end)) {
        // (A lone CR may still become the CRLF of an empty line before the request line.)
        return invalid(400, `invalid byte ${describeByte(b)} in the method`)
      }
    }
  }
  for (let i = Math.max(start, from); i < end; i++) {
    if (buf[i] === LF && (i === start || buf[i - 1] !== CR)) return invalid(400, "bare LF in the head")
  }
  return undefined
}

const at = (buf: Buffer, pos: number, end: number): string => (pos < end ? describeByte(buf[pos]!) : "(end of head)")

/**
 * Decodes the request head in `buf[start, end)`, whose blank line must already be known to lie before `end`
 * (see `headEnd`). `size` in the frame counts from `start`.
 */
export const decodeRequestHead = (buf: Buffer, start: number, end: number): Decoded<RequestHead> => {
  let pos = start
  while (pos < end && TCHAR[buf[pos]!] === 1) pos++
  if (pos === start || pos >= end || buf[pos] !== SP) {
    return invalid(
      400,
      pos === start ? "request line without a method" : `invalid byte ${at(buf, pos, end)} in the method`
    )
  }
  const method = latin1(buf, start, pos)
  const targetStart = ++pos
  while (pos < end && TARGET_BYTE(buf[pos]!)) pos++
  if (pos === targetStart || pos >= end || buf[pos] !== SP) {
    return invalid(
      400,
      pos === targetStart ? "request line without a target" : `invalid byte ${at(buf, pos, end)} in the request target`
    )
  }
  const rawTarget = latin1(buf, targetStart, pos)
  pos++
  // "HTTP/" DIGIT "." DIGIT CRLF
  if (
    end - pos < 10 ||
    buf[pos] !== 0x48 ||
    buf[pos + 1] !== 0x54 ||
    buf[pos + 2] !== 0x54 ||
    buf[pos + 3] !== 0x50 ||
    buf[pos + 4] !== 0x2f ||
    buf[pos + 6] !== 0x2e ||
    buf[pos + 8] !== CR ||
    buf[pos + 9] !== LF
  ) {
    return invalid(400, "malformed HTTP version in the request line")
  }
  const major = buf[pos + 5]! - 0x30
  const minor = buf[pos + 7]! - 0x30
  if (major < 0 || major > 9 || minor < 0 || minor > 9)
    return invalid(400, "malformed HTTP version in the request line")
  if (major !== 1) return invalid(505, `HTTP/${major}.${minor} is not supported here`)
  pos += 10

  const head: RequestHead = {
    method,
    target: rawTarget,
    authority: undefined,
    minor: minor === 0 ? 0 : 1,
    chunked: false,
    fields: [],
    contentLength: -1,
    transferEncoding: "",
    connection: "",
    upgrade: undefined,
    host: undefined,
    hostCount: 0,
    expect: undefined
  }

  const c0 = rawTarget.charCodeAt(0)
  if (c0 !== 0x2f) {
    if (rawTarget === "*") {
      if (method !== "OPTIONS") return invalid(400, `"*" is a target for OPTIONS only, not ${method}`)
    } else if (method === "CONNECT") {
      // authority-form: the caller refuses CONNECT, which a reverse proxy does not tunnel.
    } else {
      const m = /^https?:\/\/([^/?#]*)([^#]*)/i.exec(rawTarget)
      if (m === null || m[1]!.length === 0)
        return invalid(400, `request target "${rawTarget}" is neither a path nor an absolute URI`)
      if (m[1]!.includes("@")) return invalid(400, "userinfo in the request target")
      head.authority = m[1]
      const rest = m[2]!
      head.target = rest.length === 0 ? "/" : rest.charCodeAt(0) === 0x3f ? `/${rest}` : rest
    }
  }

  const next = readFields(buf, pos, end, head)
  if (typeof next !== "number") return next
  if (head.hostCount > 1) return invalid(400, "more than one Host field")
  if (head.hostCount === 0 && head.authority === undefined) return invalid(400, "no Host field")

  if (head.transferEncoding.length > 0) {
    if (head.minor === 0) return invalid(400, "Transfer-Encoding in an HTTP/1.0 request")
    if (head.contentLength >= 0) return invalid(400, "both Content-Length and Transfer-Encoding")
    if (head.transferEncoding !== "chunked") {
      const codings = head.transferEncoding.split(",")
      if (codings[codings.length - 1] !== "chunked" || codings.indexOf("chunked") !== codings.length - 1) {
        return invalid(400, `Transfer-Encoding "${head.transferEncoding}" does not end with a single chunked`)
      }
      return invalid(501, `Transfer-Encoding "${head.transferEncoding}" is not supported (only chunked)`)
    }
    head.chunked = true
  }
  return frame(head, next - start)
}
