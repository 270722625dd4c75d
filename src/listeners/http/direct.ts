// `directResponse`: every request answered by the proxy itself, without a Resolver or a backend. The HTTP/1.1 bytes are
// built once at start, so an answer is one write of a shared buffer.
import { STATUS_CODES } from "node:http"
import type * as http2 from "node:http2"
import type { DirectResponse } from "../../config/Config.ts"

export interface DirectAnswer {
  readonly status: number
  readonly body: Buffer
  /** HTTP/1.1 answers: [keep-alive, connection: close], each with and without the body (HEAD). */
  readonly full: Buffer
  readonly fullClose: Buffer
  readonly headOnly: Buffer
  readonly headOnlyClose: Buffer
}

const contentType = "text/plain; charset=utf-8"

export const directAnswer = (d: DirectResponse): DirectAnswer => {
  const body = Buffer.from(d.body, "utf8")
  // A 204 carries neither content nor a Content-Length (RFC 9110 §8.6).
  const fields = d.status === 204 ? "" : `content-type: ${contentType}\r\ncontent-length: ${body.length}\r\n`
  const head = (close: boolean) =>
    `HTTP/1.1 ${d.status} ${STATUS_CODES[d.status] ?? "Status"}\r\n${fields}${close ? "connection: close\r\n" : ""}\r\n`
  const bytes = (close: boolean, withBody: boolean) =>
    Buffer.concat([Buffer.from(head(close), "latin1"), withBody ? body : Buffer.alloc(0)])
  return {
    status: d.status,
    body,
    full: bytes(false, true),
    fullClose: bytes(true, true),
    headOnly: bytes(false, false),
    headOnlyClose: bytes(true, false)
  }
}

/** The HTTP/1.1 bytes for one request. */
export const h1DirectBytes = (d: DirectAnswer, head: boolean, close: boolean): Buffer =>
  head ? (close ? d.headOnlyClose : d.headOnly) : close ? d.fullClose : d.full

/** Answers an HTTP/2 stream. */
export const h2Direct = (stream: http2.ServerHttp2Stream, d: DirectAnswer, head: boolean): void => {
  stream.respond(
    d.status === 204
      ? { ":status": 204 }
      : { ":status": d.status, "content-type": contentType, "content-length": d.body.length },
    { endStream: head || d.body.length === 0 }
  )
  if (!head && d.body.length > 0) stream.end(d.body)
}
