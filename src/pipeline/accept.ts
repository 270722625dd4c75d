// accept phase, shared by every listener (the byte listeners and HTTP): bind the port (SO_REUSEPORT in cluster
// workers), refuse a PROXY protocol header from an address not trusted to send one, and read that header so the real
// client's address replaces the load balancer's.

import cluster from "node:cluster"
import type * as net from "node:net"
import * as Effect from "effect/Effect"
import { decodeProxyHeader } from "../codec/proxy/ProxyHeader.ts"
import { type ProxyError, proxyError } from "../domain/ProxyError.ts"
import type { ConnectionInfo } from "../domain/Route.ts"
import { type CidrList, cidrListContains, parseCidrList } from "../domain/SpecialRanges.ts"
import { readFrameNow } from "../listeners/readFrame.ts"

/**
 * In a cluster worker each process binds the port itself with SO_REUSEPORT and the kernel spreads connections: no
 * primary accepting and handing sockets over IPC (node:cluster's default costs ≈ 0.05 CPU s per 1k connections in
 * the primary, and balances unevenly). The primary fixes port 0 to one real port for all workers beforehand.
 */
const reusePort = cluster.isWorker

/** Binds `server`; a failed bind is the start's error (the caller's), with the address and the errno code. */
export const listen = (server: net.Server, host: string, port: number) =>
  Effect.callback<net.AddressInfo, ProxyError>((resume) => {
    const onError = (err: NodeJS.ErrnoException) =>
      resume(
        Effect.fail(proxyError("INTERNAL", "internal", `cannot listen on ${host}:${port}: ${err.code ?? err.message}`))
      )
    server.once("error", onError)
    server.listen({ host, port, backlog: 4096, reusePort, exclusive: reusePort }, () => {
      server.off("error", onError)
      resume(Effect.succeed(server.address() as net.AddressInfo))
    })
  })

/** The PROXY protocol settings of one listener, parsed once. Undefined: the listener reads no PROXY header. */
export interface ProxyProtocolIn {
  readonly trusted: CidrList
  /** The listener's name, for the refusal's words. */
  readonly listener: string
}

export const proxyProtocolIn = (
  config: { readonly proxyProtocol: boolean; readonly trustedProxies: ReadonlyArray<string> },
  listener: string
): ProxyProtocolIn | undefined => {
  if (!config.proxyProtocol) return undefined
  const trusted = parseCidrList(config.trustedProxies)
  // The config decoder already refused a bad list; an unparsable one here trusts nobody (fail closed).
  return { trusted: typeof trusted === "string" ? { entries: [] } : trusted, listener }
}

/** Undefined when `socket` may send a PROXY header; else the refusal (FORBIDDEN, the client's words). */
export const untrustedSender = (pp: ProxyProtocolIn, socket: net.Socket): ProxyError | undefined =>
  cidrListContains(pp.trusted, socket.remoteAddress ?? "")
    ? undefined
    : proxyError(
        "FORBIDDEN",
        "client",
        `${socket.remoteAddress} may not send a PROXY protocol header (not in listeners.${pp.listener}.trustedProxies)`
      )

/** The bound of a PROXY header: v2's 16-byte preamble plus its largest body we accept, with room to spare. */
const maxHeaderBytes = 2_100

/**
 * Reads the PROXY header at the start of `socket` (callback form; the caller bounds it with its handshake deadline).
 * `done` gets the connection's facts with the real client's address (a LOCAL command keeps the socket's own), and
 * the bytes read past the header are put back on the socket. Returns cancel.
 */
export const readProxyHeaderNow = (
  socket: net.Socket,
  info: ConnectionInfo,
  done: (info: ConnectionInfo | undefined, error: ProxyError | undefined) => void
): (() => void) =>
  readFrameNow(socket, decodeProxyHeader, maxHeaderBytes, (read, error) => {
    if (read === undefined) return done(undefined, error)
    if (read.rest.length > 0) socket.unshift(read.rest)
    const h = read.value
    done(
      h.command === "PROXY" && h.source !== undefined
        ? { ...info, remoteAddress: h.source.address, remotePort: h.source.port }
        : info,
      undefined
    )
  })

/** readProxyHeaderNow for a fiber. */
export const readProxyHeader = (socket: net.Socket, info: ConnectionInfo): Effect.Effect<ConnectionInfo, ProxyError> =>
  Effect.callback<ConnectionInfo, ProxyError>((resume) => {
    const cancel = readProxyHeaderNow(socket, info, (read, error) =>
      resume(error === undefined ? Effect.succeed(read!) : Effect.fail(error))
    )
    return Effect.sync(cancel)
  })
