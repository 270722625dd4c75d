// One client request on its way to a backend and its response on the way back: the Exchange, what the client side
// (an HTTP/1.x connection or an HTTP/2 stream) is told by the backend side, and the shared read buffer both read into.
import type * as net from "node:net"
import type { Framing, ResponseHead } from "../../codec/http/index.ts"
import type { Failure } from "./failure.ts"
import type { OriginPool } from "./originPool.ts"
import type { UpstreamConn } from "./upstreamConn.ts"

/** The client half of an exchange: an HTTP/1.x connection or an HTTP/2 stream. Called by the backend side. */
export interface ClientSide {
  /** A backend connection is writing the head: send the request body bytes held so far (inside a cork). */
  connected(ex: Exchange): void
  /** The backend can take more request body. */
  upstreamDrained(ex: Exchange): void
  /** 1xx other than 101 (100 Continue, 103 Early Hints). */
  informational(ex: Exchange, head: ResponseHead): void
  /** The response head; set `ex.decode` to get chunked bodies decoded instead of relayed as they are. */
  responseHead(ex: Exchange, head: ResponseHead, framing: Framing): void
  /**
   * Body bytes, valid only during the call (`ownedChunk` keeps them); false = the client is full, the backend is
   * paused until `ex.up.resume()`.
   */
  responseData(ex: Exchange, buf: Buffer, start: number, end: number): boolean
  /** After the last body byte. `trailers`: decoded trailer lines (only when `ex.decode`). */
  responseEnd(ex: Exchange, trailers: string): void
  /** Called after the last write of one backend read: lets a client batch head and body in one syscall. */
  flush(ex: Exchange): void
  /** 101: the backend socket is the client's now, with the bytes read past the head. */
  upgrade(ex: Exchange, head: ResponseHead, socket: net.Socket, rest: Buffer | undefined): void
  /** No (complete) response will come. */
  failed(ex: Exchange, f: Failure): void
}

/** One request on its way to a backend and its response on the way back. */
export class Exchange {
  readonly client: ClientSide
  /** The client's own state for this exchange (its connection or stream). */
  readonly owner: unknown
  readonly method: string
  readonly pool: OriginPool
  readonly resourceId: string
  /** The request head for the backend: a latin1 string, or the client's own bytes (fastPath). */
  readonly head: string | Buffer
  /** May be sent again on a fresh connection when a reused one closes without a byte of answer. */
  readonly retryable: boolean
  readonly upgrade: boolean
  /** A request body follows the head (the backend connection then writes both inside one cork). */
  readonly hasBody: boolean
  up: UpstreamConn | null = null
  /** The whole request body has been handed to the backend socket. */
  requestDone = false
  decode = false
  retried = false
  aborted = false
  /** Telemetry: the route came from a cache; the backend connection had served before. */
  cacheHit = false
  reused = false
  queuedAt = 0
  sentAt = 0
  upstreamMs = 0
  bytesFromBackend = 0

  constructor(
    client: ClientSide,
    owner: unknown,
    method: string,
    pool: OriginPool,
    resourceId: string,
    head: string | Buffer,
    retryable: boolean,
    upgrade: boolean,
    hasBody: boolean
  ) {
    this.client = client
    this.owner = owner
    this.method = method
    this.pool = pool
    this.resourceId = resourceId
    this.head = head
    this.retryable = retryable
    this.upgrade = upgrade
    this.hasBody = hasBody
  }

  /** The client went away or gave up: the backend connection cannot be reused mid-exchange. */
  abort(): void {
    if (this.aborted) return
    this.aborted = true
    const up = this.up
    if (up !== null) {
      this.up = null
      up.ex = null
      up.socket.destroy()
    }
  }
}

// Methods RFC 9110 §9.2.2 calls idempotent: safe to send twice when the first try never got an answer.
const idempotent = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"])
export const mayRetry = (method: string, hasBody: boolean, upgrade: boolean): boolean =>
  !hasBody && !upgrade && idempotent.has(method)

// Plain backend connections (and kept-alive plain client connections, h1.ts) read into one buffer that all of them
// share (net.connect's `onread`, src/relay/userBuffer.ts) instead of a new Buffer per read: Node's per-read
// ArrayBuffer and its stream machinery cost more than parsing the message (perf on the http bench). A read's bytes
// are valid only during its callback: what outlives it (a partial head, a body chunk queued behind a full socket) is
// copied (`ownedChunk`).
export const sharedReadBuffer = Buffer.allocUnsafeSlow(64 * 1024)

/** `buf[start, end)` for keeping past the call: copied when it lies in the shared read buffer. */
export const ownedChunk = (buf: Buffer, start: number, end: number): Buffer => {
  if (buf.buffer === sharedReadBuffer.buffer) return Buffer.from(buf.subarray(start, end))
  return start === 0 && end === buf.length ? buf : buf.subarray(start, end)
}
