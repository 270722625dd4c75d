// HTTP/2 clients (h2c with prior knowledge, h2 through ALPN) to HTTP/1.1 backends: node:http2 runs the session, each
// stream becomes one Exchange on the same backend pools as HTTP/1.x, with bodies decoded/encoded at this hop.
import * as http2 from "node:http2"
import type * as net from "node:net"
import {
  chunkHeader,
  type FieldList,
  Framing,
  LAST_CHUNK,
  parseAuthority,
  parseTrailerText,
  type ResponseHead
} from "../../codec/http/index.ts"
import type { ConnectionInfo } from "../../domain/Route.ts"
import { clientAddress, clientPort } from "./clientAddress.ts"
import { h2Direct } from "./direct.ts"
import { badRequest, type Failure, failure, failureBody, forResource } from "./failure.ts"
import { forwardStream, type H2Protocol, h2ProtocolOf } from "./h2upstream.ts"
import {
  type Forwarding,
  h2PassResponseHeaders,
  h2ResponseHeaders,
  h2UpstreamHeaders,
  upstreamHeadFromH2
} from "./headers.ts"
import type { RouteEntry } from "./routes.ts"
import type { HttpRuntime, ResourceHolder } from "./runtime.ts"
import { type ClientSide, Exchange, mayRetry, ownedChunk } from "./upstream.ts"

const { NGHTTP2_INTERNAL_ERROR } = http2.constants

const CRLF = Buffer.from("\r\n", "latin1")
const LAST = Buffer.from(LAST_CHUNK, "latin1")

function ignore() {}

/** One HTTP/2 request stream. */
class H2Request implements ClientSide, ResourceHolder {
  private readonly stream: http2.ServerHttp2Stream
  private readonly rt: HttpRuntime
  private readonly method: string
  private readonly path: string
  private readonly authority: string
  private readonly fields: FieldList
  private readonly hasBody: boolean
  /** No Content-Length from the client: the body goes to the backend chunked. */
  private readonly chunked: boolean
  private ex: Exchange | null = null
  private headSent = false
  private responded = false
  private trailers: Record<string, string> | undefined
  // ResourceHolder (limits.perResource, per-resource metrics), and what its release counts.
  held: RouteEntry | null = null
  heldFromClient = 0
  heldFromBackend = 0
  private readonly started = performance.now()
  private exchange: Exchange | null = null
  private fromClient = 0

  constructor(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, rt: HttpRuntime) {
    this.stream = stream
    this.rt = rt
    this.method = String(headers[":method"] ?? "GET")
    this.path = String(headers[":path"] ?? "/")
    this.authority = String(headers[":authority"] ?? headers.host ?? "")
    const fields: FieldList = []
    let contentLength = false
    for (const name in headers) {
      if (name.charCodeAt(0) === 0x3a) continue
      const value = headers[name]
      if (value === undefined) continue
      if (name === "content-length") contentLength = true
      if (Array.isArray(value)) for (const v of value) fields.push(name, name, v)
      else fields.push(name, name, String(value))
    }
    this.fields = fields
    this.hasBody = !stream.endAfterHeaders
    this.chunked = this.hasBody && !contentLength
    stream.on("error", ignore)
    stream.once("close", () => this.closed())
    this.start()
  }

  private start(): void {
    if (this.method === "CONNECT") {
      this.failed(null, failure(405, "METHOD_NOT_ALLOWED", "client", "CONNECT is not proxied here"))
      return
    }
    if (this.authority.length === 0) {
      this.failed(null, badRequest(400, "no :authority or Host"))
      return
    }
    const authority = parseAuthority(this.authority)
    if (typeof authority === "string") {
      this.failed(null, badRequest(400, authority))
      return
    }
    const direct = this.rt.settings.directResponse
    if (direct !== undefined) {
      this.headSent = this.responded = true
      h2Direct(this.stream, direct, this.method === "HEAD")
      return
    }
    const routes = this.rt.routes
    const entry = routes.cached(authority.hostname)
    if (entry !== undefined) {
      this.routed(entry, true)
      return
    }
    routes.resolve(authority.hostname, this.info(), (e, f, hit) => {
      if (this.stream.destroyed) return
      if (e === undefined) this.failed(null, f!)
      else this.routed(e, hit)
    })
  }

