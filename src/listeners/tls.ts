// TLS termination (client side of the proxy) and origination (towards a backend), shared by the protocol listeners.
// What the contexts allow (profile, client CA, resumption) is decided in tlsProfile.ts.

import * as fs from "node:fs"
import type * as net from "node:net"
import * as tls from "node:tls"
import * as Effect from "effect/Effect"
import type { SniCertificate, TlsFiles } from "../config/Config.ts"
import { type ProxyError, proxyError } from "../domain/ProxyError.ts"
import type { Route } from "../domain/Route.ts"
import { type ClientTlsOptions, clientConnectOptions, serverContextOptions, tlsVersionOf } from "./tlsProfile.ts"

export type { ClientTlsOptions }

export interface ServerTls {
  /** Replaced in place by a hot reload: the next handshake uses the new certificate. */
  context: tls.SecureContext
  /** mTLS: ask for a client certificate and refuse the handshake without a valid one. Replaced by a hot reload. */
  requireClientCert: boolean
  /** What `context` was built from: a tls.Server builds its own default context, and SNI ones, from these. */
  options: tls.SecureContextOptions
  /** The per-name certificates (`listeners.http.certificates`), read with the pair above. Replaced by a hot reload. */
  certificates: ReadonlyArray<LoadedCertificate>
  /**
   * Set by a listener that holds TLS state of its own (the HTTP listener's tls.Server and SNI certificates): called
   * with the reloaded TLS before it replaces the fields above; a throw refuses the reload.
   */
  onReload?: ((next: ServerTls) => void) | undefined
}

/** One SNI certificate as read from its files. */
export interface LoadedCertificate {
  readonly certPath: string
  readonly cert: Buffer
  readonly key: Buffer
  /** The names it serves as configured; undefined = the certificate's own DNS names. */
  readonly hosts: ReadonlyArray<string> | undefined
}

const readCertificate = (c: SniCertificate): LoadedCertificate => {
  try {
    return { certPath: c.cert, cert: fs.readFileSync(c.cert), key: fs.readFileSync(c.key), hosts: c.hosts }
  } catch (e) {
    throw new Error(`certificate ${c.cert}: ${(e as Error).message}`)
  }
}

/**
 * Reads the certificate files, at listener start and on every hot reload: the default pair, the client CA and the
 * per-name `certificates`, all through here. A bad file stops startup (or refuses the reload), not the first client.
 */
export const loadServerTls = (
  files: TlsFiles,
  key: string,
  certificates: ReadonlyArray<SniCertificate> = []
): Effect.Effect<ServerTls, ProxyError> =>
  Effect.try({
    try: () => {
      const options = serverContextOptions(
        {
          cert: fs.readFileSync(files.cert),
          key: fs.readFileSync(files.key),
          ca: files.ca ? fs.readFileSync(files.ca) : undefined
        },
        files,
        key
      )
      return {
        context: tls.createSecureContext(options),
        requireClientCert: files.requireClientCert,
        options,
        certificates: certificates.map(readCertificate)
      }
    },
    catch: (e) => proxyError("INTERNAL", "internal", `${key}: cannot load TLS files: ${(e as Error).message}`)
  })

/**
 * Hot reload: re-reads the files (renewed certificates, the per-name list as it now reads), and applies
 * `requireClientCert`, the CA and the profile to the next handshakes of a running listener. Open connections keep
 * the TLS they negotiated.
 */
export const reloadServerTls = (
  live: ServerTls,
  files: TlsFiles,
  key: string,
  certificates: ReadonlyArray<SniCertificate> = []
): Effect.Effect<void, ProxyError> =>
  Effect.gen(function* () {
    const next = yield* loadServerTls(files, key, certificates)
    yield* Effect.try({
      try: () => live.onReload?.(next),
      catch: (e) => proxyError("INTERNAL", "internal", `${key}: cannot reload TLS: ${(e as Error).message}`)
    })
    live.context = next.context
    live.requireClientCert = next.requireClientCert
    live.options = next.options
    live.certificates = next.certificates
  })

