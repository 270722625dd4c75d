// The state machine of one HTTP/1.1 connection to a backend: dialled (connecting), idle in its pool, sending a head,
// reading a response head, relaying the body, or gone (closed, or handed to a WebSocket tunnel after a 101).
import type * as net from "node:net"
import {
  CHUNK_INVALID,
  ChunkedReader,
  type ChunkSink,
  decodeResponseHead,
  Framing,
  headEnd,
  type ResponseHead,
  responseFraming,
  responseKeepsAlive
} from "../../codec/http/index.ts"
import type { VettedEndpoint } from "../../domain/Endpoint.ts"
import type { ProxyError } from "../../domain/ProxyError.ts"
import { writeDirect, writeDirectLatin1 } from "../../relay/directWrite.ts"
import { type DialWaiter, dialWith } from "../dial.ts"
import { type Exchange, ownedChunk } from "./exchange.ts"
import { type Failure, failure } from "./failure.ts"
import type { OriginPool } from "./originPool.ts"
import { BODY, CONNECTING, GONE, HEAD, listen, type UpSocket, unlisten } from "./upstreamSocket.ts"

/** A backend response head larger than this is refused (502). */
const MAX_RESPONSE_HEAD = 64 * 1024

/** One connection to a backend: idle in its pool, or carrying one exchange at a time. */
export class UpstreamConn implements ChunkSink, DialWaiter {
  socket: UpSocket
  readonly pool: OriginPool
  ex: Exchange | null
  phase = CONNECTING
  served = 0
  idleSince = 0
  error: Error | undefined = undefined
  private timeoutMs = 0
  private timedOutWaiting = false
  private pending: Buffer | null = null
  private pendingLen = 0
  private gotBytes = false
  private head: ResponseHead | null = null
  private framing: Framing = Framing.None
  private remaining = 0
  private reader: ChunkedReader | null = null
  private wantPause = false

  /** Dials `pool`'s backend for `ex` (through the one dialer: source address, deadline, TLS). */
  constructor(pool: OriginPool, ex: Exchange) {
    this.pool = pool
    this.ex = ex
    const socket: UpSocket = dialWith(this, pool.settings.connectMs, pool.dialProfile)
    socket._up = this
    this.socket = socket
  }

  get target(): VettedEndpoint {
    return this.pool.target
  }

  /** The dial's answer: connected (with TLS when the pool has it), or why not. */
  dialed(socket: net.Socket | undefined, error: ProxyError | undefined, timedOut?: boolean): void {
    if (socket === undefined) {
      this.dialFailed(error!, timedOut === true)
      return
    }
    listen(this.socket)
    this.pool.breakerSuccess()
    const ex = this.ex
    this.ex = null
    if (ex === null || ex.aborted) this.pool.release(this)
    else this.assign(ex)
  }

  private dialFailed(error: ProxyError, timedOut: boolean): void {
    this.phase = GONE
    const ex = this.ex
    this.ex = null
    this.pool.breakerFailure(error.message)
    this.pool.dropped(this)
    if (ex === null || ex.aborted) return
    ex.client.failed(
      ex,
      timedOut
        ? failure(504, "UPSTREAM_TIMEOUT", "backend", error.message)
        : failure(502, "CONNECT_FAILED", "backend", error.message)
    )
  }

  private setTimeoutMs(ms: number): void {
    if (ms !== this.timeoutMs) {
      this.timeoutMs = ms
      this.socket.setTimeout(ms)
    }
  }

  /** Sends `ex`'s head (and whatever body the client already has) on this connection. */
  assign(ex: Exchange): void {
    this.ex = ex
    ex.up = this
    ex.reused = this.served > 0
    this.phase = HEAD
    this.gotBytes = false
    this.head = null
    this.pending = null
    this.setTimeoutMs(this.pool.settings.upstreamHeadersMs)
    ex.sentAt = performance.now()
    const s = this.socket
    if (!ex.hasBody) {
      // A head alone: one write straight to the handle (a plain socket; TLS takes socket.write), no cork. Should the
      // kernel not take it all, the `drain` that follows finds nothing to resume.
      const head = ex.head
      if (typeof head === "string") writeDirectLatin1(s, head)
      else writeDirect(s, head)
      ex.client.connected(ex)
      return
    }
    // The head and the body bytes the client already sent leave together.
    s.cork()
    if (typeof ex.head === "string") s.write(ex.head, "latin1")
    else s.write(ex.head)
    ex.client.connected(ex)
    s.uncork()
  }

