// accept, per client socket of the HTTP listener: the PROXY header of a trusted load balancer (before the first HTTP
// byte, and before the ClientHello on a TLS port), the TLS handshake with the listener's certificates (SNI included),
// admission, then HTTP/1.x (H1Conn) or HTTP/2 (the node:http2 server).
import * as net from "node:net"
import * as tls from "node:tls"
import type { ProxyError } from "../../domain/ProxyError.ts"
import { proxyError, withProps } from "../../domain/ProxyError.ts"
import type { ConnectionInfo } from "../../domain/Route.ts"
import { type ProxyProtocolIn, readProxyHeaderNow, untrustedSender } from "../../pipeline/accept.ts"
import type { LogShape } from "../../services/Log.ts"
import { logRefusal, newRef } from "../refusal.ts"
import type { LoadedCertificate, ServerTls } from "../tls.ts"
import { clientAddress, clientPort, copyClientAddress, setClientAddress } from "./clientAddress.ts"
import { failure, failureResponse } from "./failure.ts"
import { H1Conn } from "./h1.ts"
import type { HttpRuntime } from "./runtime.ts"
import { loadSni } from "./sni.ts"

/** How long a refused client gets to read the answer before its socket is destroyed. */
const refuseGraceMs = 2_000

function ignore() {}

/** Over a limit: one JSON 503 on HTTP/1.x, then the socket goes. */
const refuseSocket = (rt: HttpRuntime, socket: net.Socket, why: string, h2Socket: boolean) => {
  const f = rt.refused(
    failure(503, "UNAVAILABLE", "internal", why, { retryAfter: 1, clientMessage: why }),
    `${clientAddress(socket)}:${clientPort(socket)}`,
    "",
    ""
  )
  socket.on("error", ignore)
  socket.once("close", () => rt.metrics.closed(socket.bytesRead, 0))
  if (h2Socket) socket.destroy()
  else socket.end(failureResponse(f, true, false))
  socket.setTimeout(refuseGraceMs, () => socket.destroy())
}

/** Admission, then HTTP/1.x or (ALPN h2) the HTTP/2 server. */
const serve = (rt: HttpRuntime, socket: net.Socket, isH2: boolean): void => {
  const why = rt.admit(socket)
  if (why !== undefined) {
    refuseSocket(rt, socket, why, isH2)
    return
  }
  if (!isH2) {
    new H1Conn(socket, rt)
    return
  }
  socket.on("error", ignore)
  socket.once("close", () => rt.forget(socket, 0))
  rt.h2!.emit("connection", socket)
}

/**
 * Closes a connection refused before HTTP began (its PROXY header), counted and logged as the byte listeners do. No
 * answer: what follows the header speaks HTTP or TLS, and nginx (`listen … proxy_protocol`) and HAProxy
 * (`accept-proxy`) close such a connection without a word too.
 */
const drop = (rt: HttpRuntime, socket: net.Socket, error: ProxyError): void => {
  rt.metrics.accepted()
  rt.metrics.refused(error.reason.toLowerCase())
  logRefusal(rt.log, "connection refused", withProps(error, { ref: newRef() }), {
    listener: rt.settings.name,
    client: `${socket.remoteAddress}:${socket.remotePort}`
  })
  rt.metrics.closed(socket.bytesRead, 0)
  if (socket.destroyed) return
  socket.end()
  // Read and discard what the client still sends, so that closing does not reset the connection.
  socket.resume()
  socket.setTimeout(refuseGraceMs, () => socket.destroy())
}

/**
 * The PROXY header of a trusted load balancer, read first and within the head deadline (`timeouts.handshake`); then
 * `next` gets the socket, paused with the bytes after the header put back, the real client's address on it. A sender
 * not in `trustedProxies`, a missing or broken header, or none in time: the connection is closed (see drop).
 */
const proxyHeaderFirst = (pp: ProxyProtocolIn, rt: HttpRuntime, next: (socket: net.Socket) => void) => {
  const pending = new Set<net.Socket>()
  const s = rt.settings
  const deadlineMs = s.headMs > 0 ? s.headMs : s.keepAliveMs
  const accept = (socket: net.Socket): void => {
    socket.on("error", ignore)
    const untrusted = untrustedSender(pp, socket)
    if (untrusted !== undefined) {
      drop(rt, socket, untrusted)
      return
    }
    pending.add(socket)
    const finish = (info: ConnectionInfo | undefined, error: ProxyError | undefined) => {
      if (!pending.delete(socket)) return
      clearTimeout(timer)
      if (info === undefined) {
        drop(rt, socket, error!)
        return
      }
      setClientAddress(socket, info.remoteAddress, info.remotePort)
      next(socket)
    }
    const accepted: ConnectionInfo = {
      protocol: "http",
      remoteAddress: socket.remoteAddress ?? "",
      remotePort: socket.remotePort ?? 0
    }
    const cancel = readProxyHeaderNow(socket, accepted, finish)
    const timer = setTimeout(() => {
      cancel()
      finish(undefined, proxyError("HANDSHAKE_TIMEOUT", "client", `no PROXY protocol header within ${deadlineMs} ms`))
    }, deadlineMs)
    timer.unref()
  }
  const destroyAll = () => {
    const all = [...pending]
    pending.clear()
    for (const socket of all) socket.destroy()
  }
  return { accept, destroyAll }
}

