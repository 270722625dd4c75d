// Every failure on a connection's path, with the facts each protocol needs to answer in its own words.
import * as Data from "effect/Data"

/**
 * Why a connection could not be proxied. Each listener maps a reason to its protocol's error (README, "Errors: what
 * the client reads, what the log keeps").
 */
export type Reason =
  | "NOT_FOUND" // the resolver knows no such resource
  | "FORBIDDEN" // resolver refused, or SSRF guard refused the endpoint
  | "UNAVAILABLE" // backend cold, breaker open, limits reached; retryAfter may say when to come back
  | "TIMEOUT" // resolver did not answer in time
  | "INTERNAL" // a bug or an unexpected resolver failure
  | "BAD_REQUEST" // the client sent a handshake we cannot parse or that is too large
  | "HANDSHAKE_TIMEOUT" // the client did not finish its handshake in time
  | "CONNECT_FAILED" // dialing the backend failed or timed out

/**
 * Which side caused it: the client, the backend, the resolver, a rule of the proxy's config (`policy`: the SSRF
 * guard), or us (`internal`: a bug or the proxy's own failure).
 */
export type Source = "client" | "backend" | "resolver" | "policy" | "internal"

export class ProxyError extends Data.TaggedError("ProxyError")<{
  readonly reason: Reason
  readonly source: Source
  /** The detail, for the log line: a client sees it only when `source` is client (see listeners/refusal.ts). */
  readonly message: string
  /** Words written for the client, shown in place of the proxy's generic words for `reason`. Nothing internal. */
  readonly clientMessage?: string | undefined
  /** Whether the client may try again with the same request. */
  readonly retryable: boolean
  /** Seconds after which a retry is worthwhile (UNAVAILABLE). */
  readonly retryAfter?: number | undefined
  readonly cause?: unknown
  /** The routing key, once identify found it: for logs. */
  readonly resourceId?: string | undefined
  /** Close without an answer: the protocol's own servers stay silent here (e.g. an unknown Postgres cancel key). */
  readonly quiet?: boolean | undefined
  /** The correlation id of a refusal: in the client's text and in the log line (set when the listener refuses). */
  readonly ref?: string | undefined
}> {}

const retryableReasons: ReadonlySet<Reason> = new Set(["UNAVAILABLE", "TIMEOUT", "CONNECT_FAILED", "HANDSHAKE_TIMEOUT"])

/** Builds a ProxyError with the retry decision taken from its reason. */
export const proxyError = (
  reason: Reason,
  source: Source,
  message: string,
  extra: {
    readonly retryAfter?: number
    readonly cause?: unknown
    readonly quiet?: boolean
    readonly clientMessage?: string
  } = {}
): ProxyError => new ProxyError({ reason, source, message, retryable: retryableReasons.has(reason), ...extra })

/** `e` with a resource id or a ref added. Error fields such as `message` are not enumerable: copied by name. */
export const withProps = (
  e: ProxyError,
  props: { readonly resourceId?: string | undefined; readonly ref?: string | undefined }
): ProxyError =>
  new ProxyError({
    reason: e.reason,
    source: e.source,
    message: e.message,
    clientMessage: e.clientMessage,
    retryable: e.retryable,
    retryAfter: e.retryAfter,
    cause: e.cause,
    quiet: e.quiet,
    resourceId: props.resourceId ?? e.resourceId,
    ref: props.ref ?? e.ref
  })