  /** The client drained: read the backend again. */
  resume(): void {
    if (this.phase === BODY) this.socket.resume()
  }

  data(chunk: Buffer): void {
    const ex = this.ex
    if (ex === null || this.phase < HEAD) {
      // Bytes from a backend nobody asked (an idle pooled connection): it cannot be trusted with the next request.
      this.socket.destroy()
      return
    }
    ex.bytesFromBackend += chunk.length
    this.gotBytes = true
    const client = ex.client
    if (this.phase === HEAD) this.readHead(ex, chunk)
    else this.body(ex, chunk, 0, chunk.length)
    client.flush(ex)
  }

  private readHead(ex: Exchange, chunk: Buffer): void {
    let buf = chunk
    let end = chunk.length
    let from = 0
    if (this.pending !== null) {
      from = this.pendingLen
      buf = Buffer.concat([this.pending.subarray(0, this.pendingLen), chunk])
      end = buf.length
      this.pending = null
    }
    let pos = 0
    let head: ResponseHead
    for (;;) {
      const he = headEnd(buf, pos, end, from)
      if (he < 0) {
        if (end - pos > MAX_RESPONSE_HEAD) {
          this.fail(ex, failure(502, "BAD_GATEWAY", "backend", "upstream response head too large"))
          return
        }
        this.pending = ownedChunk(buf, pos, end)
        this.pendingLen = end - pos
        return
      }
      const d = decodeResponseHead(buf, pos, he)
      if (d._tag !== "Frame") {
        this.fail(ex, failure(502, "BAD_GATEWAY", "backend", d._tag === "Invalid" ? d.reason : "bad head"))
        return
      }
      pos = he
      from = pos
      head = d.value
      if (head.status >= 200) break
      if (head.status === 101) {
        if (!ex.upgrade) {
          this.fail(ex, failure(502, "BAD_GATEWAY", "backend", "upstream switched protocols unasked"))
          return
        }
        this.tunnel(ex, head, pos < end ? ownedChunk(buf, pos, end) : undefined)
        return
      }
      ex.client.informational(ex, head)
      if (this.ex !== ex) return
    }
    ex.upstreamMs = performance.now() - ex.sentAt
    this.head = head
    const framing = responseFraming(head, ex.method)
    this.framing = framing
    this.phase = BODY
    this.setTimeoutMs(this.pool.settings.upstreamBodyMs)
    ex.client.responseHead(ex, head, framing)
    if (this.ex !== ex) return
    if (framing === Framing.None) {
      this.finish(ex, pos < end)
      return
    }
    if (framing === Framing.Length) {
      this.remaining = head.contentLength
      if (this.remaining === 0) {
        this.finish(ex, pos < end)
        return
      }
    } else if (framing === Framing.Chunked) {
      if (this.reader === null) this.reader = new ChunkedReader(true)
      else this.reader.reset()
    }
    if (pos < end) this.body(ex, buf, pos, end)
  }

  chunkData(buf: Buffer, start: number, end: number): void {
    const ex = this.ex!
    if (!ex.client.responseData(ex, buf, start, end)) this.wantPause = true
  }

