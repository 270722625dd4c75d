// TLS termination with a certificate per tenant domain: SNI picks the exact name, then the wildcard one label up,
// then the listener's default `tls` certificate.
import { X509Certificate } from "node:crypto"
import type * as tls from "node:tls"
import type { LoadedCertificate } from "../tls.ts"

export type SniCallback = (servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void) => void

/** Names a certificate serves: its DNS subject alternative names (lower-cased, wildcards kept). */
export const dnsNamesOf = (pem: Buffer): Array<string> => {
  const san = new X509Certificate(pem).subjectAltName ?? ""
  return san
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.startsWith("DNS:"))
    .map((s) => s.slice(4).toLowerCase())
}

/**
 * Builds the SNI lookup from the certificates tls.ts read (throws with the file name when one is unusable); names no
 * certificate covers get `fallback()`. `build` makes each certificate's context: the listener's, with this
 * certificate, so that the client CA (mTLS), the TLS profile and resumption are the same on every name.
 */
export const loadSni = (
  certificates: ReadonlyArray<LoadedCertificate>,
  build: (pem: { readonly cert: Buffer; readonly key: Buffer }) => tls.SecureContext,
  fallback: () => tls.SecureContext
): { callback: SniCallback; names: number } => {
  const exact = new Map<string, tls.SecureContext>()
  const wildcard = new Map<string, tls.SecureContext>()
  for (const c of certificates) {
    let context: tls.SecureContext
    try {
      context = build(c)
    } catch (e) {
      throw new Error(`certificate ${c.certPath}: ${(e as Error).message}`)
    }
    const hosts = c.hosts ?? dnsNamesOf(c.cert)
    if (hosts.length === 0) throw new Error(`certificate ${c.certPath} names no DNS host; list its hosts in the config`)
    for (const h of hosts) {
      const name = h.toLowerCase()
      // The first certificate listed for a name wins, as the config reads top to bottom.
      if (name.startsWith("*.")) {
        if (!wildcard.has(name.slice(1))) wildcard.set(name.slice(1), context)
      } else if (!exact.has(name)) exact.set(name, context)
    }
  }
  const callback: SniCallback = (servername, cb) => {
    const name = servername.toLowerCase().replace(/\.$/, "")
    const hit = exact.get(name)
    if (hit !== undefined) return cb(null, hit)
    const dot = name.indexOf(".")
    // A wildcard covers exactly one label (RFC 6125 §6.4.3).
    const wild = dot > 0 ? wildcard.get(name.slice(dot)) : undefined
    cb(null, wild ?? fallback())
  }
  return { callback, names: exact.size + wildcard.size }
}
