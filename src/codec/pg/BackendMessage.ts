// Backend → frontend: any typed message, framed so the proxy can watch authentication (R, S, K, Z, E) and relay it.
import { type Decoded, type Frame, frame, type Invalid, invalid } from "./Decode.ts"
import { frameTypedMessage, type TypedMessage } from "./Framing.ts"
import { MAX_BACKEND_MESSAGE_LENGTH, MAX_SECRET_KEY_LENGTH, MIN_SECRET_KEY_LENGTH } from "./Protocol.ts"

/** Type "R", "K", "Z", "E", "S", "N", "v", ...; the body a view into the input. */
export type BackendMessage = TypedMessage

/** The type bytes the proxy looks at while the backend authenticates the client. */
export const BackendType = {
  Authentication: "R",
  BackendKeyData: "K",
  ErrorResponse: "E",
  NegotiateProtocolVersion: "v",
  NoticeResponse: "N",
  ParameterStatus: "S",
  ReadyForQuery: "Z"
} as const

/** Authentication request codes carried in the body of an "R" message. */
export const AuthenticationCode = {
  Ok: 0,
  CleartextPassword: 3,
  MD5Password: 5,
  GSS: 7,
  GSSContinue: 8,
  SSPI: 9,
  SASL: 10,
  SASLContinue: 11,
  SASLFinal: 12
} as const

/** Frames one message: Byte1 type, Int32 length counting itself but not the type, then the body. Never throws. */
export const decodeBackendMessage = (
  buf: Buffer,
  maxLength: number = MAX_BACKEND_MESSAGE_LENGTH
): Decoded<BackendMessage> => frameTypedMessage(buf, maxLength, "backend")

export interface BackendKeyData {
  readonly processId: number
  /** 4 bytes under protocol 3.0, 4 to 256 under 3.2. */
  readonly secretKey: Buffer
}

/** The body of a "K" message. A copy of the key: it is kept for the connection's life to route cancel requests. */
export const decodeBackendKeyData = (body: Buffer): Frame<BackendKeyData> | Invalid => {
  const keyLength = body.length - 4
  if (keyLength < MIN_SECRET_KEY_LENGTH || keyLength > MAX_SECRET_KEY_LENGTH) {
    return invalid(
      `invalid BackendKeyData: secret key of ${keyLength} bytes (${MIN_SECRET_KEY_LENGTH} to ${MAX_SECRET_KEY_LENGTH} expected)`
    )
  }
  return frame({ processId: body.readInt32BE(0), secretKey: Buffer.from(body.subarray(4)) }, body.length)
}

/** The code of an "R" message (see AuthenticationCode); the rest of the body is the method's data. */
export const decodeAuthenticationCode = (body: Buffer): Frame<number> | Invalid =>
  body.length < 4
    ? invalid(`invalid authentication request: ${body.length} bytes`)
    : frame(body.readInt32BE(0), body.length)

/** The transaction status of a "Z" message: idle, in a transaction block, or in a failed one. */
export const decodeReadyForQuery = (body: Buffer): Frame<"I" | "T" | "E"> | Invalid => {
  const status = body.length === 1 ? String.fromCharCode(body[0]!) : ""
  return status === "I" || status === "T" || status === "E"
    ? frame(status, 1)
    : invalid(`invalid ReadyForQuery body of ${body.length} bytes`)
}
