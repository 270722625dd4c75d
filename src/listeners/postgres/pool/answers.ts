// What a pooled client reads when the proxy, speaking as its server, refuses it or loses its server connection:
// PostgreSQL's own SQLSTATEs and words wherever PostgreSQL has them, each carried on a ProxyError so the pipeline logs
// and counts the refusal as any other (the detail for the log, these bytes for the client).
import { encodeErrorResponse } from "../../../codec/pg/index.ts"
import { type ProxyError, proxyError, type Reason } from "../../../domain/ProxyError.ts"
import { answered, pgErrorFor } from "../errorResponse.ts"
import { PoolRefusal } from "./pgPool.ts"
import { ServerError } from "./serverMessages.ts"

export const fatal = (code: string, message: string, extra: { detail?: string; hint?: string } = {}): Buffer =>
  encodeErrorResponse({ severity: "FATAL", code, message, ...extra })

/** Refused in PostgreSQL's words (`bytes`), logged with `reason` and `detail`. */
export const refusedAs = (reason: Reason, detail: string, bytes: Buffer): ProxyError =>
  answered(proxyError(reason, "client", detail), bytes)

/** A wrong password and an unknown role read the same, as from PostgreSQL (auth.c auth_failed). */
export const passwordFailed = (user: string, why: string): ProxyError => {
  const message = `password authentication failed for user "${user}"`
  return refusedAs("FORBIDDEN", `${message}: ${why}`, fatal("28P01", message))
}

/** A message PostgreSQL's authentication would refuse as a protocol violation. */
export const protocolViolation = (message: string, detail?: string): ProxyError =>
  refusedAs(
    "BAD_REQUEST",
    detail === undefined ? message : `${message}: ${detail}`,
    fatal("08P01", message, detail === undefined ? {} : { detail })
  )

/**
 * What a client reads when the pool gives it no server connection: the server's own ErrorResponse when a server
 * refused the proxy's login (too many connections, no such database, …), PostgreSQL's SQLSTATE with the pool's words
 * and hint when the pool itself said no (53300 queue full, 57P03 waited too long), else the proxy's usual refusal.
 */
export const poolFailureBytes = (error: ProxyError): Buffer => {
  const cause = error.cause
  if (cause instanceof ServerError) return cause.encode()
  if (cause instanceof PoolRefusal) {
    return fatal(cause.sqlstate, error.clientMessage ?? "sorry, too many clients already", { hint: cause.hint })
  }
  return pgErrorFor(error)
}

/** The pool's refusal during the client's startup, for the pipeline's refusal path (logged with its ref there). */
export const poolFailure = (error: ProxyError): ProxyError =>
  error.cause instanceof ServerError || error.cause instanceof PoolRefusal
    ? answered(error, poolFailureBytes(error))
    : error