/** The client certificate's subject as "CN=…,O=…", for the Resolver. */
export const subjectOf = (socket: tls.TLSSocket): string | undefined => {
  const cert = socket.getPeerCertificate()
  if (cert === null || cert === undefined || cert.subject === undefined) return undefined
  return Object.entries(cert.subject)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join("+") : v}`)
    .join(",")
}

/** Node's TLS handle as far as verification goes; internal, so every part of it is treated as possibly missing. */
interface VerifyingHandle {
  verifyError?: unknown
}

/**
 * Why the peer's certificate chain is not verified, or null when it is. Fails closed: a handle that is gone, a
 * missing or throwing `verifyError`, or an answer that is neither null nor an error counts as a failure, so no change
 * in Node's internals can let an unverified certificate through.
 */
export const peerVerifyError = (secure: tls.TLSSocket): string | null => {
  const handle = (secure as unknown as { _handle?: VerifyingHandle | null })._handle
  const verifyError = handle?.verifyError
  if (typeof verifyError !== "function") return "CANNOT_VERIFY (no verifyError on the TLS handle)"
  let answer: unknown
  try {
    answer = verifyError.call(handle)
  } catch (e) {
    return `CANNOT_VERIFY (${(e as Error).message})`
  }
  if (answer === null) return null
  if (answer instanceof Error) return (answer as Error & { code?: string }).code ?? answer.message
  return "CANNOT_VERIFY (unexpected answer from verifyError)"
}

/**
 * mTLS check after the handshake. A TLSSocket built by hand (not by tls.Server) does not enforce rejectUnauthorized
 * nor set `authorized` (tls.Server fills it from the handle's verifyError()); checking here also lets the refusal
 * travel over the TLS session, where the client can read it.
 */
export const clientCertProblem = (secure: tls.TLSSocket, serverTls: ServerTls): ProxyError | undefined => {
  if (!serverTls.requireClientCert) return undefined
  // OpenSSL answers "verified" for a resumed TLS 1.3 session that never had a certificate: one must be there too.
  const why = secure.getPeerX509Certificate() === undefined ? "none was presented" : peerVerifyError(secure)
  if (why === null) return undefined
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
      // OpenSSL's text is for the log: the client knows its own side of the handshake.
      resume(
        Effect.fail(
          proxyError("FORBIDDEN", "client", `TLS handshake failed: ${err.message}`, {
            clientMessage: "TLS handshake failed"
          })
        )
      )
    }
    secure.once("error", onError)
    secure.once("secure", () => {
      secure.off("error", onError)
      secure.on("error", () => {})
      resume(Effect.succeed(secure))
    })
    return Effect.sync(() => secure.destroy())
  })

/** Client-side TLS over a connected backend socket (after the protocol's own "start TLS" exchange). */
export const connectTls = (socket: net.Socket, options: ClientTlsOptions): Effect.Effect<tls.TLSSocket, ProxyError> =>
  Effect.callback<tls.TLSSocket, ProxyError>((resume) => {
    const secure = tls.connect({ socket, ...clientConnectOptions(options) })
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
 * TLS towards a route's backend: `metadata.tls` (true, false, or { ca, rejectUnauthorized, servername, minVersion })
 * overrides the listener's `upstreamTls`.
 */
export const upstreamTlsFor = (
  route: Route,
  listenerDefault: ClientTlsOptions | undefined
): ClientTlsOptions | undefined => {
  const wanted = route.metadata.tls
  if (wanted === false) return undefined
  if (wanted === true) return listenerDefault ?? { rejectUnauthorized: true }
  if (typeof wanted === "object" && wanted !== null) {
    const w = wanted as { ca?: string; rejectUnauthorized?: boolean; servername?: string; minVersion?: unknown }
    return {
      ca: w.ca,
      rejectUnauthorized: w.rejectUnauthorized ?? true,
      servername: w.servername,
      minVersion: tlsVersionOf(w.minVersion) ?? listenerDefault?.minVersion
    }
  }
  return listenerDefault
}
