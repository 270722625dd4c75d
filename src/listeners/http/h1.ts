// One HTTP/1.x client connection: identify (request head, Host) → resolve → connect (pooled backend) → relay
// (bodies both ways, byte for byte) → next request on the same connection. Plain callbacks and one object per
// connection; the handlers are shared and find their connection through one field on the socket.
import type * as net from "node:net"
import {
  CHUNK_INVALID,
  ChunkedReader,
  decodeRequestHead,
  Framing,
  headEnd,
  isH2Preface,
  latin1,
  parseAuthority,
  partialHeadError,
  type RequestHead,
  type ResponseHead,
  skipEmptyLines
} from "../../codec/http/index.ts"
import { formatEndpoint } from "../../domain/Endpoint.ts"
import type { ConnectionInfo } from "../../domain/Route.ts"
import { relay } from "../../relay/relay.ts"
import { type ReadCallback, readCallbackOf, useUserBuffer } from "../../relay/userBuffer.ts"
import { h1DirectBytes } from "./direct.ts"
import { badRequest, type Failure, failure, failureResponse, forResource } from "./failure.ts"
import {
  clientKeepsAlive,
  clientResponseHead,
  type Forwarding,
  informationalHead,
  upgradeGranted,
  upgradeOffer,
  upstreamHeadFromH1
} from "./headers.ts"
import type { RouteEntry } from "./routes.ts"
import type { HttpRuntime } from "./runtime.ts"
import { type ClientSide, Exchange, mayRetry, ownedChunk, sharedReadBuffer } from "./upstream.ts"

/** Waiting for a request head, none of its bytes received yet (keep-alive idle). */
const IDLE = 0
/** Part of a head received: the head deadline runs. */
const HEAD = 1
/** Head read; route lookup or backend connection pending. Bytes arriving now are held and pause the socket. */
const ROUTING = 2
/** The request body flows to the backend. */
const SENDING = 3
/** Request complete, response pending or flowing. Pipelined requests wait in `buf` (the socket paused). */
const WAITING = 4
/** After a 101: a byte relay now. */
const TUNNEL = 5
const CLOSED = 6

/** How long a refused client gets to read the answer before its socket is destroyed. */
const refuseGraceMs = 2_000

type ClientSocket = net.Socket & { _h1?: H1Conn }