  private info(): ConnectionInfo {
    const s = this.stream.session?.socket as (net.Socket & { servername?: string | false }) | undefined
    return {
      protocol: "http",
      remoteAddress: s === undefined ? "" : clientAddress(s),
      remotePort: s === undefined ? 0 : clientPort(s),
      sni: typeof s?.servername === "string" ? s.servername : undefined
    }
  }

  private routed(entry: RouteEntry, cacheHit: boolean): void {
    const limited = this.rt.hold(this, entry)
    if (limited !== undefined) {
      this.failed(null, limited)
      return
    }
    const s = this.rt.settings
    const socket = this.stream.session?.socket
    const ip = socket === undefined ? "" : clientAddress(socket)
    const f: Forwarding = {
      clientIp: ip,
      proto: s.secure ? "https" : "http",
      trusted: s.trusts(ip),
      host: s.preserveHost ? this.authority : `${entry.route.endpoint.host}:${entry.route.endpoint.port}`,
      originalHost: this.authority,
      close: !s.upstreamKeepAlive
    }
    const protocol = h2ProtocolOf(entry.route.metadata)
    if (protocol !== undefined) {
      this.overH2(entry, f, protocol, cacheHit)
      return
    }
    const text = upstreamHeadFromH2(this.method, this.path, this.fields, f, this.chunked)
    const ex = new Exchange(
      this,
      this,
      this.method,
      entry.pool,
      entry.route.resourceId,
      text,
      mayRetry(this.method, this.hasBody, false),
      false,
      this.hasBody
    )
    ex.cacheHit = cacheHit
    this.ex = ex
    this.exchange = ex
    this.rt.send(entry, ex)
  }

  /** An HTTP/2 backend: this stream becomes a stream of the backend's session. */
  private overH2(entry: RouteEntry, f: Forwarding, protocol: H2Protocol, cacheHit: boolean): void {
    const s = this.rt.settings
    const started = performance.now()
    this.rt.metrics.handshake(started - this.started)
    forwardStream(this.rt.h2Sessions.get(entry.pool, protocol), {
      client: this.stream,
      headers: h2UpstreamHeaders(this.method, this.path, protocol === "h2" ? "https" : "http", this.fields, f),
      hasBody: this.hasBody,
      headersTimeoutMs: s.upstreamHeadersMs,
      where: entry.pool.where,
      responseHeaders: (headers) => {
        this.headSent = true
        return h2PassResponseHeaders(
          headers,
          s.telemetry
            ? [
                ["x-proxy-cache", cacheHit ? "HIT" : "MISS"],
                ["x-proxy-upstream-time", String(Math.round(performance.now() - started))]
              ]
            : []
        )
      },
      failed: (failure) => this.failed(null, failure)
    })
  }

  connected(ex: Exchange): void {
    this.rt.metrics.handshake(ex.sentAt - this.started)
    if (!this.hasBody) {
      ex.requestDone = true
      return
    }
    const stream = this.stream
    stream.on("data", (chunk: Buffer) => {
      const up = ex.up
      if (up === null) return
      this.fromClient += chunk.length
      let more: boolean
      if (this.chunked) {
        up.socket.cork()
        up.socket.write(chunkHeader(chunk.length), "latin1")
        up.socket.write(chunk)
        more = up.socket.write(CRLF)
        up.socket.uncork()
      } else more = up.socket.write(chunk)
      if (!more) stream.pause()
    })
    stream.once("end", () => {
      const up = ex.up
      if (this.chunked && up !== null) up.socket.write(LAST)
      ex.requestDone = true
    })
  }

  upstreamDrained(_ex: Exchange): void {
    this.stream.resume()
  }

