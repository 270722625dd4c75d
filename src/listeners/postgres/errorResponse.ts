// proxy → frontend: every refusal as an ErrorResponse with the SQLSTATE a Postgres client knows how to explain.
import { encodeErrorResponse } from "../../codec/pg/index.ts"
import type { ProxyError, Reason } from "../../domain/ProxyError.ts"

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

export const pgErrorFor = (error: ProxyError): Buffer => {
  const hint =
    error.reason === "UNAVAILABLE" && error.retryAfter !== undefined
      ? `The database is starting; retry in ${error.retryAfter} s.`
      : undefined
  return encodeErrorResponse({
    severity: "FATAL",
    code: sqlstateOf[error.reason],
    message: `polyproxy: ${error.message}`,
    ...(hint ? { hint } : {})
  })
}
