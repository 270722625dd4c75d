// The client's side of an HTTP/1.x connection, as bytes: request heads read and checked (identify, with the head
// deadline), the request body relayed to the backend byte for byte, and what is held meanwhile (pipelined requests,
// body bytes before the backend is ready). H1Conn (h1.ts) builds routing and responses on it. The socket handlers are
// shared by every connection and find theirs through one field on the socket.
import type * as net from "node:net"
import {
  CHUNK_INVALID,
  type ChunkedReader,
  decodeRequestHead,
  headEnd,
  isH2Preface,
  partialHeadError,
  type RequestHead,
  skipEmptyLines
} from "../../codec/http/index.ts"
import { type ReadCallback, useUserBuffer } from "../../relay/userBuffer.ts"
import { badRequest, type Failure, failure } from "./failure.ts"
import type { HttpRuntime } from "./runtime.ts"
import { type Exchange, ownedChunk, sharedReadBuffer } from "./upstream.ts"

/** Waiting for a request head, none of its bytes received yet (keep-alive idle). */
export const IDLE = 0
/** Part of a head received: the head deadline runs. */
export const HEAD = 1
/** Head read; route lookup or backend connection pending. Bytes arriving now are held and pause the socket. */
export const ROUTING = 2
/** The request body flows to the backend. */
export const SENDING = 3
/** Request complete, response pending or flowing. Pipelined requests wait in `buf` (the socket paused). */
export const WAITING = 4
/** After a 101 (a byte relay now), or handed to the HTTP/2 server. */
export const TUNNEL = 5
export const CLOSED = 6

type ClientSocket = net.Socket & { _h1?: H1RequestReader }

function onData(this: ClientSocket, chunk: Buffer) {
  this._h1!.data(chunk, false)
}
/** Reads into the shared buffer (`readShared`): `buf[0, nread)` is valid only during the call. */
export function onSharedRead(this: ClientSocket, nread: number, buf: Buffer): boolean {
  const h1 = this._h1!
  // After a 101 the relay reads `data` events.
  if (h1.tunnelled()) this.emit("data", Buffer.from(buf.subarray(0, nread)))
  else h1.data(buf.subarray(0, nread), true)
  return true
}
function onDrain(this: ClientSocket) {
  const ex = this._h1!.ex
  if (ex !== null && ex.up !== null) ex.up.resume()
}
function onEnd(this: ClientSocket) {
  this._h1!.ended()
}
function onTimeout(this: ClientSocket) {
  this._h1!.timedOut()
}
function onClose(this: ClientSocket) {
  this._h1!.closed()
}
function ignore() {}

/** The socket leaves HTTP/1.x (to the HTTP/2 server; `close` too: to the relay after a 101, which reports it). */
export const detach = (socket: net.Socket, close: boolean): void => {
  socket.off("data", onData)
  socket.off("drain", onDrain)
  socket.off("end", onEnd)
  socket.off("timeout", onTimeout)
  if (close) socket.off("close", onClose)
  socket.setTimeout(0)
}

export abstract class H1RequestReader {
  readonly socket: ClientSocket
  protected readonly rt: HttpRuntime
  protected state = IDLE
  /** Unprocessed client bytes: `buf[bufStart, bufEnd)`. */
  protected buf: Buffer | null = null
  protected bufStart = 0
  protected bufEnd = 0
  private scanFrom = 0
  protected headStarted = 0
  ex: Exchange | null = null
  /** The head as received, forwarded unchanged (fastPath). */
  protected rawHead: Buffer | null = null
  protected bodyLeft = 0
  protected reader: ChunkedReader | null = null
  protected chunked = false
  protected bodyDone = true
  private driving = false
  /** The socket's current inactivity timeout: set only when it changes (most connections change it once). */
  private timeoutMs: number
  protected requests = 0

  /** identify is done: route `head` (its body, if any, waits in `buf` until connected()). */
  protected abstract request(head: RequestHead): void
  /** Answers `f`. `close`: the connection cannot carry another request. */
  protected abstract refuse(f: Failure, close: boolean): void
  abstract ended(): void
  abstract timedOut(): void
  abstract closed(): void

  constructor(socket: net.Socket, rt: HttpRuntime) {
    this.socket = socket as ClientSocket
    this.rt = rt
    this.socket._h1 = this
    socket.on("data", onData)
    socket.on("drain", onDrain)
    socket.on("end", onEnd)
    socket.on("timeout", onTimeout)
    socket.on("close", onClose)
    socket.on("error", ignore)
    socket.setNoDelay(true)
    // A new connection gets timeouts.handshake for its first request, like a head already begun (then see next()).
    const s = rt.settings
    this.timeoutMs = s.headMs > 0 ? s.headMs : s.keepAliveMs
    socket.setTimeout(this.timeoutMs)
  }

