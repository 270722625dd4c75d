// Proxy → frontend: the FATAL error PostgreSQL itself sends for a startup packet it read whole and will not take.
import { encodeErrorResponse } from "./ErrorResponse.ts"
import { GSSENC_REQUEST_CODE, LATEST_MINOR, SSL_REQUEST_CODE, versionString } from "./Protocol.ts"

/**
 * A whole packet that gets a FATAL error rather than silence. With `byServer` the SQLSTATE and words are the server's
 * own (postmaster's ProcessStartupPacket); without it the server would take the packet but the proxy cannot route on
 * it (a duplicate or non-UTF-8 parameter) and answers in its own words.
 */
export interface RefusedStartup {
  readonly _tag: "RefusedStartup"
  /** SQLSTATE. */
  readonly code: string
  readonly message: string
  readonly detail?: string
  readonly byServer: boolean
  /** The version word the client sent: below 3.0 it can read only the old unframed error. */
  readonly version: number
}

const refused = (code: string, message: string, version: number, detail?: string): RefusedStartup => ({
  _tag: "RefusedStartup",
  code,
  message,
  byServer: true,
  version,
  ...(detail === undefined ? {} : { detail })
})

/**
 * Any major version but 3, and a special request the server does not take here (an unknown 1234.x code, or an
 * SSLRequest or GSSENCRequest once that negotiation is done), which the server reads as a protocol version.
 */
export const unsupportedProtocol = (version: number): RefusedStartup =>
  refused(
    "0A000", // feature_not_supported
    `unsupported frontend protocol ${versionString(version >>> 0)}: server supports 3.0 to 3.${LATEST_MINOR}`,
    version >>> 0
  )

export const SECOND_SSL_REQUEST: RefusedStartup = unsupportedProtocol(SSL_REQUEST_CODE)
export const SECOND_GSSENC_REQUEST: RefusedStartup = unsupportedProtocol(GSSENC_REQUEST_CODE)

const PROTOCOL_3 = 3 << 16

/** Bytes sent behind an SSLRequest or GSSENCRequest, before the answer: plaintext that could be injected. */
export const unencryptedData = (after: "SSL request" | "GSSAPI encryption request"): RefusedStartup =>
  refused(
    "08P01", // protocol_violation
    `received unencrypted data after ${after}`,
    PROTOCOL_3,
    "This could be either a client-software bug or evidence of an attempted man-in-the-middle attack."
  )

/** The server's one message for every malformed parameter list. */
export const badLayout = (version: number): RefusedStartup =>
  refused("08P01", "invalid startup packet layout: expected terminator as last byte", version)

export const noUser = (version: number): RefusedStartup =>
  refused("28000", "no PostgreSQL user name specified in startup packet", version) // invalid_authorization_specification

/** A packet the server would take but the proxy refuses; the listener words the answer. */
export const refusedByProxy = (message: string, version: number): RefusedStartup => ({
  _tag: "RefusedStartup",
  code: "08P01",
  message,
  byServer: false,
  version
})

/**
 * The answer as the server sends it: an ErrorResponse, or for a client below 3.0 the protocol 2.0 form ('E', the text
 * with the severity in front, a newline and a NUL, no length), which is what such a client can read.
 */
export const encodeStartupRefusal = (refusal: RefusedStartup): Buffer =>
  refusal.version >>> 16 < 3
    ? Buffer.from(`EFATAL:  ${refusal.message}\n\0`, "utf8")
    : encodeErrorResponse({
        severity: "FATAL",
        code: refusal.code,
        message: refusal.message,
        ...(refusal.detail === undefined ? {} : { detail: refusal.detail })
      })
