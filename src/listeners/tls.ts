// TLS termination (client side of the proxy) and origination (towards a backend), shared by the protocol listeners.

import * as fs from "node:fs"
import type * as net from "node:net"
import * as tls from "node:tls"
import * as Effect from "effect/Effect"
import type { TlsFiles } from "../config/Config.ts"
import { type ProxyError, proxyError } from "../domain/ProxyError.ts"
import type { Route } from "../domain/Route.ts"

export interface ServerTls {
  /** Replaced in place by a hot reload: the next handshake uses the new certificate. */
  context: tls.SecureContext
  /** mTLS: ask for a client certificate and refuse the handshake without a valid one. */
  requireClientCert: boolean
}

/** Reads the certificate files once, at listener start: a bad file stops startup, not the first client. */
export const loadServerTls = (files: TlsFiles, key: string): Effect.Effect<ServerTls, ProxyError> =>
  Effect.try({
    try: () => ({
      context: tls.createSecureContext({
        cert: fs.readFileSync(files.cert),
        key: fs.readFileSync(files.key),
        ...(files.ca ? { ca: fs.readFileSync(files.ca) } : {})
      }),
      requireClientCert: files.requireClientCert
    }),
    catch: (e) => proxyError("INTERNAL", "internal", `${key}: cannot load TLS files: ${(e as Error).message}`)
  })

/** The client certificate's subject as "CN=…,O=…", for the Resolver. */
export const subjectOf = (socket: tls.TLSSocket): string | undefined => {
  const cert = socket.getPeerCertificate()
  if (cert === null || cert === undefined || cert.subject === undefined) return undefined
  return Object.entries(cert.subject)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join("+") : v}`)
    .join(",")
}

/**
 * mTLS check after the handshake. A TLSSocket built by hand (not by tls.Server) does not enforce rejectUnauthorized,
 * and checking here lets the refusal travel over the TLS session, where the client can read it.
 */
export const clientCertProblem = (secure: tls.TLSSocket, serverTls: ServerTls): ProxyError | undefined => {
  if (!serverTls.requireClientCert) return undefined
  // tls.Server fills `authorized` from the handle's verifyError(); a hand-made server TLSSocket must ask the same.
  const handle = (secure as unknown as { _handle?: { verifyError(): (Error & { code?: string }) | null } })._handle
  const error = handle?.verifyError() ?? null
  const cert = secure.getPeerCertificate()
  const presented = cert !== null && cert !== undefined && Object.keys(cert).length > 0
  if (presented && error === null) return undefined
  const why = error ? (error.code ?? error.message) : "none was presented"
  return proxyError("FORBIDDEN", "client", `a valid client certificate is required: ${why}`)
}

/** Server-side TLS handshake over an accepted socket. Resolves once the handshake is done (see clientCertProblem). */
export const acceptTls = (
  socket: net.Socket,
  serverTls: ServerTls,
  alpn?: ReadonlyArray<string>
): Effect.Effect<tls.TLSSocket, ProxyError> =>
  Effect.callback<tls.TLSSocket, ProxyError>((resume) => {
    const secure = new tls.TLSSocket(socket, {
      isServer: true,
      secureContext: serverTls.context,
      requestCert: serverTls.requireClientCert,
      rejectUnauthorized: serverTls.requireClientCert,
      ...(alpn ? { ALPNProtocols: [...alpn] } : {})
    })
    const onError = (err: Error) => {
      secure.destroy()
      resume(Effect.fail(proxyError("FORBIDDEN", "client", `TLS handshake failed: ${err.message}`)))
    }
    secure.once("error", onError)
    secure.once("secure", () => {
      secure.off("error", onError)
      secure.on("error", () => {})
      resume(Effect.succeed(secure))
    })
    return Effect.sync(() => secure.destroy())
  })

export interface ClientTlsOptions {
  readonly servername?: string | undefined
  readonly ca?: string | Buffer | undefined
  readonly rejectUnauthorized: boolean
}

/** Client-side TLS over a connected backend socket (after the protocol's own "start TLS" exchange). */
export const connectTls = (socket: net.Socket, options: ClientTlsOptions): Effect.Effect<tls.TLSSocket, ProxyError> =>
  Effect.callback<tls.TLSSocket, ProxyError>((resume) => {
    const secure = tls.connect({
      socket,
      ...(options.servername && !/^[\d.:]+$/.test(options.servername) ? { servername: options.servername } : {}),
      ...(options.ca ? { ca: options.ca } : {}),
      rejectUnauthorized: options.rejectUnauthorized
    })
    const onError = (err: Error) => {
      secure.destroy()
      resume(Effect.fail(proxyError("CONNECT_FAILED", "backend", `TLS to backend failed: ${err.message}`)))
    }
    secure.once("error", onError)
    secure.once("secureConnect", () => {
      secure.off("error", onError)
      secure.on("error", () => {})
      resume(Effect.succeed(secure))
    })
    return Effect.sync(() => secure.destroy())
  })

/**
 * TLS towards a route's backend: `metadata.tls` (true, false, or { ca, rejectUnauthorized, servername }) overrides the
 * listener's `upstreamTls`.
 */
export const upstreamTlsFor = (
  route: Route,
  listenerDefault: ClientTlsOptions | undefined
): ClientTlsOptions | undefined => {
  const wanted = route.metadata.tls
  if (wanted === false) return undefined
  if (wanted === true) return listenerDefault ?? { rejectUnauthorized: true }
  if (typeof wanted === "object" && wanted !== null) {
    const w = wanted as { ca?: string; rejectUnauthorized?: boolean; servername?: string }
    return { ca: w.ca, rejectUnauthorized: w.rejectUnauthorized ?? true, servername: w.servername }
  }
  return listenerDefault
}
