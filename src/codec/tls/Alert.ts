// Server → client: a fatal alert in a plaintext record, sent instead of a ServerHello when the proxy cannot route
// the connection, so the client reports why ("tlsv1 unrecognized name") rather than an unexplained reset.
import { CONTENT_ALERT } from "./Protocol.ts"

/** RFC 8446 §6 alert descriptions the proxy sends. */
export const AlertDescription = {
  HandshakeFailure: 40,
  AccessDenied: 49,
  InternalError: 80,
  UnrecognizedName: 112
} as const
export type AlertDescription = (typeof AlertDescription)[keyof typeof AlertDescription]

const FATAL = 2

/** Record version 0x0303 is what every TLS 1.2 and 1.3 peer accepts before the version is negotiated. */
export const encodeAlert = (description: AlertDescription): Buffer =>
  Buffer.from([CONTENT_ALERT, 3, 3, 0, 2, FATAL, description])
