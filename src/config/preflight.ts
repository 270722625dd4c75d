// What `serve` refuses that decoding cannot see: the files it reads at start (TLS certificates, keys and CAs, a
// first-bytes extractor module), a config that starts no listener at all, and a mysql listener's `auth.route` that
// the static routes lack (decoding reads one listener at a time). check-config, serve and a hot reload run
// it, so what serve would refuse, check-config refuses first, naming the key.
import { X509Certificate } from "node:crypto"
import * as fs from "node:fs"
import * as tls from "node:tls"
import { dnsNamesOf } from "../listeners/http/sni.ts"
import { lookupStatic } from "../services/Resolver.ts"
import type { Config, TlsFiles } from "./Config.ts"
import { ConfigError } from "./fields.ts"

const read = (file: string, key: string): Buffer => {
  try {
    return fs.readFileSync(file)
  } catch (e) {
    throw new ConfigError(key, `cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`)
  }
}

const opensslReason = (e: unknown): string => (e as Error).message.replace(/^error:[0-9A-F]+:/, "")

/** The file as Node's TLS reads it: PEM, a certificate (chain) first. */
const certificate = (file: string, key: string): Buffer => {
  const pem = read(file, key)
  try {
    tls.createSecureContext({ cert: pem })
  } catch (e) {
    throw new ConfigError(key, `${file} is not a PEM certificate (${opensslReason(e)})`)
  }
  return pem
}

const privateKey = (file: string, key: string): Buffer => {
  const pem = read(file, key)
  // "BEGIN ENCRYPTED PRIVATE KEY" (PKCS#8) or "Proc-Type: 4,ENCRYPTED" (traditional): OpenSSL's own error for these
  // varies with how it was asked for a passphrase.
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(pem.toString("latin1"))) {
    throw new ConfigError(key, `${file} is encrypted, and polyproxy takes no passphrase: store the key unencrypted`)
  }
  try {
    tls.createSecureContext({ key: pem })
  } catch (e) {
    throw new ConfigError(key, `${file} is not a PEM private key (${opensslReason(e)})`)
  }
  return pem
}

/** A certificate and the key that must belong to it; OpenSSL refuses the pair otherwise, and so would serve. */
const pair = (certFile: string, keyFile: string, key: string): Buffer => {
  const cert = certificate(certFile, `${key}.cert`)
  const pem = privateKey(keyFile, `${key}.key`)
  try {
    tls.createSecureContext({ cert, key: pem })
  } catch (e) {
    throw new ConfigError(`${key}.key`, `${keyFile} does not match the certificate ${certFile} (${opensslReason(e)})`)
  }
  return cert
}

/**
 * A CA bundle: one or more PEM certificates. Node accepts anything here without a word and then trusts nothing, so
 * every client certificate or backend would be refused at its handshake instead.
 */
const caBundle = (file: string, key: string): void => {
  const text = read(file, key).toString("latin1")
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []
  if (blocks.length === 0) throw new ConfigError(key, `${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`)
  blocks.forEach((block, i) => {
    try {
      new X509Certificate(block)
    } catch (e) {
      throw new ConfigError(key, `certificate ${i + 1} of ${file} cannot be read (${opensslReason(e)})`)
    }
  })
}

const tlsSection = (files: TlsFiles, key: string): void => {
  pair(files.cert, files.key, key)
  if (files.ca !== undefined) caBundle(files.ca, `${key}.ca`)
}

/** Throws a ConfigError naming the key of the first thing serve would refuse. */
export const preflight = (config: Config): void => {
  const listeners = Object.entries(config.listeners)
  if (listeners.length === 0) {
    throw new ConfigError(
      "listeners",
      "none configured: serve would start only the admin endpoint; add one, e.g. listeners: { tcp: { port: 7000, route: appdb } }"
    )
  }
  if (config.tls !== undefined) tlsSection(config.tls, "tls")
  const routes = new Map(Object.entries(config.routes))
  for (const [name, l] of listeners) {
    const key = `listeners.${name}`
    if (l.tls !== undefined) tlsSection(l.tls, `${key}.tls`)
    if (l.upstreamTls?.ca !== undefined) caBundle(l.upstreamTls.ca, `${key}.upstreamTls.ca`)
    l.http?.certificates.forEach((c, i) => {
      const k = `${key}.certificates.${i}`
      const cert = pair(c.cert, c.key, k)
      // The HTTP listener serves a certificate for the names listed, or else for the DNS names in it.
      if (c.hosts === undefined && dnsNamesOf(cert).length === 0) {
        throw new ConfigError(`${k}.hosts`, `${c.cert} names no DNS host (subjectAltName): list the names it serves`)
      }
    })
    if (typeof l.route === "object") {
      const module = l.route.firstBytes.slice(0, l.route.firstBytes.lastIndexOf("#"))
      read(module, `${key}.route.firstBytes`)
    }
    // Every login through the listener starts with this lookup: a route the static table lacks refuses them all.
    if (l.auth !== undefined && config.resolver.type === "static" && lookupStatic(routes, l.auth.route) === undefined) {
      throw new ConfigError(
        `${key}.auth.route`,
        `no route ${JSON.stringify(l.auth.route)} in routes: it names the backend the proxy reads users' password hashes from`
      )
    }
  }
}