  private body(ex: Exchange, buf: Buffer, pos: number, end: number): void {
    const client = ex.client
    switch (this.framing) {
      case Framing.Length: {
        const take = Math.min(this.remaining, end - pos)
        this.remaining -= take
        const more = client.responseData(ex, buf, pos, pos + take)
        if (this.ex !== ex) return
        if (this.remaining === 0) {
          this.finish(ex, pos + take < end)
          return
        }
        if (!more) this.socket.pause()
        return
      }
      case Framing.Chunked: {
        const reader = this.reader!
        let at: number
        if (ex.decode) {
          this.wantPause = false
          at = reader.read(buf, pos, end, this)
          if (this.ex !== ex) return
        } else {
          at = reader.read(buf, pos, end)
          if (at !== CHUNK_INVALID) {
            this.wantPause = !client.responseData(ex, buf, pos, at < 0 ? end : at)
            if (this.ex !== ex) return
          }
        }
        if (at === CHUNK_INVALID) {
          this.fail(ex, failure(502, "BAD_GATEWAY", "backend", `upstream chunked body: ${reader.error}`))
          return
        }
        if (at >= 0) {
          this.finish(ex, at < end)
          return
        }
        if (this.wantPause) this.socket.pause()
        return
      }
      default:
        if (!client.responseData(ex, buf, pos, end) && this.ex === ex) this.socket.pause()
    }
  }

  /** The response is complete: the connection goes back to its pool if both sides allow it. */
  private finish(ex: Exchange, extraBytes: boolean): void {
    const head = this.head!
    const reusable =
      this.pool.settings.upstreamKeepAlive &&
      !extraBytes &&
      this.framing !== Framing.Close &&
      ex.requestDone &&
      !ex.upgrade &&
      responseKeepsAlive(head)
    const trailers = ex.decode && this.framing === Framing.Chunked ? this.reader!.trailerText : ""
    this.ex = null
    ex.up = null
    this.head = null
    this.served++
    if (reusable && !this.socket.destroyed) {
      this.socket.resume()
      this.pool.release(this)
    } else this.socket.destroy()
    ex.client.responseEnd(ex, trailers)
  }

  private fail(ex: Exchange, f: Failure): void {
    this.ex = null
    ex.up = null
    this.socket.destroy()
    ex.client.failed(ex, f)
  }

  private tunnel(ex: Exchange, head: ResponseHead, rest: Buffer | undefined): void {
    const s = this.socket
    this.ex = null
    ex.up = null
    this.phase = GONE
    unlisten(s)
    this.pool.detach(this)
    ex.client.upgrade(ex, head, s, rest)
  }

  timedOut(): void {
    if (this.ex !== null && this.phase === HEAD && !this.gotBytes) {
      this.timedOutWaiting = true
    }
    // Recorded as an error so that a close-delimited body cut short by the timeout never looks complete.
    this.error ??= new Error(`no data for ${this.timeoutMs} ms`)
    this.socket.destroy()
  }

  closed(): void {
    const phase = this.phase
    if (phase === GONE) return
    this.phase = GONE
    const ex = this.ex
    this.ex = null
    this.pool.dropped(this)
    if (ex === null || ex.aborted) return
    ex.up = null
    if (phase === HEAD) {
      if (this.timedOutWaiting) {
        ex.client.failed(
          ex,
          failure(
            504,
            "UPSTREAM_TIMEOUT",
            "backend",
            `backend ${this.pool.where} did not answer within ${this.pool.settings.upstreamHeadersMs} ms`
          )
        )
        return
      }
      // The backend closed a kept-alive connection just as we reused it: it never saw the request.
      if (!this.gotBytes && this.served > 0 && ex.retryable && !ex.retried) {
        ex.retried = true
        this.pool.acquire(ex, true)
        return
      }
      ex.client.failed(ex, this.hungUp("before answering"))
      return
    }
    if (this.framing === Framing.Close && this.error === undefined) {
      this.served++
      ex.client.responseEnd(ex, "")
      return
    }
    ex.client.failed(ex, this.hungUp("mid-response"))
  }

  /** 502: the backend closed the connection `when`, with the socket's error if there was one. */
  private hungUp(when: string): Failure {
    const err = this.error as NodeJS.ErrnoException | undefined
    const why = err === undefined ? "" : `: ${err.code ?? err.message}`
    return failure(502, "BAD_GATEWAY", "backend", `backend ${this.pool.where} closed the connection ${when}${why}`)
  }
}
