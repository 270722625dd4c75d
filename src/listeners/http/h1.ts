// One HTTP/1.x client connection: identify (request head, Host; h1request.ts) → resolve → connect (pooled backend) →
// relay (bodies both ways, byte for byte; a 101 becomes a tunnel, h1tunnel.ts) → next request on the same connection.
// Plain callbacks and one object per connection.
import type * as net from "node:net"
import { ChunkedReader, Framing, parseAuthority, type RequestHead, type ResponseHead } from "../../codec/http/index.ts"
import { formatEndpoint } from "../../domain/Endpoint.ts"
import type { ConnectionInfo } from "../../domain/Route.ts"
import { writeDirect, writeDirectJoined, writeDirectLatin1 } from "../../relay/directWrite.ts"
import { type ReadCallback, readCallbackOf } from "../../relay/userBuffer.ts"
import { clientAddress, clientPort } from "./clientAddress.ts"
import { h1DirectBytes } from "./direct.ts"
import { badRequest, type Failure, failure, failureResponse, forResource } from "./failure.ts"
import { CLOSED, H1RequestReader, HEAD, IDLE, onSharedRead, ROUTING, SENDING, TUNNEL } from "./h1request.ts"
import { tunnel } from "./h1tunnel.ts"
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
import type { ResourceHolder } from "./runtime.ts"
import { type ClientSide, Exchange, mayRetry, ownedChunk } from "./upstream.ts"

/** How long a refused client gets to read the answer before its socket is destroyed. */
const refuseGraceMs = 2_000

/** Bodies up to this size leave with their head in one write. */
const smallBody = 16 * 1024

export class H1Conn extends H1RequestReader implements ClientSide, ResourceHolder {
  private head: RequestHead | null = null
  private keepAlive = true
  private closeAfter = false
  private clientEnded = false
  private headSent = false
  /** A response head not written yet: it goes out with the first body bytes, in one write. */
  private pendingHead = ""
  private gone = false
  private bytesFromBackend = 0
  private readonly started = performance.now()
  private info: ConnectionInfo | undefined
  /** The resource this connection's requests go to, for the Resolver's connect/disconnect hooks. */
  private resource = ""
  private resourceEndpoint = ""
  private resourceSince = 0
  private resourceBytes = 0
  private resourceBackendBytes = 0
  // ResourceHolder: the request in flight's place under limits.perResource and in the per-resource metrics.
  held: RouteEntry | null = null
  heldFromClient = 0
  heldFromBackend = 0

  private peer(): string {
    return `${clientAddress(this.socket)}:${clientPort(this.socket)}`
  }

  private connectionInfo(): ConnectionInfo {
    if (this.info === undefined) {
      const s = this.socket as net.Socket & { servername?: string | false }
      this.info = {
        protocol: "http",
        remoteAddress: clientAddress(s),
        remotePort: clientPort(s),
        sni: typeof s.servername === "string" ? s.servername : undefined
      }
    }
    return this.info
  }

  protected request(head: RequestHead): void {
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
    const limited = this.rt.hold(this, entry)
    if (limited !== undefined) {
      this.refuse(limited, !this.bodyDone)
      return
    }
    if (this.rt.hooks !== undefined && resourceId !== this.resource) {
      this.switchResource(resourceId, formatEndpoint(entry.route.endpoint))
    }
    const upgrade = upgradeOffer(head)
    let text: string | Buffer
    if (this.rawHead !== null) text = this.rawHead
    else {
      const s = this.rt.settings
      const ip = clientAddress(this.socket)
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
      upgrade !== undefined,
      !this.bodyDone
    )
    ex.cacheHit = cacheHit
    this.ex = ex
    this.rt.send(entry, ex)
  }

  // ---- ClientSide: called by the backend connection (connected, upstreamDrained: h1request.ts)

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
      // One write for head and a small body, straight to the handle (a plain socket; TLS takes socket.write as one
      // latin1 string, which costs less than cork/uncork and a writev); false pauses the backend until `drain`.
      if (end - start <= smallBody) return writeDirectJoined(socket, head, buf, start, end)
      writeDirectLatin1(socket, head)
    }
    return writeDirect(socket, ownedChunk(buf, start, end))
  }

  flush(_ex: Exchange): void {
    this.writeHead()
  }

  /** Writes a head still waiting for body bytes (a bodiless answer, or one whose body comes in a later read). */
  private writeHead(): void {
    if (this.pendingHead.length > 0) {
      const head = this.pendingHead
      this.pendingHead = ""
      if (!this.socket.destroyed) writeDirectLatin1(this.socket, head)
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
    this.rt.release(this, this.socket.bytesRead, this.bytesFromBackend)
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
    const held = this.buf === null ? undefined : this.buf.subarray(this.bufStart, this.bufEnd)
    this.buf = null
    const started = tunnel(this.socket, backend, head, rest, held, this.rt.settings, (tunnelled) => {
      const bytes = ex.bytesFromBackend + tunnelled
      this.bytesFromBackend += bytes
      this.resourceBackendBytes += bytes
      this.closed()
    })
    if (!started) this.closed()
  }

  failed(ex: Exchange, failed: Failure): void {
    if (this.rt.wakes(ex, failed)) return
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
  protected refuse(f: Failure, close: boolean): void {
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
    this.rt.release(this, this.socket.bytesRead, this.bytesFromBackend)
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
}

const hostHeaderOf = (entry: RouteEntry): string => {
  const e = entry.route.endpoint
  return e.host.includes(":") ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`
}
