// The few messages the proxy reads from or sends a PostgreSQL server itself (ParameterStatus, Query, Terminate),
// and the server's own refusal of a login, kept whole so the client can be told in the server's words.
import { encodeTypedMessage } from "../../../codec/pg/Framing.ts"
import type { VettedEndpoint } from "../../../domain/Endpoint.ts"
import { type ProxyError, proxyError, type Reason } from "../../../domain/ProxyError.ts"
import { backendName } from "../../dial.ts"

/** Terminate ('X'): the server ends the session cleanly. Shared: never write into it. */
export const TERMINATE: Buffer = encodeTypedMessage("X")

/** A simple Query ('Q'): the reset query, or a SET the proxy sends of its own accord. */
export const encodeQuery = (sql: string): Buffer => encodeTypedMessage("Q", Buffer.from(`${sql}\0`, "utf8"))

/** The body of a ParameterStatus ('S'): name and value, or undefined when malformed. */
export const parameterStatus = (body: Buffer): readonly [string, string] | undefined => {
  const nameEnd = body.indexOf(0)
  const valueEnd = nameEnd < 0 ? -1 : body.indexOf(0, nameEnd + 1)
  if (valueEnd !== body.length - 1) return undefined
  return [body.toString("utf8", 0, nameEnd), body.toString("utf8", nameEnd + 1, valueEnd)]
}

/** What the proxy's reason is for a server's SQLSTATE at login (its breaker and log; the client gets the server's). */
const reasonOf = (sqlstate: string): Reason => {
  if (sqlstate.startsWith("28")) return "FORBIDDEN" // invalid_authorization_specification, invalid_password
  if (sqlstate === "3D000") return "NOT_FOUND" // invalid_catalog_name
  if (sqlstate === "53300" || sqlstate === "57P03") return "UNAVAILABLE" // too_many_connections, cannot_connect_now
  return "CONNECT_FAILED"
}

/**
 * A server's ErrorResponse to the proxy's login (28P01 password authentication failed, 53300 too many connections,
 * 3D000 no such database...), carried as the ProxyError's `cause`: a client should read it as the server wrote it.
 */
export class ServerError {
  /** Keyed by field type: S, V, C (SQLSTATE), M, D, H, ... */
  readonly fields: ReadonlyMap<string, string>
  /** The ErrorResponse's body as the server sent it (a copy). */
  readonly body: Buffer

  constructor(fields: ReadonlyMap<string, string>, body: Buffer) {
    this.fields = fields
    this.body = Buffer.from(body)
  }

  get sqlstate(): string {
    return this.fields.get("C") ?? "XX000"
  }

  get message(): string {
    return this.fields.get("M") ?? ""
  }

  /** The whole ErrorResponse message, to write to a client as it came. */
  encode(): Buffer {
    return encodeTypedMessage("E", this.body)
  }

  toProxyError(target: VettedEndpoint): ProxyError {
    const detail = `backend ${backendName(target)} refused the login: ${this.sqlstate} ${this.message}`
    // The server's own words: what PostgreSQL would have told the client directly.
    return proxyError(reasonOf(this.sqlstate), "backend", detail, { cause: this, clientMessage: this.message })
  }
}

/** The server broke or refused the login in a way only the log should detail. */
export const serverFailure = (target: VettedEndpoint, why: string): ProxyError =>
  proxyError("CONNECT_FAILED", "backend", `backend ${backendName(target)}: ${why}`)
