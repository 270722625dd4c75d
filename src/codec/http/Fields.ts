// Both directions: the field lines of an HTTP/1.x head (RFC 9112 §5), read strictly, because every leniency a proxy
// allows that the server behind it does not (or the other way round) is a request-smuggling vector.
import { COLON, CR, describeByte, FIELD_BYTE, HTAB, type Invalid, invalid, LF, latin1, SP, TCHAR } from "./Decode.ts"

/**
 * The fields of one head, flat: `[name as received, name lower-cased, value without surrounding whitespace, ...]`.
 * One array per head instead of an object per field.
 */
export type FieldList = Array<string>

export const FIELD_STRIDE = 3

/** What the framing and routing of a message depend on, gathered while the fields are read. */
export interface FieldFacts {
  fields: FieldList
  /** -1: no Content-Length. Several equal values count as one. */
  contentLength: number
  /** Lower-cased codings of every Transfer-Encoding field, in order; "" when there is none. */
  transferEncoding: string
  /** Lower-cased tokens of every Connection field, comma-separated without spaces; "" when there is none. */
  connection: string
  upgrade: string | undefined
  host: string | undefined
  hostCount: number
  expect: string | undefined
}

/** Field lines a head may hold; more is refused like an oversized head. */
export const MAX_FIELDS = 200

const isDigits = (s: string): boolean => {
  if (s.length === 0 || s.length > 15) return false
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x30 || c > 0x39) return false
  }
  return true
}

/** "5", or a list of equal values "5, 5" (RFC 9110 §8.6 allows a recipient to accept it); -2 when unusable. */
const contentLengthOf = (value: string): number => {
  if (isDigits(value)) return Number(value)
  let seen = -1
  for (const part of value.split(",")) {
    const p = part.trim()
    if (!isDigits(p)) return -2
    const n = Number(p)
    if (seen >= 0 && n !== seen) return -2
    seen = n
  }
  return seen
}

const lowerTokens = (value: string): string => {
  let out = ""
  for (const part of value.split(",")) {
    const t = part.trim().toLowerCase()
    if (t.length > 0) out = out.length === 0 ? t : `${out},${t}`
  }
  return out
}

/**
 * Reads field lines from `pos` (just after the start line) up to the blank line, which must lie before `end`
 * (find it with `headEnd` first), into `facts` (fresh: empty fields, contentLength -1, empty strings). Returns the
 * index after the blank line, or why the head is invalid (`status` is the answer for a request).
 */
export const readFields = (buf: Buffer, pos: number, end: number, facts: FieldFacts): number | Invalid => {
  const fields = facts.fields
  let count = 0
  for (;;) {
    if (pos >= end) return invalid(400, "head ended without a blank line")
    const first = buf[pos]!
    if (first === CR) {
      if (pos + 1 >= end || buf[pos + 1] !== LF) return invalid(400, "CR without LF after the fields")
      return pos + 2
    }
    if (first === LF) return invalid(400, "bare LF in the head")
    if (first === SP || first === HTAB)
      return invalid(400, "obsolete line folding (a field line starting with whitespace)")
    if (++count > MAX_FIELDS) return invalid(431, `more than ${MAX_FIELDS} header fields`)
    const nameStart = pos
    while (pos < end && TCHAR[buf[pos]!] === 1) pos++
    if (pos === nameStart || pos >= end || buf[pos] !== COLON) {
      const b = pos < end ? buf[pos] : undefined
      return invalid(
        400,
        b === SP || b === HTAB
          ? "whitespace between a field name and its colon"
          : `invalid byte ${b === undefined ? "(end)" : describeByte(b)} in a field name`
      )
    }
    const name = latin1(buf, nameStart, pos)
    pos++
    while (pos < end && (buf[pos] === SP || buf[pos] === HTAB)) pos++
    const valueStart = pos
    let valueEnd = pos
    for (;;) {
      if (pos >= end) return invalid(400, "field line without CRLF")
      const b = buf[pos]!
      if (b === CR) break
      if (FIELD_BYTE[b] !== 1) {
        return invalid(400, b === LF ? "bare LF in a field value" : `invalid byte ${describeByte(b)} in a field value`)
      }
      pos++
      if (b !== SP && b !== HTAB) valueEnd = pos
    }
    if (pos + 1 >= end || buf[pos + 1] !== LF) return invalid(400, "CR without LF in a field line")
    pos += 2
    const value = latin1(buf, valueStart, valueEnd)
    const lower = name.toLowerCase()
    fields.push(name, lower, value)
    switch (lower.length) {
      case 4:
        if (lower === "host") {
          facts.host = value
          facts.hostCount++
        }
        break
      case 6:
        if (lower === "expect") facts.expect = value
        break
      case 7:
        if (lower === "upgrade") facts.upgrade = value
        break
      case 10:
        if (lower === "connection") {
          const tokens = lowerTokens(value)
          if (tokens.length > 0)
            facts.connection = facts.connection.length === 0 ? tokens : `${facts.connection},${tokens}`
        }
        break
      case 14:
        if (lower === "content-length") {
          const n = contentLengthOf(value)
          if (n === -2 || (facts.contentLength >= 0 && n !== facts.contentLength)) {
            return invalid(400, `conflicting or malformed Content-Length "${value}"`)
          }
          facts.contentLength = n
        }
        break
      case 17:
        if (lower === "transfer-encoding") {
          const tokens = lowerTokens(value)
          // An empty value would let the proxy see no coding where a server might still see the field.
          if (tokens.length === 0) return invalid(400, "empty Transfer-Encoding")
          facts.transferEncoding = facts.transferEncoding.length === 0 ? tokens : `${facts.transferEncoding},${tokens}`
        }
        break
    }
  }
}

/** Whether the comma-separated lower-cased token list `list` holds `token`. */
export const hasToken = (list: string, token: string): boolean => {
  if (list.length === 0) return false
  if (list === token) return true
  let from = 0
  for (;;) {
    const at = list.indexOf(token, from)
    if (at < 0) return false
    const after = at + token.length
    if ((at === 0 || list.charCodeAt(at - 1) === 0x2c) && (after === list.length || list.charCodeAt(after) === 0x2c)) {
      return true
    }
    from = at + 1
  }
}
