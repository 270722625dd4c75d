// The typed failure a Resolver returns: the user's extension point, so the codes are few and stable.
import * as Data from "effect/Data"

export type ResolveCode = "NOT_FOUND" | "FORBIDDEN" | "UNAVAILABLE" | "TIMEOUT" | "INTERNAL"
export const resolveCodes: ReadonlyArray<ResolveCode> = ["NOT_FOUND", "FORBIDDEN", "UNAVAILABLE", "TIMEOUT", "INTERNAL"]

export class ResolveError extends Data.TaggedError("ResolveError")<{
  readonly code: ResolveCode
  readonly message: string
  /** UNAVAILABLE only: seconds until the backend is expected to be ready (it is cold and waking up). */
  readonly retryAfter?: number | undefined
}> {}