/** The listening server of an HTTP listener, and how to end the sockets it has not handed to HTTP yet. */
export interface HttpServer {
  readonly server: net.Server
  readonly destroyPending: () => void
}

/** A plain-text (h2c by prior knowledge, see H1Conn) HTTP server. */
export const plainServer = (rt: HttpRuntime, pp: ProxyProtocolIn | undefined): HttpServer => {
  if (pp === undefined) {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => serve(rt, socket, false))
    return { server, destroyPending: () => {} }
  }
  const first = proxyHeaderFirst(pp, rt, (socket) => {
    serve(rt, socket, false)
    // Paused by the header's read: H1Conn reads from here on.
    if (!socket.destroyed) socket.resume()
  })
  return {
    server: net.createServer({ allowHalfOpen: true, noDelay: true }, first.accept),
    destroyPending: first.destroyAll
  }
}

/** The SNI certificates of `serverTls`: each gets the listener's options (client CA, profile) with its own pair. */
const sniFor = (
  certificates: ReadonlyArray<LoadedCertificate>,
  serverTls: ServerTls,
  options: tls.SecureContextOptions
) =>
  loadSni(
    certificates,
    (pem) => tls.createSecureContext({ ...options, cert: pem.cert, key: pem.key }),
    // Read on every handshake: a hot reload swaps renewed files in there.
    () => serverTls.context
  )

/**
 * An HTTPS server (h2 through ALPN). Its certificates, the per-name ones included, come from `serverTls` (tls.ts
 * loads them) and a hot reload replaces them all for the next handshakes; open connections keep theirs. Throws when a
 * per-name certificate is unusable.
 */
export const tlsServer = (
  rt: HttpRuntime,
  serverTls: ServerTls,
  pp: ProxyProtocolIn | undefined,
  log: LogShape
): HttpServer => {
  let sni = sniFor(serverTls.certificates, serverTls, serverTls.options)
  const secure = tls.createServer(
    {
      ...serverTls.options,
      requestCert: serverTls.requireClientCert,
      rejectUnauthorized: serverTls.requireClientCert,
      ALPNProtocols: ["h2", "http/1.1"],
      allowHalfOpen: true,
      ...(rt.settings.headMs > 0 ? { handshakeTimeout: rt.settings.headMs } : {}),
      SNICallback: (servername, cb) => sni.callback(servername, cb)
    },
    (socket) => {
      // tls.Server already refused unverified certificates; this holds should its checks ever change (fail closed).
      if (serverTls.requireClientCert && socket.authorized !== true) {
        rt.metrics.refused("forbidden")
        return socket.destroy()
      }
      // Behind PROXY the client's address is on the socket tls.Server wrapped; without it, fail closed.
      if (pp !== undefined && !copyClientAddress(parentOf(socket), socket)) return socket.destroy()
      serve(rt, socket, socket.alpnProtocol === "h2")
    }
  )
  secure.on("tlsClientError", (err, socket) => {
    rt.metrics.refused("forbidden")
    log.debug("tls handshake failed", {
      listener: rt.settings.name,
      client: `${socket.remoteAddress}:${socket.remotePort}`,
      message: err.message
    })
  })
  serverTls.onReload = (next) => {
    // Everything that can fail first (the SNI certificates), then the swap.
    const nextSni = sniFor(next.certificates, serverTls, next.options)
    secure.setSecureContext(next.options)
    // tls.Server hands these two to each new TLSSocket (and setSecureContext leaves them alone).
    Object.assign(secure, { requestCert: next.requireClientCert, rejectUnauthorized: next.requireClientCert })
    sni = nextSni
  }
  if (pp === undefined) return { server: secure, destroyPending: () => {} }
  // The header comes before the ClientHello: a plain server reads it, then hands the socket to tls.Server.
  const first = proxyHeaderFirst(pp, rt, (socket) => secure.emit("connection", socket))
  return {
    server: net.createServer({ allowHalfOpen: true, noDelay: true }, first.accept),
    destroyPending: first.destroyAll
  }
}

/** The socket tls.Server wrapped (it keeps it as `_parent`): where the PROXY header's client address is. */
const parentOf = (secure: tls.TLSSocket): net.Socket | undefined =>
  (secure as unknown as { _parent?: net.Socket })._parent
