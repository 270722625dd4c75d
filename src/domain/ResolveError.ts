// The typed failure a Resolver returns: the user's extension point, so the codes are few and stable.
import * as Data from "effect/Data"

export type ResolveCode = "NOT_FOUND" | "FORBIDDEN" | "UNAVAILABLE" | "TIMEOUT" | "INTERNAL"
export const resolveCodes: ReadonlyArray<ResolveCode> = ["NOT_FOUND", "FORBIDDEN", "UNAVAILABLE", "TIMEOUT", "INTERNAL"]

/**
 * A NOT_FOUND or FORBIDDEN `message` is the Resolver's answer to the client: it reaches the client ("tenant
 * suspended"), so write it for them. Any other code's message goes to the proxy's log only; the client gets the
 * proxy's own words and a ref to the log line.
 */
export class ResolveError extends Data.TaggedError("ResolveError")<{
  readonly code: ResolveCode
  readonly message: string
  /** UNAVAILABLE only: seconds until the backend is expected to be ready (it is cold and waking up). */
  readonly retryAfter?: number | undefined
  /** What went wrong underneath (an exception): logged with its stack, never shown to a client. */
  readonly cause?: unknown
}> {}