  protected setIdleTimeout(ms: number): void {
    if (ms !== this.timeoutMs) {
      this.timeoutMs = ms
      this.socket.setTimeout(ms)
    }
  }

  /**
   * Part of a head is in: 408 if its deadline passed, else the socket's timeout is what is left of it, so a client
   * that trickles bytes (slow-loris) or falls silent gets its 408 at the deadline either way.
   */
  private headPending(): void {
    const s = this.rt.settings
    if (this.state === IDLE) {
      this.state = HEAD
      this.headStarted = performance.now()
    }
    if (s.headMs <= 0) return
    const left = s.headMs - (performance.now() - this.headStarted)
    if (left <= 0) this.refuse(this.headTimeout(), true)
    else this.setIdleTimeout(Math.ceil(left))
  }

  protected headTimeout(): Failure {
    const s = this.rt.settings
    return failure(
      408,
      "HANDSHAKE_TIMEOUT",
      "client",
      s.headMs > 0 ? `request head not complete within ${s.headMs} ms` : `no request head bytes for ${s.keepAliveMs} ms`
    )
  }

  /** `shared`: `chunk` lies in the shared read buffer, so nothing may keep it past this call. */
  data(chunk: Buffer, shared: boolean): void {
    switch (this.state) {
      case SENDING:
        this.pushBody(shared ? Buffer.from(chunk) : chunk, 0, chunk.length)
        return
      case IDLE:
      case HEAD:
        this.append(chunk)
        this.drive()
        if (shared) this.keepRest()
        return
      case TUNNEL:
      case CLOSED:
        return
      default:
        // A pipelined request (or body bytes before the backend is ready): hold it, read no more meanwhile.
        this.append(shared && this.buf === null ? Buffer.from(chunk) : chunk)
        this.socket.pause()
    }
  }

  tunnelled(): boolean {
    return this.state === TUNNEL
  }

  /** Bytes left in `buf` after a shared read (the start of the next head): copied, the next read overwrites them. */
  private keepRest(): void {
    const buf = this.buf
    if (buf === null || buf.buffer !== sharedReadBuffer.buffer) return
    this.buf = Buffer.from(buf.subarray(this.bufStart, this.bufEnd))
    this.scanFrom = Math.max(0, this.scanFrom - this.bufStart)
    this.bufStart = 0
    this.bufEnd = this.buf.length
  }

  /**
   * A plain connection that has carried a request reads into the shared buffer from now on (after the first request,
   * so an h2c preface and the first head keep Node's own reads). Only with nothing buffered in the stream, so that no
   * byte is overtaken; tried again after the next request otherwise.
   */
  protected readShared(): void {
    const socket = this.socket
    if (this.rt.settings.secure || socket.readableLength > 0 || socket.destroyed) return
    useUserBuffer(socket, sharedReadBuffer, onSharedRead as ReadCallback)
  }

  private append(chunk: Buffer): void {
    const buf = this.buf
    if (buf === null) {
      this.buf = chunk
      this.bufStart = 0
      this.bufEnd = chunk.length
      return
    }
    if (buf.length - this.bufEnd >= chunk.length) {
      chunk.copy(buf, this.bufEnd)
      this.bufEnd += chunk.length
      return
    }
    // Grow by doubling so that a head trickling in byte by byte costs O(n), not O(n²).
    const have = this.bufEnd - this.bufStart
    const next = Buffer.allocUnsafe(Math.max(2 * (have + chunk.length), 4096))
    buf.copy(next, 0, this.bufStart, this.bufEnd)
    chunk.copy(next, have)
    this.scanFrom = Math.max(0, this.scanFrom - this.bufStart)
    this.buf = next
    this.bufStart = 0
    this.bufEnd = have + chunk.length
  }

  private consume(to: number): void {
    if (to >= this.bufEnd) this.buf = null
    else this.bufStart = to
  }

  /** identify: reads request heads from `buf` while the connection waits for one. */
  protected drive(): void {
    // Requests answered synchronously (refusals, directResponse) call back into drive through next(): the outer
    // loop picks their successors up instead of recursing once per pipelined request.
    if (this.driving) return
    this.driving = true
    try {
      this.driveLoop()
    } finally {
      this.driving = false
    }
  }

