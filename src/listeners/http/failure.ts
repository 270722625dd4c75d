// Every refusal of the HTTP listener as a status, a reason and a small JSON body the client can read.
import type { ProxyError, Reason, Source } from "../../domain/ProxyError.ts"

/**
 * Why a request got no answer from its backend. `reason` is a ProxyError reason, or one only HTTP has:
 * BAD_GATEWAY (the backend broke the protocol or hung up), UPSTREAM_TIMEOUT (the backend was too slow),
 * HEADERS_TOO_LARGE (431).
 */
export interface Failure {
  readonly status: number
  readonly reason: Reason | "BAD_GATEWAY" | "UPSTREAM_TIMEOUT" | "HEADERS_TOO_LARGE" | "METHOD_NOT_ALLOWED"
  readonly source: Source
  readonly message: string
  readonly retryAfter?: number | undefined
  readonly resourceId?: string | undefined
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
  retryAfter: e.retryAfter ?? (e.reason === "UNAVAILABLE" ? 1 : undefined),
  resourceId: e.resourceId ?? resourceId
})

export const failure = (
  status: number,
  reason: Failure["reason"],
  source: Source,
  message: string,
  extra: { readonly retryAfter?: number; readonly resourceId?: string } = {}
): Failure => ({ status, reason, source, message, ...extra })

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

export const failureBody = (f: Failure): string => JSON.stringify({ error: f.message, reason: f.reason })

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
