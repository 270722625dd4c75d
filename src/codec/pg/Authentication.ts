// The login exchange, both directions: the server's 'R' requests (AuthenticationOk, SASL, MD5, cleartext) and the
// client's 'p' answers (PasswordMessage, SASLInitialResponse and SASLResponse share the type byte: the state of the
// exchange says which one arrived). The proxy speaks both sides when it authenticates clients itself and logs in to
// pooled server connections.
import { AuthenticationCode, BackendType } from "./BackendMessage.ts"
import { type Frame, frame, type Invalid, invalid } from "./Decode.ts"
import { encodeTypedMessage } from "./Framing.ts"
import { FrontendType } from "./FrontendMessage.ts"

export {
  decodeFrontendMessage,
  type FrontendMessage,
  FrontendType,
  MAX_PASSWORD_MESSAGE_LENGTH,
  MAX_SASL_MESSAGE_LENGTH
} from "./FrontendMessage.ts"

const request = (code: number, data?: Uint8Array): Buffer => {
  const body = Buffer.allocUnsafe(4 + (data?.length ?? 0))
  body.writeInt32BE(code, 0)
  if (data) body.set(data, 4)
  return encodeTypedMessage(BackendType.Authentication, body)
}

const cstring = (text: string): Buffer => Buffer.from(`${text}\0`, "utf8")

export const encodeAuthenticationOk = (): Buffer => request(AuthenticationCode.Ok)

export const encodeAuthenticationCleartext = (): Buffer => request(AuthenticationCode.CleartextPassword)

/** Throws RangeError unless the salt is 4 bytes: the caller's bug, never the peer's. */
export const encodeAuthenticationMd5 = (salt: Uint8Array): Buffer => {
  if (salt.length !== 4) throw new RangeError(`md5 salt must be 4 bytes, got ${salt.length}`)
  return request(AuthenticationCode.MD5Password, salt)
}

/** The mechanisms the server accepts, in its order of preference, e.g. ["SCRAM-SHA-256"]. */
export const encodeAuthenticationSasl = (mechanisms: readonly string[]): Buffer =>
  request(AuthenticationCode.SASL, Buffer.concat([...mechanisms.map(cstring), Buffer.of(0)]))

/** The server-first-message. */
export const encodeAuthenticationSaslContinue = (data: Uint8Array): Buffer =>
  request(AuthenticationCode.SASLContinue, data)

/** The server-final-message ("v=..."); AuthenticationOk follows it. */
export const encodeAuthenticationSaslFinal = (data: Uint8Array): Buffer => request(AuthenticationCode.SASLFinal, data)

export interface AuthenticationRequest {
  /** See AuthenticationCode. */
  readonly code: number
  /** What follows the code: the md5 salt, the SASL mechanism list or message; a view into the input. */
  readonly data: Buffer
}

/**
 * The body of an 'R' message as decodeBackendMessage frames it. The codes the proxy acts on are checked for their
 * shape (Ok and cleartext carry nothing, MD5 exactly a 4-byte salt, SASL a mechanism list); others pass as they are,
 * for the caller to refuse. Never throws.
 */
export const decodeAuthentication = (body: Buffer): Frame<AuthenticationRequest> | Invalid => {
  if (body.length < 4) return invalid(`invalid authentication request: ${body.length} bytes`)
  const code = body.readInt32BE(0)
  const data = body.subarray(4)
  switch (code) {
    case AuthenticationCode.Ok:
    case AuthenticationCode.CleartextPassword:
      if (data.length !== 0) return invalid(`invalid authentication request ${code}: ${data.length} bytes of data`)
      break
    case AuthenticationCode.MD5Password:
      if (data.length !== 4) return invalid(`invalid MD5 authentication request: salt of ${data.length} bytes`)
      break
    case AuthenticationCode.SASL: {
      const mechanisms = decodeSaslMechanisms(data)
      if (mechanisms._tag === "Invalid") return mechanisms
      break
    }
  }
  return frame({ code, data }, body.length)
}

/** The data of an AuthenticationSASL request: NUL-terminated names, then an empty one. */
export const decodeSaslMechanisms = (data: Buffer): Frame<string[]> | Invalid => {
  const names: string[] = []
  let offset = 0
  for (;;) {
    const end = data.indexOf(0, offset)
    if (end < 0) return invalid("invalid SASL authentication request: mechanism list not terminated")
    if (end === offset) {
      if (end !== data.length - 1) return invalid("invalid SASL authentication request: bytes after the list")
      return frame(names, data.length)
    }
    names.push(data.toString("latin1", offset, end))
    offset = end + 1
  }
}

export interface SaslInitialResponse {
  readonly mechanism: string
  /** The client-first-message; undefined when the client sent none (length -1): the server answers an empty
   *  AuthenticationSASLContinue and reads it from the next SASLResponse. A view into the input. */
  readonly data: Buffer | undefined
}

// PostgreSQL's words for a malformed message (pq_getmsgrawstring, pq_getmsgbytes, pq_getmsgend): 08P01 to the client.
const NO_STRING = "invalid string in message"
const SHORT = "insufficient data left in message"
const TRAILING = "invalid message format"

/** The body of a 'p' message that opens a SASL exchange. Never throws. */
export const decodeSaslInitialResponse = (body: Buffer): Frame<SaslInitialResponse> | Invalid => {
  const end = body.indexOf(0)
  if (end < 0) return invalid(NO_STRING)
  const mechanism = body.toString("latin1", 0, end)
  let offset = end + 1
  if (body.length - offset < 4) return invalid(SHORT)
  const length = body.readInt32BE(offset)
  offset += 4
  let data: Buffer | undefined
  if (length !== -1) {
    if (length < 0 || length > body.length - offset) return invalid(SHORT)
    data = body.subarray(offset, offset + length)
    offset += length
  }
  if (offset !== body.length) return invalid(TRAILING)
  return frame({ mechanism, data }, body.length)
}

/** The body of a 'p' message inside a SASL exchange is the mechanism's data, whole. */
export const decodeSaslResponse = (body: Buffer): Buffer => body

/**
 * The body of a 'p' message answering a cleartext or MD5 request: one NUL-terminated string. PostgreSQL refuses an
 * empty one with 28P01 "empty password returned by client"; that is the caller's check. Never throws.
 */
export const decodePasswordMessage = (body: Buffer): Frame<string> | Invalid => {
  const end = body.indexOf(0)
  if (end < 0 || end !== body.length - 1) return invalid("invalid password packet size")
  return frame(body.toString("utf8", 0, end), body.length)
}

/** `data` undefined sends length -1 (no initial response), which no client the proxy dials needs but the wire allows. */
export const encodeSaslInitialResponse = (mechanism: string, data: Uint8Array | undefined): Buffer => {
  const name = cstring(mechanism)
  const body = Buffer.allocUnsafe(name.length + 4 + (data?.length ?? 0))
  name.copy(body, 0)
  body.writeInt32BE(data ? data.length : -1, name.length)
  if (data) body.set(data, name.length + 4)
  return encodeTypedMessage(FrontendType.Password, body)
}

export const encodeSaslResponse = (data: Uint8Array): Buffer => encodeTypedMessage(FrontendType.Password, data)

/** A cleartext password or an md5 answer ("md5…"). */
export const encodePasswordMessage = (text: string): Buffer => encodeTypedMessage(FrontendType.Password, cstring(text))
