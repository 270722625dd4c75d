// The one place where TLS options are decided, for every listener that terminates TLS (postgres, mysql, mongodb,
// smtp, http and its SNI certificates) and every hop the proxy opens to a backend. See `defaults.tls` for the profile.
import * as crypto from "node:crypto"
import type * as tls from "node:tls"
import { defaults, type TlsFiles, type TlsVersion, tlsVersions } from "../config/Config.ts"

/** The PEM material of one `tls` section, read from its files. */
export interface ServerPem {
  readonly cert: Buffer
  readonly key: Buffer
  readonly ca?: Buffer | undefined
}

/**
 * Options of a server secure context. Every context a listener serves with comes from here, SNI ones included, so
 * that the profile, the client CA and resumption behave the same whichever certificate the client gets.
 */
export const serverContextOptions = (
  pem: ServerPem,
  files: TlsFiles,
  /** Names what sessions belong to (e.g. "listeners.postgres"); stable across workers and reloads. */
  owner: string
): tls.SecureContextOptions => ({
  cert: pem.cert,
  key: pem.key,
  // Always set when a client certificate may be asked for: without `ca`, OpenSSL checks client certificates against
  // Node's default root store (every public CA, plus NODE_EXTRA_CA_CERTS), not against the operator's CA.
  ...(pem.ca ? { ca: pem.ca } : {}),
  ciphers: files.ciphers ?? defaults.tls.ciphers,
  minVersion: files.minVersion ?? defaults.tls.minVersion,
  honorCipherOrder: true,
  // A client may not renegotiate (TLS 1.2; TLS 1.3 has no renegotiation): each one costs the server a handshake, a
  // denial-of-service lever (HAProxy and nginx refuse it too). Node would allow 3 per 10 minutes.
  secureOptions: crypto.constants.SSL_OP_NO_RENEGOTIATION,
  // OpenSSL refuses to resume a session whose handshake verified a client certificate unless the context names its
  // sessions (alert 80, "session id context uninitialized"); tls.Server sets one, a bare secure context does not.
  sessionIdContext: crypto.createHash("sha256").update(owner).digest("hex").slice(0, 32)
})

export interface ClientTlsOptions {
  readonly servername?: string | undefined
  readonly ca?: string | Buffer | undefined
  readonly rejectUnauthorized: boolean
  /** Oldest version accepted from the backend; default `defaults.tls.minVersion`. */
  readonly minVersion?: TlsVersion | undefined
}

/** tls.connect options towards a backend. An IP literal is never sent as SNI (RFC 6066 §3). */
export const clientConnectOptions = (options: ClientTlsOptions): tls.ConnectionOptions => ({
  ...(options.servername && !/^[\d.:]+$/.test(options.servername) ? { servername: options.servername } : {}),
  ...(options.ca ? { ca: options.ca } : {}),
  rejectUnauthorized: options.rejectUnauthorized,
  minVersion: options.minVersion ?? defaults.tls.minVersion
})

const clientTlsKeys = new WeakMap<ClientTlsOptions, string>()

/**
 * TLS settings towards a backend named `host`, as part of a cache key (an answer read over an unverified connection
 * never serves a route that verifies its backend): short (a digest, the CA can be kilobytes), computed once per
 * settings object. "plain" without TLS.
 */
export const clientTlsKey = (host: string, tls: ClientTlsOptions | undefined): string => {
  if (tls === undefined) return "plain"
  let digest = clientTlsKeys.get(tls)
  if (digest === undefined) {
    const ca = tls.ca === undefined ? null : tls.ca.toString()
    digest = crypto
      .createHash("sha256")
      .update(JSON.stringify([tls.rejectUnauthorized, tls.minVersion, ca]))
      .digest("base64")
    clientTlsKeys.set(tls, digest)
  }
  // The name the certificate is checked against: the route's host unless the settings name another.
  return `${tls.servername ?? host}\0${digest}`
}

/** A route's `metadata.tls.minVersion`: a known version, or the default (a resolver's typo must not weaken TLS). */
export const tlsVersionOf = (v: unknown): TlsVersion | undefined =>
  tlsVersions.includes(v as TlsVersion) ? (v as TlsVersion) : undefined
