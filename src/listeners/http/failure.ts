// Every refusal of the HTTP listener as a status, a reason and a small JSON body the client can read.
import type * as Cause from "effect/Cause"
import type { ProxyError, Reason, Source } from "../../domain/ProxyError.ts"
import { clientText } from "../refusal.ts"

/**
 * Why a request got no answer from its backend. `reason` is a ProxyError reason, or one only HTTP has:
 * BAD_GATEWAY (the backend broke the protocol or hung up), UPSTREAM_TIMEOUT (the backend was too slow),
 * HEADERS_TOO_LARGE (431).
 */
export interface Failure {
  readonly status: number
  readonly reason: Reason | "BAD_GATEWAY" | "UPSTREAM_TIMEOUT" | "HEADERS_TOO_LARGE" | "METHOD_NOT_ALLOWED"
  readonly source: Source
  /** The detail, for the log; the client reads `clientText` of it (listeners/refusal.ts). */
  readonly message: string
  readonly clientMessage?: string | undefined
  readonly retryAfter?: number | undefined
  readonly resourceId?: string | undefined
  readonly cause?: unknown
  /** Set as the refusal is logged (HttpRuntime.refused): the same id in the body and in the log line. */
  readonly ref?: string | undefined
}

const statusOf: Record<Reason, number> = {
  NOT_FOUND: 404,
  FORBIDDEN: 403,
  UNAVAILABLE: 503,
  TIMEOUT: 504,
  INTERNAL: 500,
  BAD_REQUEST: 400,
  HANDSHAKE_TIMEOUT: 408,
  CONNECT_FAILED: 502
}

export const fromProxyError = (e: ProxyError, resourceId?: string): Failure => ({
  status: statusOf[e.reason] ?? 500,
  reason: e.reason,
  source: e.source,
  message: e.message,
  clientMessage: e.clientMessage,
  retryAfter: e.retryAfter ?? (e.reason === "UNAVAILABLE" ? 1 : undefined),
  resourceId: e.resourceId ?? resourceId,
  cause: e.cause
})

export const failure = (
  status: number,
  reason: Failure["reason"],
  source: Source,
  message: string,
  extra: {
    readonly retryAfter?: number
    readonly resourceId?: string
    readonly clientMessage?: string
    readonly cause?: unknown
  } = {}
): Failure => ({ status, reason, source, message, ...extra })

/** What the client hears when an Effect for `resourceId` failed: its ProxyError, or a 500 for a defect (logged). */
export const fromCause = (cause: Cause.Cause<ProxyError>, resourceId: string, doing: string): Failure => {
  const reason = cause.reasons[0]
  return reason?._tag === "Fail"
    ? fromProxyError(reason.error, resourceId)
    : failure(500, "INTERNAL", "internal", `${doing} for ${resourceId} failed: ${String(reason)}`, {
        resourceId,
        cause: reason?._tag === "Die" ? reason.defect : undefined
      })
}

/** `f` naming the resource of the exchange that failed (backend failures are raised without it). */
export const forResource = (f: Failure, resourceId: string | undefined): Failure =>
  f.resourceId !== undefined || resourceId === undefined ? f : { ...f, resourceId }

/** A client request the codec refused, by the status it chose (400, 431, 501, 505). */
export const badRequest = (status: number, message: string): Failure =>
  failure(status, status === 431 ? "HEADERS_TOO_LARGE" : "BAD_REQUEST", "client", message)

const phrases: Record<number, string> = {
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported"
}

export const reasonPhrase = (status: number): string => phrases[status] ?? "Error"

/** The retry time is in the Retry-After header. */
export const failureBody = (f: Failure): string =>
  JSON.stringify({ error: clientText(f, null), reason: f.reason, ...(f.ref === undefined ? {} : { ref: f.ref }) })

/** The whole HTTP/1.1 answer, head and body. `close`: the connection ends after it. */
export const failureResponse = (f: Failure, close: boolean, head: boolean): string => {
  const body = failureBody(f)
  return (
    `HTTP/1.1 ${f.status} ${reasonPhrase(f.status)}\r\n` +
    "content-type: application/json\r\n" +
    `content-length: ${Buffer.byteLength(body)}\r\n` +
    "cache-control: no-store\r\n" +
    (f.retryAfter === undefined ? "" : `retry-after: ${Math.max(0, Math.ceil(f.retryAfter))}\r\n`) +
    (close ? "connection: close\r\n" : "") +
    `\r\n${head ? "" : body}`
  )
}