function onData(this: ClientSocket, chunk: Buffer) {
  this._h1!.data(chunk, false)
}
/** Reads into the shared buffer (`readShared`): `buf[0, nread)` is valid only during the call. */
function onSharedRead(this: ClientSocket, nread: number, buf: Buffer): boolean {
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

/** Bodies up to this size leave with their head in one write. */
const smallBody = 16 * 1024

export class H1Conn implements ClientSide {
  readonly socket: ClientSocket
  private readonly rt: HttpRuntime
  private state = IDLE
  /** Unprocessed client bytes: `buf[bufStart, bufEnd)`. */
  private buf: Buffer | null = null
  private bufStart = 0
  private bufEnd = 0
  private scanFrom = 0
  private headStarted = 0
  ex: Exchange | null = null
  private head: RequestHead | null = null
  private rawHead: Buffer | null = null
  private bodyLeft = 0
  private reader: ChunkedReader | null = null
  private chunked = false
  private bodyDone = true
  private keepAlive = true
  private closeAfter = false
  private clientEnded = false
  private headSent = false
  /** A response head not written yet: it goes out with the first body bytes, in one write. */
  private pendingHead = ""
  private driving = false
  /** The socket's current inactivity timeout: set only when it changes (most connections change it once). */
  private timeoutMs: number
  private gone = false
  private requests = 0
  private bytesFromBackend = 0
  private readonly started = performance.now()
  private info: ConnectionInfo | undefined
  /** The resource this connection's requests go to, for the Resolver's connect/disconnect hooks. */
  private resource = ""
  private resourceEndpoint = ""
  private resourceSince = 0
  private resourceBytes = 0
  private resourceBackendBytes = 0

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

  private setIdleTimeout(ms: number): void {
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

  private headTimeout(): Failure {
    const s = this.rt.settings
    return failure(
      408,
      "HANDSHAKE_TIMEOUT",
      "client",
      s.headMs > 0 ? `request head not complete within ${s.headMs} ms` : `no request head bytes for ${s.keepAliveMs} ms`
    )
  }

  private peer(): string {
    return `${this.socket.remoteAddress}:${this.socket.remotePort}`
  }

  private connectionInfo(): ConnectionInfo {
    if (this.info === undefined) {
      const s = this.socket as net.Socket & { servername?: string | false }
      this.info = {
        protocol: "http",
        remoteAddress: s.remoteAddress ?? "",
        remotePort: s.remotePort ?? 0,
        sni: typeof s.servername === "string" ? s.servername : undefined
      }
    }
    return this.info
  }

  // ---- client bytes in

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
  private readShared(): void {
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
  private drive(): void {
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

  private request(head: RequestHead): void {
    this.requests++
    this.head = head
    this.headSent = false
    this.keepAlive = clientKeepsAlive(head) && !this.rt.draining
    this.chunked = head.chunked
    if (head.chunked) {
      if (this.reader === null) this.reader = new ChunkedReader()
      else this.reader.reset()
      this.bodyDone = false
    } else {
      this.bodyLeft = Math.max(head.contentLength, 0)
      this.bodyDone = this.bodyLeft === 0
    }
    // The socket keeps reading: a client rarely sends more before its answer, and data() pauses it if one does.
    this.state = ROUTING
    if (head.method === "CONNECT") {
      this.refuse(failure(405, "METHOD_NOT_ALLOWED", "client", "CONNECT is not proxied here"), true)
      return
    }
    const authority = parseAuthority(head.authority ?? head.host!)
    if (typeof authority === "string") {
      this.refuse(badRequest(400, authority), !this.bodyDone)
      return
    }
    const s = this.rt.settings
    if (s.directResponse !== undefined) {
      this.closeAfter = !this.bodyDone || !this.keepAlive
      this.socket.write(h1DirectBytes(s.directResponse, head.method === "HEAD", this.closeAfter))
      this.next()
      return
    }
    const routes = this.rt.routes
    const entry = routes.cached(authority.hostname)
    if (entry !== undefined) {
      this.routed(entry, true)
      return
    }
    routes.resolve(authority.hostname, this.connectionInfo(), (e, f, hit) => {
      if (this.state !== ROUTING) return
      if (e === undefined) this.refuse(f!, !this.bodyDone)
      else this.routed(e, hit)
    })
  }

  /** connect: the route is known; build the backend head and get a pooled connection. */
  private routed(entry: RouteEntry, cacheHit: boolean): void {
    const head = this.head!
    const resourceId = entry.route.resourceId
    if (this.rt.hooks !== undefined && resourceId !== this.resource) {
      this.switchResource(resourceId, formatEndpoint(entry.route.endpoint))
    }
    const upgrade = upgradeOffer(head)
    let text: string | Buffer
    if (this.rawHead !== null) text = this.rawHead
    else {
      const s = this.rt.settings
      const ip = this.socket.remoteAddress ?? ""
      const original = head.authority ?? head.host!
      const f: Forwarding = {
        clientIp: ip,
        proto: s.secure ? "https" : "http",
        trusted: s.trusts(ip),
        host: s.preserveHost ? original : hostHeaderOf(entry),
        originalHost: original,
        close: !s.upstreamKeepAlive
      }
      text = upstreamHeadFromH1(head, f, upgrade)
    }
    const ex = new Exchange(
      this,
      this,
      head.method,
      entry.pool,
      resourceId,
      text,
      mayRetry(head.method, !this.bodyDone, upgrade !== undefined),
      upgrade !== undefined
    )
    ex.cacheHit = cacheHit
    this.ex = ex
    entry.pool.acquire(ex)
  }

  // ---- ClientSide: called by the backend connection

  connected(ex: Exchange): void {
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

  informational(_ex: Exchange, head: ResponseHead): void {
    // RFC 9110 §15.2: no 1xx to an HTTP/1.0 client.
    if (this.head!.minor >= 1 && !this.socket.destroyed) this.socket.write(informationalHead(head), "latin1")
  }

  responseHead(ex: Exchange, head: ResponseHead, framing: Framing): void {
    const s = this.rt.settings
    const minor = this.head!.minor
    ex.decode = framing === Framing.Chunked && minor === 0
    this.closeAfter = !this.keepAlive || this.clientEnded || this.rt.draining || framing === Framing.Close || ex.decode
    const extra = s.telemetry
      ? `x-proxy-cache: ${ex.cacheHit ? "HIT" : "MISS"}\r\nx-proxy-upstream-time: ${Math.round(ex.upstreamMs)}\r\n` +
        `x-proxy-upstream-connection: ${ex.reused ? "reused" : "new"}\r\n`
      : ""
    const text = clientResponseHead(head, {
      transferEncoding: framing === Framing.Chunked && !ex.decode ? head.transferEncoding : undefined,
      connection: this.closeAfter ? 1 : minor === 0 ? 2 : 0,
      extra,
      upgrade: false
    })
    this.headSent = true
    this.pendingHead = text
  }

  responseData(_ex: Exchange, buf: Buffer, start: number, end: number): boolean {
    const socket = this.socket
    if (socket.destroyed) return true
    const head = this.pendingHead
    if (head.length > 0) {
      this.pendingHead = ""
      // One write for head and a small body: a single latin1 string costs less than cork/uncork and a writev.
      if (end - start <= smallBody) return socket.write(head + latin1(buf, start, end), "latin1")
      socket.write(head, "latin1")
    }
    return socket.write(ownedChunk(buf, start, end))
  }

  flush(_ex: Exchange): void {
    this.writeHead()
  }

  /** Writes a head still waiting for body bytes (a bodiless answer, or one whose body comes in a later read). */
  private writeHead(): void {
    if (this.pendingHead.length > 0) {
      const head = this.pendingHead
      this.pendingHead = ""
      if (!this.socket.destroyed) this.socket.write(head, "latin1")
    }
  }

  responseEnd(ex: Exchange, _trailers: string): void {
    this.ex = null
    this.bytesFromBackend += ex.bytesFromBackend
    this.resourceBackendBytes += ex.bytesFromBackend
    if (!this.bodyDone) this.closeAfter = true
    // Before the next pipelined request can answer anything, this one's head must be out.
    this.writeHead()
    this.next()
  }

  /** After an answer: close, or wait for (or read the already buffered) next request. */
  private next(): void {
    if (this.closeAfter || this.clientEnded || this.rt.draining) {
      this.state = CLOSED
      this.writeHead()
      this.socket.end()
      this.setIdleTimeout(refuseGraceMs)
      return
    }
    this.state = IDLE
    this.head = null
    this.rawHead = null
    this.setIdleTimeout(this.rt.settings.keepAliveMs)
    if (this.buf !== null) this.drive()
    if ((this.state === IDLE || this.state === HEAD) && this.socket.isPaused()) this.socket.resume()
    // Asked of the socket, not kept in a field: idle connections are what the proxy holds most of.
    if (this.state === IDLE && readCallbackOf(this.socket) !== (onSharedRead as ReadCallback)) this.readShared()
  }

  upgrade(ex: Exchange, head: ResponseHead, backend: net.Socket, rest: Buffer | undefined): void {
    this.ex = null
    if (!upgradeGranted(upgradeOffer(this.head!) ?? "", head.upgrade)) {
      // A tunnel to a protocol the client never asked for (or h2c, never offered) is one the proxy cannot vouch for.
      backend.destroy()
      this.bytesFromBackend += ex.bytesFromBackend
      this.refuse(failure(502, "BAD_GATEWAY", "backend", "upstream switched to a protocol that was not offered"), true)
      return
    }
    this.state = TUNNEL
    const client = this.socket
    client.off("data", onData)
    client.off("drain", onDrain)
    client.off("end", onEnd)
    client.off("timeout", onTimeout)
    client.off("close", onClose)
    client.setTimeout(0)
    if (client.destroyed) {
      backend.destroy()
      this.closed()
      return
    }
    client.write(
      clientResponseHead(head, { transferEncoding: undefined, connection: 0, extra: "", upgrade: true }),
      "latin1"
    )
    if (rest !== undefined) client.write(rest)
    if (this.buf !== null) backend.write(this.buf.subarray(this.bufStart, this.bufEnd))
    this.buf = null
    backend.allowHalfOpen = true
    // A reused backend socket counts the earlier exchanges' bytes too: only what follows belongs to this one.
    const base = backend.bytesRead
    relay(
      client,
      backend,
      (totals) => {
        const bytes = ex.bytesFromBackend + totals.bytesFromBackend - base
        this.bytesFromBackend += bytes
        this.resourceBackendBytes += bytes
        this.closed()
      },
      { idleTimeoutMs: this.rt.settings.tunnelIdleMs, halfCloseMs: this.rt.settings.tunnelHalfCloseMs }
    )
  }

  failed(ex: Exchange, failed: Failure): void {
    const f = forResource(failed, ex.resourceId)
    if (this.ex === ex) this.ex = null
    this.bytesFromBackend += ex.bytesFromBackend
    if (this.headSent) {
      // Mid-response there is nothing left to say in HTTP/1.1 but a cut connection.
      this.rt.refused(f, this.peer(), this.head?.method ?? "", this.head?.target ?? "")
      this.state = CLOSED
      this.socket.destroy()
      return
    }
    this.refuse(f, !this.bodyDone)
  }

  /** Answers `f` as JSON. `close`: the connection cannot carry another request (its body was not read, or worse). */
  private refuse(f: Failure, close: boolean): void {
    const head = this.head
    const sent = this.rt.refused(f, this.peer(), head?.method ?? "", head?.target ?? "")
    if (this.socket.destroyed) return
    this.closeAfter = close || !this.keepAlive || f.status === 408 || f.status === 431
    this.socket.write(failureResponse(sent, this.closeAfter, head?.method === "HEAD"), "utf8")
    this.headSent = true
    this.next()
  }

  // ---- client socket events

  /** The listener drains: an idle connection closes now, a busy one after its answer (see next()). */
  draining(): void {
    if (this.state === IDLE) {
      this.state = CLOSED
      this.socket.end()
      this.setIdleTimeout(refuseGraceMs)
    }
  }

  ended(): void {
    this.clientEnded = true
    if (this.state === IDLE || this.state === HEAD) {
      this.state = CLOSED
      this.socket.end()
    } else if (this.state === SENDING && !this.bodyDone) {
      // The client hung up halfway through its body: the backend would wait for the rest forever.
      this.socket.destroy()
    }
  }

  timedOut(): void {
    switch (this.state) {
      case IDLE:
        // Nothing received (a new connection past timeouts.handshake, a kept-alive one past keepAliveTimeout):
        // closed without an answer, as nginx does and HAProxy with http-ignore-probes (no request, nothing to refuse).
        this.state = CLOSED
        this.socket.end()
        this.setIdleTimeout(refuseGraceMs)
        return
      case HEAD:
        this.refuse(this.headTimeout(), true)
        return
      case CLOSED:
        this.socket.destroy()
        return
      default:
      // Waiting on the backend: its own timeouts apply.
    }
  }

  closed(): void {
    if (this.gone) return
    this.gone = true
    this.state = CLOSED
    const ex = this.ex
    if (ex !== null) {
      this.ex = null
      this.bytesFromBackend += ex.bytesFromBackend
      ex.abort()
    }
    if (this.resource !== "") this.switchResource("", "")
    this.rt.forget(this.socket, this.bytesFromBackend)
  }

  /** Reports the resource this connection served so far (bytes, duration) and starts counting for the next one. */
  private switchResource(next: string, endpoint: string): void {
    const hooks = this.rt.hooks!
    const info = this.connectionInfo()
    const now = performance.now()
    const read = this.socket.bytesRead
    if (this.resource !== "") {
      hooks.disconnected(
        this.resource,
        this.resourceEndpoint,
        info,
        read - this.resourceBytes,
        this.resourceBackendBytes,
        Math.round(now - (this.resourceSince || this.started))
      )
    }
    this.resource = next
    this.resourceEndpoint = endpoint
    this.resourceSince = now
    this.resourceBytes = read
    this.resourceBackendBytes = 0
    if (next !== "") hooks.connected(next, info)
  }

  /** HTTP/2 with prior knowledge: the node:http2 server takes the socket over, bytes read so far included. */
  private toHttp2(): void {
    const socket = this.socket
    socket.pause()
    socket.off("data", onData)
    socket.off("drain", onDrain)
    socket.off("end", onEnd)
    socket.off("timeout", onTimeout)
    socket.setTimeout(0)
    this.state = TUNNEL
    if (this.buf !== null) socket.unshift(this.buf.subarray(this.bufStart, this.bufEnd))
    this.buf = null
    this.rt.h2!.emit("connection", socket)
  }
}

const hostHeaderOf = (entry: RouteEntry): string => {
  const e = entry.route.endpoint
  return e.host.includes(":") ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`
}
