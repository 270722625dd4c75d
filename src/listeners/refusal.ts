// What a refused client is told, and the one log line that says why. The client gets the reason in the proxy's own
// words and a ref id; the detail (an exception's text, a resolver's failure, a backend's address or socket error, a
// TLS library message, a file path) goes only to the log line that carries the same ref. Every listener's refusal
// goes through here, so no protocol can leak one by quoting `error.message`.
import { randomUUID } from "node:crypto"
import type { Source } from "../domain/ProxyError.ts"
import type { Fields, LogShape } from "../services/Log.ts"

/** What the client's text and the log line need of a refusal: a ProxyError, or the HTTP listener's Failure. */
export interface Refused {
  /** A ProxyError reason, or one of the HTTP listener's own (BAD_GATEWAY, UPSTREAM_TIMEOUT, …). */
  readonly reason: string
  readonly source: Source
  /** The detail: for the log; for the client only when the client caused it (the proxy's words about its request). */
  readonly message: string
  /** Words written for the client (a Resolver's NOT_FOUND/FORBIDDEN message, a limit): shown in place of ours. */
  readonly clientMessage?: string | undefined
  readonly resourceId?: string | undefined
  readonly retryAfter?: number | undefined
  readonly ref?: string | undefined
  readonly cause?: unknown
  /** Closed without an answer (the protocol's own servers stay silent there): logged at debug. */
  readonly quiet?: boolean | undefined
}

/** A fresh correlation id: 12 hex digits (48 random bits), enough to pick one line out of a busy day's logs. */
export const newRef = (): string => {
  const id = randomUUID()
  return id.slice(0, 8) + id.slice(9, 13)
}

const backendOf = (id: string | undefined) => (id === undefined ? "the backend" : `the backend of "${id}"`)

/** The proxy's own words for a refusal: the reason, and nothing but the resource id the client itself sent. */
const words = (r: Refused): string => {
  if (r.clientMessage !== undefined) return r.clientMessage
  if (r.source === "client") return r.message
  const id = r.resourceId
  const named = id === undefined ? "the resource" : `"${id}"`
  switch (r.reason) {
    case "NOT_FOUND":
      return id === undefined ? "no route" : `no route for "${id}"`
    case "FORBIDDEN":
      return r.source === "policy"
        ? `${backendOf(id)} is refused by the proxy's policy`
        : `access to ${named} is forbidden`
    case "UNAVAILABLE":
      if (r.source === "internal" || r.source === "policy") return "the proxy is too busy"
      if (r.source === "backend") return `${backendOf(id)} is unavailable`
      return r.retryAfter !== undefined ? `${named} is starting` : `${named} is unavailable`
    case "TIMEOUT":
      return `the route lookup for ${named} did not answer in time`
    case "CONNECT_FAILED":
      return `cannot connect to ${backendOf(id)}`
    case "BAD_GATEWAY":
      return `${backendOf(id)} did not answer properly`
    case "UPSTREAM_TIMEOUT":
      return `${backendOf(id)} did not answer in time`
    case "HANDSHAKE_TIMEOUT":
      return "the handshake did not complete in time"
    case "BAD_REQUEST":
      return "bad request"
    default:
      return "internal error"
  }
}

/** How a protocol says when to come back (UNAVAILABLE); null: it says so elsewhere (a Postgres hint, Retry-After). */
export type RetryPhrase = (seconds: number | undefined) => string

export const retryIn: RetryPhrase = (seconds) => (seconds === undefined ? "" : `; retry in ${seconds} s`)

/** The client's text: `polyproxy: <what happened>[; retry in N s] (ref <id>)`. */
export const clientText = (r: Refused, retry: RetryPhrase | null = retryIn): string => {
  const after = retry !== null && r.reason === "UNAVAILABLE" ? retry(r.retryAfter) : ""
  return `polyproxy: ${words(r)}${after}${r.ref === undefined ? "" : ` (ref ${r.ref})`}`
}

/**
 * The refusal's one log line: `fields` (listener, client, …) plus the resource, reason, source, the detail and the
 * ref the client was given; the stack of an unexpected exception too. Internal failures are errors, refusals by the
 * proxy's own rules warnings, the rest (the client's, the resolver's or a backend's doing) info.
 */
export const logRefusal = (log: LogShape, event: string, r: Refused, fields: Fields): void => {
  const line = {
    ...fields,
    resource: r.resourceId,
    reason: r.reason,
    source: r.source,
    message: r.message,
    ref: r.ref,
    ...(r.reason === "INTERNAL" && r.cause instanceof Error ? { stack: r.cause.stack } : {})
  }
  if (r.source === "internal" || r.reason === "INTERNAL") log.error(event, line)
  else if (r.quiet) log.debug(event, line)
  else if (r.source === "policy") log.warn(event, line)
  else log.info(event, line)
}
