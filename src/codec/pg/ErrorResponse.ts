// Proxy → frontend (and backend → proxy): ErrorResponse 'E', a list of typed fields ending with a NUL.
import { decodeBackendMessage } from "./BackendMessage.ts"
import { type Decoded, describeByte, type Frame, frame, type Invalid, invalid } from "./Decode.ts"
import { MAX_BACKEND_MESSAGE_LENGTH } from "./Protocol.ts"

export interface ErrorResponseInput {
  /** FATAL when the proxy closes the connection after sending it, as it does before the startup completes. */
  readonly severity: "FATAL" | "ERROR"
  /** SQLSTATE: five digits or upper-case letters, e.g. 3D000, 28000, 57P03, 08006, XX000. */
  readonly code: string
  readonly message: string
  readonly detail?: string
  readonly hint?: string
}

export interface ErrorResponse {
  /** Keyed by field type: S, V, C, M, D, H, P, W, F, L, R ... */
  readonly fields: Map<string, string>
}

const SQLSTATE = /^[0-9A-Z]{5}$/

// A NUL would end the field early and make the client read the rest as further fields, so it cannot pass through.
const clean = (text: string): string => text.replaceAll("\0", "\uFFFD")

/**
 * Builds the message a client sees when the proxy refuses it. Text is sent as UTF-8, the encoding every client
 * assumes before `client_encoding` is settled. Throws RangeError on a malformed SQLSTATE (a constant of the caller's).
 */
export const encodeErrorResponse = (error: ErrorResponseInput): Buffer => {
  if (!SQLSTATE.test(error.code)) throw new RangeError(`invalid SQLSTATE ${JSON.stringify(error.code)}`)
  const fields: Array<readonly [string, string]> = [
    // S may be localised by a server; V never is, and clients since 9.6 prefer it. The proxy speaks English in both.
    ["S", error.severity],
    ["V", error.severity],
    ["C", error.code],
    ["M", clean(error.message)]
  ]
  if (error.detail !== undefined) fields.push(["D", clean(error.detail)])
  if (error.hint !== undefined) fields.push(["H", clean(error.hint)])
  const body = Buffer.from(fields.map(([type, value]) => `${type}${value}\0`).join("") + "\0", "utf8")
  const out = Buffer.allocUnsafe(5 + body.length)
  out[0] = 0x45
  out.writeInt32BE(4 + body.length, 1)
  body.copy(out, 5)
  return out
}

// Not fatal: these texts are for people and logs, where a replacement character is better than losing the error.
const utf8 = new TextDecoder("utf-8", { ignoreBOM: true })

/** One whole 'E' message off the front of `buf`. Never throws. */
export const decodeErrorResponse = (
  buf: Buffer,
  maxLength: number = MAX_BACKEND_MESSAGE_LENGTH
): Decoded<ErrorResponse> => {
  const message = decodeBackendMessage(buf, maxLength)
  if (message._tag !== "Frame") return message
  if (message.value.type !== "E") {
    return invalid(`expected ErrorResponse ('E'), got ${describeByte(message.value.type.charCodeAt(0))}`)
  }
  const fields = decodeErrorFields(message.value.body)
  return fields._tag === "Frame" ? frame(fields.value, message.size) : fields
}

/** The body of an ErrorResponse or a NoticeResponse ('N'), which share the layout. */
export const decodeErrorFields = (body: Buffer): Frame<ErrorResponse> | Invalid => {
  const fields = new Map<string, string>()
  let offset = 0
  for (;;) {
    if (offset >= body.length) return invalid("invalid ErrorResponse: missing terminator")
    const type = body[offset]!
    if (type === 0) {
      if (offset !== body.length - 1) return invalid("invalid ErrorResponse: bytes after the terminator")
      return frame({ fields }, body.length)
    }
    const end = body.indexOf(0, offset + 1)
    if (end < 0) return invalid(`invalid ErrorResponse: field ${describeByte(type)} not NUL-terminated`)
    const key = String.fromCharCode(type)
    if (fields.has(key)) return invalid(`invalid ErrorResponse: duplicate field ${describeByte(type)}`)
    fields.set(key, utf8.decode(body.subarray(offset + 1, end)))
    offset = end + 1
  }
}

/**
 * The body of an ErrorResponse or NoticeResponse with its cursor position ('P', a decimal count of characters into
 * the query string) moved back by `by`: for a query the proxy sent with `by` characters of its own in front
 * (src/listeners/postgres/pool/deferredBegin.ts). The body itself when it has no such field, or a malformed one
 * (passed on as the server sent it); `internal position` ('p') counts in another text and is left alone.
 */
export const shiftPosition = (body: Buffer, by: number): Buffer => {
  let offset = 0
  while (offset < body.length && body[offset] !== 0) {
    const end = body.indexOf(0, offset + 1)
    if (end < 0) return body
    if (body[offset] === 0x50) {
      const text = body.toString("latin1", offset + 1, end)
      const position = /^[0-9]{1,10}$/.test(text) ? Number(text) - by : 0
      if (position < 1) return body
      return Buffer.concat([body.subarray(0, offset + 1), Buffer.from(String(position), "latin1"), body.subarray(end)])
    }
    offset = end + 1
  }
  return body
}