  informational(_ex: Exchange, head: ResponseHead): void {
    if (!this.stream.destroyed && !this.stream.headersSent) this.stream.additionalHeaders({ ":status": head.status })
  }

  responseHead(ex: Exchange, head: ResponseHead, framing: Framing): void {
    ex.decode = true
    const stream = this.stream
    if (stream.destroyed) return
    const extra: Array<[string, string]> = this.rt.settings.telemetry
      ? [
          ["x-proxy-cache", ex.cacheHit ? "HIT" : "MISS"],
          ["x-proxy-upstream-time", String(Math.round(ex.upstreamMs))],
          ["x-proxy-upstream-connection", ex.reused ? "reused" : "new"]
        ]
      : []
    let declaresTrailers = false
    for (let i = 1; i < head.fields.length; i += 3) if (head.fields[i] === "trailer") declaresTrailers = true
    const waitForTrailers = framing === Framing.Chunked && declaresTrailers
    this.headSent = true
    stream.respond(h2ResponseHeaders(head, extra), { endStream: framing === Framing.None, waitForTrailers })
    if (waitForTrailers) stream.once("wantTrailers", () => stream.sendTrailers(this.trailers ?? {}))
    stream.on("drain", () => ex.up?.resume())
    this.responded = framing === Framing.None
  }

  responseData(_ex: Exchange, buf: Buffer, start: number, end: number): boolean {
    const stream = this.stream
    if (stream.destroyed || this.responded) return true
    return stream.write(ownedChunk(buf, start, end))
  }

  flush(_ex: Exchange): void {}

  responseEnd(_ex: Exchange, trailers: string): void {
    this.ex = null
    if (this.responded || this.stream.destroyed) return
    this.responded = true
    if (trailers.length > 0) this.trailers = Object.fromEntries(parseTrailerText(trailers))
    this.stream.end()
  }

  upgrade(_ex: Exchange, _head: ResponseHead, socket: net.Socket): void {
    // Never asked for: HTTP/2 requests are sent without Upgrade.
    socket.destroy()
    this.stream.close(NGHTTP2_INTERNAL_ERROR)
  }

  failed(ex: Exchange | null, f: Failure): void {
    if (ex !== null && this.rt.wakes(ex, f)) return
    if (ex !== null && this.ex === ex) this.ex = null
    const sent = this.rt.refused(forResource(f, ex?.resourceId), this.info().remoteAddress, this.method, this.path)
    const stream = this.stream
    if (stream.destroyed) return
    if (this.headSent) {
      stream.close(NGHTTP2_INTERNAL_ERROR)
      return
    }
    this.headSent = true
    this.responded = true
    const body = failureBody(sent)
    const headers: http2.OutgoingHttpHeaders = {
      ":status": f.status,
      "content-type": "application/json",
      "content-length": Buffer.byteLength(body),
      "cache-control": "no-store"
    }
    if (f.retryAfter !== undefined) headers["retry-after"] = String(Math.max(0, Math.ceil(f.retryAfter)))
    stream.respond(headers, { endStream: this.method === "HEAD" })
    if (this.method !== "HEAD") stream.end(body)
  }

  private closed(): void {
    const ex = this.ex
    if (ex !== null) {
      this.ex = null
      ex.abort()
    }
    this.rt.release(this, this.fromClient, this.exchange?.bytesFromBackend ?? 0)
  }
}

/** Serves HTTP/2 streams on `server` (sockets are handed to it with `emit("connection", socket)`). */
export const serveHttp2 = (server: http2.Http2Server, rt: HttpRuntime): void => {
  const sessions = new Set<http2.ServerHttp2Session>()
  server.on("session", (session) => {
    sessions.add(session)
    session.on("error", ignore)
    session.once("close", () => sessions.delete(session))
    if (rt.draining) session.close()
  })
  server.on("stream", (stream, headers) => {
    new H2Request(stream, headers, rt)
  })
  // Graceful: GOAWAY, streams in flight finish; destroyAll ends what is left through the sockets.
  rt.onDrain.add(() => {
    for (const s of sessions) s.close()
  })
}