  private driveLoop(): void {
    const s = this.rt.settings
    while ((this.state === IDLE || this.state === HEAD) && this.buf !== null) {
      const buf = this.buf
      let start = this.bufStart
      const end = this.bufEnd
      if (this.requests === 0 && start === 0 && s.h2c && !s.secure && this.rt.h2 !== undefined) {
        const preface = isH2Preface(buf, start, end)
        if (preface === undefined) {
          this.headPending()
          return
        }
        if (preface) {
          this.toHttp2()
          return
        }
      }
      start = skipEmptyLines(buf, start, end)
      if (start >= end) {
        this.buf = null
        return
      }
      this.bufStart = start
      if (this.state === IDLE) {
        this.state = HEAD
        this.headStarted = performance.now()
      }
      const he = headEnd(buf, start, end, this.scanFrom)
      if (he < 0) {
        // Bytes that can never become a request are answered now, not when the head deadline passes.
        const bad = partialHeadError(buf, start, this.scanFrom, end)
        if (bad !== undefined) {
          this.refuse(badRequest(bad.status, bad.reason), true)
          return
        }
        if (end - start > s.maxHeaderSize) {
          this.refuse(badRequest(431, `request head larger than ${s.maxHeaderSize} bytes`), true)
          return
        }
        this.scanFrom = end
        this.headPending()
        return
      }
      this.scanFrom = 0
      if (he - start > s.maxHeaderSize) {
        this.refuse(badRequest(431, `request head larger than ${s.maxHeaderSize} bytes`), true)
        return
      }
      const d = decodeRequestHead(buf, start, he)
      if (d._tag !== "Frame") {
        this.refuse(
          badRequest(d._tag === "Invalid" ? d.status : 400, d._tag === "Invalid" ? d.reason : "bad head"),
          true
        )
        return
      }
      this.rawHead = s.fastPath ? ownedChunk(buf, start, he) : null
      this.consume(he)
      this.request(d.value)
    }
  }

  connected(ex: Exchange): void {
    this.rt.metrics.handshake(ex.sentAt - this.headStarted)
    if (this.bodyDone) {
      ex.requestDone = true
      this.state = WAITING
      return
    }
    this.state = SENDING
    const buf = this.buf
    let more = true
    if (buf !== null) {
      // Still the shared read when an idle backend connection took the request at once.
      const own = ownedChunk(buf, this.bufStart, this.bufEnd)
      this.buf = null
      more = this.pushBody(own, 0, own.length)
    }
    if (this.state === SENDING && more && this.socket.isPaused()) this.socket.resume()
  }

  upstreamDrained(ex: Exchange): void {
    if (this.state === SENDING && this.ex === ex) this.socket.resume()
  }

  /**
   * relay, client → backend: exactly the body's bytes; whatever follows is the next request. Returns false when the
   * backend socket is full (the client socket is paused until it drains).
   */
  private pushBody(buf: Buffer, start: number, end: number): boolean {
    const ex = this.ex!
    const up = ex.up
    if (up === null) {
      this.append(start === 0 ? buf : buf.subarray(start, end))
      return false
    }
    let stop: number
    if (this.chunked) {
      const at = this.reader!.read(buf, start, end)
      if (at === CHUNK_INVALID) {
        ex.abort()
        this.ex = null
        this.refuse(badRequest(400, `chunked request body: ${this.reader!.error}`), true)
        return false
      }
      stop = at < 0 ? end : at
      if (at >= 0) this.bodyDone = true
    } else {
      stop = start + Math.min(this.bodyLeft, end - start)
      this.bodyLeft -= stop - start
      if (this.bodyLeft === 0) this.bodyDone = true
    }
    const more =
      stop > start ? up.socket.write(start === 0 && stop === buf.length ? buf : buf.subarray(start, stop)) : true
    if (stop < end) {
      this.buf = buf
      this.bufStart = stop
      this.bufEnd = end
    }
    if (this.bodyDone) {
      ex.requestDone = true
      this.state = WAITING
      return false
    }
    if (!more) this.socket.pause()
    return more
  }

  /** HTTP/2 with prior knowledge: the node:http2 server takes the socket over, bytes read so far included. */
  private toHttp2(): void {
    const socket = this.socket
    socket.pause()
    detach(socket, false)
    this.state = TUNNEL
    if (this.buf !== null) socket.unshift(this.buf.subarray(this.bufStart, this.bufEnd))
    this.buf = null
    this.rt.h2!.emit("connection", socket)
  }
}
