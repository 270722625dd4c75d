// proxy → frontend: every refusal as an ErrorResponse with the SQLSTATE a Postgres client knows how to explain, or
// what PostgreSQL itself answers where the client can tell the difference (its own words, or nothing at all).
import { encodeErrorResponse, encodeStartupRefusal, type RefusedStartup } from "../../codec/pg/index.ts"
import { type ProxyError, proxyError, type Reason } from "../../domain/ProxyError.ts"
import { clientText } from "../refusal.ts"

/** SQLSTATE per reason (PostgreSQL Appendix A). */
export const sqlstateOf: Readonly<Record<Reason, string>> = {
  NOT_FOUND: "3D000", // invalid_catalog_name: "database does not exist"
  FORBIDDEN: "28000", // invalid_authorization_specification
  UNAVAILABLE: "57P03", // cannot_connect_now: what Postgres itself says while starting up
  TIMEOUT: "08006", // connection_failure
  CONNECT_FAILED: "08006",
  HANDSHAKE_TIMEOUT: "08006",
  BAD_REQUEST: "08P01", // protocol_violation
  INTERNAL: "XX000" // internal_error
}

/** The exact bytes PostgreSQL sends in this case, carried as the error's cause; empty for silence. */
class ServerAnswer {
  readonly bytes: Buffer
  constructor(bytes: Buffer) {
    this.bytes = bytes
  }
}

const SILENCE = new ServerAnswer(Buffer.alloc(0))

/**
 * The same error, answered with nothing: where the server logs a problem (COMMERROR) and closes without a byte, e.g.
 * a length it cannot frame or a client gone mid-packet. Logged and counted like any refusal.
 */
export const unanswered = (error: ProxyError): ProxyError =>
  proxyError(error.reason, error.source, error.message, { cause: SILENCE })

/** The same error, answered with these bytes (PostgreSQL's own words for it) instead of the proxy's. */
export const answered = (error: ProxyError, bytes: Buffer): ProxyError =>
  proxyError(error.reason, error.source, error.message, {
    cause: new ServerAnswer(bytes),
    ...(error.clientMessage === undefined ? {} : { clientMessage: error.clientMessage })
  })

/** A packet the server refuses with FATAL: in its own words, or the proxy's when only the proxy refuses it. */
export const refusal = (refused: RefusedStartup): ProxyError =>
  refused.byServer
    ? proxyError("BAD_REQUEST", "client", refused.message, { cause: new ServerAnswer(encodeStartupRefusal(refused)) })
    : proxyError("BAD_REQUEST", "client", refused.message)

export const pgErrorFor = (error: ProxyError): Buffer => {
  const hint =
    error.reason === "UNAVAILABLE" && error.retryAfter !== undefined
      ? `The database is starting; retry in ${error.retryAfter} s.`
      : undefined
  return encodeErrorResponse({
    severity: "FATAL",
    code: sqlstateOf[error.reason],
    // The retry time goes in the hint, where psql shows it.
    message: clientText(error, null),
    ...(hint ? { hint } : {})
  })
}

/**
 * What the client gets. A client that did not finish its startup packet in time gets nothing, as from the server's
 * authentication_timeout (it exits without a word).
 */
export const answerFor = (error: ProxyError): Buffer =>
  error.cause instanceof ServerAnswer
    ? error.cause.bytes
    : error.reason === "HANDSHAKE_TIMEOUT"
      ? SILENCE.bytes
      : pgErrorFor(error)
