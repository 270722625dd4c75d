// connect + relay towards HTTP/1.1 backends: one keep-alive pool per vetted backend address, a small state machine
// per backend connection, and the Exchange that ties one client request to one backend connection.
//
// Why not undici or node:http's Agent: behind the same node:http server, a raw pooled socket that writes one head
// string and relays body bytes as they come used 0.022-0.025 CPU s per 1k requests, undici's Pool.dispatch
// 0.029-0.040 and http.Agent 0.048 (bench/http/clients.ts, bench/results/http.md). It also keeps chunked bodies
// byte-for-byte (no decode and re-encode), and the framing decisions in one codec we test for smuggling.
import * as net from "node:net"
import * as tls from "node:tls"
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
import { formatEndpoint, type VettedEndpoint } from "../../domain/Endpoint.ts"
import type { Route } from "../../domain/Route.ts"
import { nextSourceAddress } from "../sourceAddress.ts"
import { type ClientTlsOptions, upstreamTlsFor } from "../tls.ts"
import { clientConnectOptions } from "../tlsProfile.ts"
import { type Failure, failure } from "./failure.ts"
import type { HttpSettings } from "./settings.ts"

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
    upgrade: boolean
  ) {
    this.client = client
    this.owner = owner
    this.method = method
    this.pool = pool
    this.resourceId = resourceId
    this.head = head
    this.retryable = retryable
    this.upgrade = upgrade
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

/** A backend response head larger than this is refused (502). */
const MAX_RESPONSE_HEAD = 64 * 1024

const CONNECTING = 0
const IDLE = 1
const HEAD = 2
const BODY = 3
const GONE = 4

type UpSocket = net.Socket & { _up?: UpstreamConn }

function onUpData(this: UpSocket, chunk: Buffer) {
  this._up!.data(chunk)
}

// Plain backend connections (and kept-alive plain client connections, h1.ts) read into one buffer that all of them
// share (net.connect's `onread`, src/relay/userBuffer.ts) instead of a new Buffer per read: Node's per-read
// ArrayBuffer and its stream machinery cost more than parsing the message (perf on the http bench). A read's bytes
// are valid only during its callback: what outlives it (a partial head, a body chunk queued behind a full socket) is
// copied (`ownedChunk`).
export const sharedReadBuffer = Buffer.allocUnsafeSlow(64 * 1024)

function onUpRead(this: UpSocket, nread: number, buf: Buffer): boolean {
  const up = this._up!
  // After a 101 the socket belongs to the tunnel, which reads `data` events.
  if (up.phase === GONE) this.emit("data", Buffer.from(buf.subarray(0, nread)))
  else up.data(buf.subarray(0, nread))
  return true
}

/** `buf[start, end)` for keeping past the call: copied when it lies in the shared read buffer. */
export const ownedChunk = (buf: Buffer, start: number, end: number): Buffer => {
  if (buf.buffer === sharedReadBuffer.buffer) return Buffer.from(buf.subarray(start, end))
  return start === 0 && end === buf.length ? buf : buf.subarray(start, end)
}
function onUpDrain(this: UpSocket) {
  const ex = this._up!.ex
  if (ex !== null) ex.client.upstreamDrained(ex)
}
function onUpError(this: UpSocket, err: Error) {
  this._up!.error ??= err
}
function onUpClose(this: UpSocket) {
  this._up!.closed()
}
function onUpTimeout(this: UpSocket) {
  this._up!.timedOut()
}

const sharedReads: net.OnReadOpts = { buffer: sharedReadBuffer, callback: onUpRead as net.OnReadOpts["callback"] }

const errorText = (err: Error | undefined): string =>
  err === undefined ? "" : `: ${(err as NodeJS.ErrnoException).code ?? err.message}`

/** One connection to a backend: idle in its pool, or carrying one exchange at a time. */
export class UpstreamConn implements ChunkSink {
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

  constructor(pool: OriginPool, ex: Exchange) {
    this.pool = pool
    this.ex = ex
    const t = pool.target
    const raw = net.connect({
      host: t.ip,
      port: t.port,
      family: t.family,
      localAddress: nextSourceAddress(t.family),
      noDelay: true,
      // A TLS socket over this one reads it itself.
      onread: pool.tls === undefined ? sharedReads : undefined
    }) as UpSocket
    raw._up = this
    this.socket = raw
    raw.on("error", onUpError)
    raw.on("close", onUpClose)
    raw.on("timeout", onUpTimeout)
    this.setTimeoutMs(pool.settings.connectMs)
    raw.once("connect", () => {
      const tlsOptions = pool.tls
      if (tlsOptions === undefined) return this.ready()
      const secure = tls.connect({
        socket: raw,
        ...clientConnectOptions(tlsOptions),
        ALPNProtocols: ["http/1.1"]
      }) as UpSocket
      secure._up = this
      secure.on("error", onUpError)
      secure.once("secureConnect", () => {
        // The TLS socket carries the exchange from here; the raw one only reports its close through it.
        raw.off("timeout", onUpTimeout)
        raw.setTimeout(0)
        raw.off("close", onUpClose)
        this.socket = secure
        secure.on("close", onUpClose)
        secure.on("timeout", onUpTimeout)
        this.timeoutMs = 0
        this.ready()
      })
    })
  }

  private setTimeoutMs(ms: number): void {
    if (ms !== this.timeoutMs) {
      this.timeoutMs = ms
      this.socket.setTimeout(ms)
    }
  }

  private ready(): void {
    const s = this.socket
    s.on("data", onUpData)
    s.on("drain", onUpDrain)
    this.pool.breakerSuccess()
    const ex = this.ex
    this.ex = null
    if (ex === null || ex.aborted) this.pool.release(this)
    else this.assign(ex)
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
    s.off("data", onUpData)
    s.off("drain", onUpDrain)
    s.off("error", onUpError)
    s.off("close", onUpClose)
    s.off("timeout", onUpTimeout)
    s.setTimeout(0)
    s.on("error", ignore)
    this.pool.detach(this)
    ex.client.upgrade(ex, head, s, rest)
  }

  timedOut(): void {
    if (this.ex !== null && (this.phase === CONNECTING || (this.phase === HEAD && !this.gotBytes))) {
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
    if (phase === CONNECTING) this.pool.breakerFailure(this.error?.message ?? "timeout")
    this.pool.dropped(this)
    if (ex === null || ex.aborted) return
    ex.up = null
    const where = this.pool.where
    if (phase === CONNECTING) {
      ex.client.failed(
        ex,
        this.timedOutWaiting
          ? failure(
              504,
              "UPSTREAM_TIMEOUT",
              "backend",
              `backend ${where} did not accept within ${this.pool.settings.connectMs} ms`
            )
          : failure(502, "CONNECT_FAILED", "backend", `cannot connect to backend ${where}${errorText(this.error)}`)
      )
      return
    }
    if (phase === HEAD) {
      if (this.timedOutWaiting) {
        ex.client.failed(
          ex,
          failure(
            504,
            "UPSTREAM_TIMEOUT",
            "backend",
            `backend ${where} did not answer within ${this.pool.settings.upstreamHeadersMs} ms`
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
      ex.client.failed(
        ex,
        failure(
          502,
          "BAD_GATEWAY",
          "backend",
          `backend ${where} closed the connection before answering${errorText(this.error)}`
        )
      )
      return
    }
    if (this.framing === Framing.Close && this.error === undefined) {
      this.served++
      ex.client.responseEnd(ex, "")
      return
    }
    ex.client.failed(
      ex,
      failure(
        502,
        "BAD_GATEWAY",
        "backend",
        `backend ${where} closed the connection mid-response${errorText(this.error)}`
      )
    )
  }
}

function ignore() {}

/** Whether pooled connections to a backend are plain or TLS (and with which checks). */
type PoolTls = (ClientTlsOptions & { readonly servername: string | undefined }) | undefined

/** Breaker callbacks, when a CircuitBreaker service is present. */
export interface BreakerHooks {
  readonly admit: (backend: string) => { readonly ok: true } | { readonly ok: false; readonly retryAfter: number }
  readonly success: (backend: string) => void
  readonly failure: (backend: string, error: string) => void
}

/** The keep-alive connections to one backend address. */
export class OriginPool {
  readonly settings: HttpSettings
  readonly target: VettedEndpoint
  readonly tls: PoolTls
  readonly where: string
  readonly idle: Array<UpstreamConn> = []
  readonly waiting: Array<Exchange> = []
  /** Connections open or opening. */
  count = 0
  lastUsed = 0
  private readonly breaker: BreakerHooks | undefined

  constructor(settings: HttpSettings, target: VettedEndpoint, tlsOptions: PoolTls, breaker: BreakerHooks | undefined) {
    this.settings = settings
    this.target = target
    this.tls = tlsOptions
    this.where = formatEndpoint(target) + (target.ip === target.host ? "" : ` (${target.ip})`)
    this.breaker = breaker
  }

  /** Gets `ex` a connection: an idle one, a new one, or a place in the queue. `fresh`: skip idle ones (a retry). */
  acquire(ex: Exchange, fresh = false): void {
    this.lastUsed = performance.now()
    if (!fresh) {
      const idle = this.idle
      while (idle.length > 0) {
        const c = idle.pop()!
        if (c.socket.destroyed) continue
        c.assign(ex)
        return
      }
    }
    const max = this.settings.upstreamMaxConnections
    if (max === 0 || this.count < max) {
      this.dial(ex)
      return
    }
    ex.queuedAt = this.lastUsed
    this.waiting.push(ex)
  }

  private dial(ex: Exchange): void {
    if (this.breaker !== undefined) {
      const gate = this.breaker.admit(this.where)
      if (!gate.ok) {
        ex.client.failed(
          ex,
          failure(503, "UNAVAILABLE", "backend", `backend ${this.where} is failing; the circuit breaker is open`, {
            retryAfter: gate.retryAfter
          })
        )
        return
      }
    }
    this.count++
    new UpstreamConn(this, ex)
  }

  release(c: UpstreamConn): void {
    c.phase = IDLE
    while (this.waiting.length > 0) {
      const ex = this.waiting.shift()!
      if (!ex.aborted) {
        c.assign(ex)
        return
      }
    }
    c.idleSince = performance.now()
    this.idle.push(c)
  }

  /** A connection closed (or became a tunnel): it no longer counts, and a waiting exchange may dial. */
  dropped(c: UpstreamConn): void {
    this.count--
    const at = this.idle.indexOf(c)
    if (at >= 0) this.idle.splice(at, 1)
    while (this.waiting.length > 0) {
      const ex = this.waiting.shift()!
      if (!ex.aborted) {
        this.dial(ex)
        return
      }
    }
  }

  detach(c: UpstreamConn): void {
    this.dropped(c)
  }

  breakerSuccess(): void {
    this.breaker?.success(this.where)
  }

  breakerFailure(message: string): void {
    this.breaker?.failure(this.where, message)
  }

  /** Closes connections idle too long and fails exchanges queued longer than a connect may take. */
  sweep(now: number): void {
    const idle = this.idle
    const keepAlive = this.settings.upstreamKeepAliveMs
    // Oldest first: the pool hands out the most recently used connection, so the stale ones sink to the bottom.
    while (idle.length > 0 && now - idle[0]!.idleSince > keepAlive) idle.shift()!.socket.destroy()
    const waiting = this.waiting
    const limit = this.settings.connectMs
    while (waiting.length > 0 && limit > 0 && now - waiting[0]!.queuedAt > limit) {
      const ex = waiting.shift()!
      if (ex.aborted) continue
      ex.client.failed(
        ex,
        failure(
          503,
          "UNAVAILABLE",
          "backend",
          `all ${this.settings.upstreamMaxConnections} connections to ${this.where} stayed busy`,
          {
            retryAfter: 1
          }
        )
      )
    }
  }

  closeIdle(): void {
    for (const c of this.idle.splice(0)) c.socket.destroy()
  }
}

/** Every backend pool of one listener, swept once a second (one timer for all, not one per connection). */
export class Pools {
  private readonly map = new Map<string, OriginPool>()
  private readonly settings: HttpSettings
  private readonly breaker: BreakerHooks | undefined
  private readonly timer: NodeJS.Timeout

  constructor(settings: HttpSettings, breaker: BreakerHooks | undefined) {
    this.settings = settings
    this.breaker = breaker
    this.timer = setInterval(() => this.sweep(), 1_000)
    this.timer.unref()
  }

  /** The pool for `target`, plain or TLS per the route's `metadata.tls` and the listener's `upstreamTls`. */
  get(target: VettedEndpoint, route: Route | undefined): OriginPool {
    const t = route === undefined ? this.settings.upstreamTls : upstreamTlsFor(route, this.settings.upstreamTls)
    const servername = t === undefined ? undefined : (t.servername ?? (net.isIP(target.host) ? undefined : target.host))
    const key =
      t === undefined
        ? `${target.ip}|${target.port}`
        : `${target.ip}|${target.port}|tls|${servername ?? ""}|${t.rejectUnauthorized ? 1 : 0}|${t.minVersion ?? ""}|${String(t.ca ?? "")}`
    let pool = this.map.get(key)
    if (pool === undefined) {
      pool = new OriginPool(this.settings, target, t === undefined ? undefined : { ...t, servername }, this.breaker)
      this.map.set(key, pool)
    }
    return pool
  }

  private sweep(): void {
    const now = performance.now()
    for (const pool of this.map.values()) pool.sweep(now)
  }

  close(): void {
    clearInterval(this.timer)
    for (const pool of this.map.values()) pool.closeIdle()
  }
}
