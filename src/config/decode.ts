// Turns the parsed YAML/JSON (plus environment overrides) into a Config, or a message naming the bad key and why.

import { isIP } from "node:net"
import * as path from "node:path"
import * as tls from "node:tls"
import { isLoopbackHost, validAllowedHost } from "../admin/hosts.ts"
import { parseEndpoint } from "../domain/Endpoint.ts"
import { defaultProtocolLabel, isProtocolLabel, type ProtocolLabel, protocolLabels } from "../domain/Protocols.ts"
import { parseCidrList } from "../domain/SpecialRanges.ts"
import {
  type AdminConfig,
  type Config,
  defaults,
  type HttpListenerOptions,
  type ListenerConfig,
  type ListenerName,
  type LogLevel,
  listenerNames,
  type ResolverConfig,
  type RouteConfig,
  resolverTypes,
  routeByOptions,
  type TcpRoute,
  type TlsFiles,
  type TlsVersion,
  tlsVersions,
  type UpstreamTls
} from "./Config.ts"

export class ConfigError extends Error {
  readonly key: string
  constructor(key: string, why: string) {
    super(key === "" ? why : `${key}: ${why}`)
    this.key = key
    this.name = "ConfigError"
  }
}

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v)
const show = (v: unknown) => (typeof v === "string" ? JSON.stringify(v) : String(JSON.stringify(v) ?? v))

const object = (v: unknown, key: string, known: ReadonlyArray<string>): Obj => {
  if (!isObj(v)) throw new ConfigError(key, `expected a mapping, got ${show(v)}`)
  for (const k of Object.keys(v)) {
    if (!known.includes(k))
      throw new ConfigError(key === "" ? k : `${key}.${k}`, `unknown key (known: ${known.join(", ")})`)
  }
  return v
}

const int = (v: unknown, key: string, min: number, max: number, fallback?: number): number => {
  if (v === undefined && fallback !== undefined) return fallback
  if (v === undefined) throw new ConfigError(key, `required: an integer from ${min} to ${max}`)
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new ConfigError(key, `expected an integer from ${min} to ${max}, got ${show(v)}`)
  }
  return v
}

const seconds = (v: unknown, key: string, fallback: number): number => {
  if (v === undefined) return fallback
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || v > 86_400) {
    throw new ConfigError(key, `expected a number of seconds from 0 to 86400, got ${show(v)}`)
  }
  return v
}

const fraction = (v: unknown, key: string, fallback: number): number => {
  if (v === undefined) return fallback
  if (typeof v !== "number" || !(v >= 0 && v <= 1))
    throw new ConfigError(key, `expected a number from 0 to 1, got ${show(v)}`)
  return v
}

const redisUrl = (v: unknown, key: string): string => {
  const text = str(v, key)
  if (!/^rediss?:\/\//.test(text)) throw new ConfigError(key, "expected a redis:// or rediss:// URL")
  return text
}

const nodeOptions = (v: unknown): ReadonlyArray<string> => {
  if (v === undefined) return defaults.nodeOptions
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string" && x.startsWith("--"))) {
    throw new ConfigError(
      "nodeOptions",
      `expected a list of node flags such as "--max-semi-space-size=1", got ${show(v)}`
    )
  }
  return v
}

const str = (v: unknown, key: string, fallback?: string): string => {
  if (v === undefined && fallback !== undefined) return fallback
  if (typeof v !== "string" || v.length === 0) throw new ConfigError(key, `expected a non-empty string, got ${show(v)}`)
  return v
}

const bool = (v: unknown, key: string, fallback: boolean): boolean => {
  if (v === undefined) return fallback
  if (typeof v !== "boolean") throw new ConfigError(key, `expected true or false, got ${show(v)}`)
  return v
}

const oneOf = <A extends string>(v: unknown, key: string, options: ReadonlyArray<A>, fallback: A): A => {
  if (v === undefined) return fallback
  if (typeof v !== "string" || !options.includes(v as A)) {
    throw new ConfigError(key, `expected one of ${options.join(", ")}, got ${show(v)}`)
  }
  return v as A
}

const host = (v: unknown, key: string, fallback: string): string => {
  const h = str(v, key, fallback)
  if (/\s/.test(h)) throw new ConfigError(key, `expected a host name or IP address, got ${show(v)}`)
  return h
}

const tlsVersion = (v: unknown, key: string): TlsVersion | undefined =>
  v === undefined ? undefined : oneOf(v, key, tlsVersions, defaults.tls.minVersion)

/** An OpenSSL cipher string, checked now so that a typo fails `check-config` rather than the listener's start. */
const cipherList = (v: unknown, key: string): string | undefined => {
  if (v === undefined) return undefined
  const text = str(v, key)
  try {
    tls.createSecureContext({ ciphers: text })
  } catch (e) {
    throw new ConfigError(key, `OpenSSL accepts none of these ciphers (${(e as Error).message}): ${show(text)}`)
  }
  return text
}

const tlsFiles = (v: unknown, key: string, baseDir: string): TlsFiles | undefined => {
  if (v === undefined || v === null || v === false) return undefined
  const o = object(v, key, ["cert", "key", "ca", "requireClientCert", "ciphers", "minVersion"])
  const file = (k: string) => path.resolve(baseDir, str(o[k], `${key}.${k}`))
  const requireClientCert = bool(o.requireClientCert, `${key}.requireClientCert`, false)
  if (requireClientCert && o.ca === undefined) {
    throw new ConfigError(`${key}.ca`, "required when requireClientCert is true: the CA that signs client certificates")
  }
  return {
    cert: file("cert"),
    key: file("key"),
    ca: o.ca === undefined ? undefined : file("ca"),
    requireClientCert,
    ciphers: cipherList(o.ciphers, `${key}.ciphers`),
    minVersion: tlsVersion(o.minVersion, `${key}.minVersion`)
  }
}

const cidrList = (v: unknown, key: string, fallback: ReadonlyArray<string>): ReadonlyArray<string> => {
  if (v === undefined) return fallback
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
    throw new ConfigError(key, `expected a list of CIDR ranges such as "10.0.0.0/8", got ${show(v)}`)
  }
  const parsed = parseCidrList(v)
  if (typeof parsed === "string") throw new ConfigError(key, parsed)
  return v
}

const upstreamTls = (v: unknown, key: string, baseDir: string): UpstreamTls | undefined => {
  if (v === undefined || v === false || v === null) return undefined
  if (v === true) return { rejectUnauthorized: true }
  const o = object(v, key, ["ca", "rejectUnauthorized", "minVersion"])
  return {
    ca: o.ca === undefined ? undefined : path.resolve(baseDir, str(o.ca, `${key}.ca`)),
    rejectUnauthorized: bool(o.rejectUnauthorized, `${key}.rejectUnauthorized`, true),
    minVersion: tlsVersion(o.minVersion, `${key}.minVersion`)
  }
}

const httpKeys = [
  "upstreamTls",
  "telemetry",
  "preserveHost",
  "trustForwarded",
  "h2c",
  "certificates",
  "maxHeaderSize",
  "keepAliveTimeout",
  "upstream",
  "fixedBackend",
  "directResponse",
  "fastPath"
]

const httpOptions = (o: Obj, key: string, baseDir: string): HttpListenerOptions => {
  const trust = o.trustForwarded
  let trustForwarded: boolean | ReadonlyArray<string> = false
  if (typeof trust === "boolean") trustForwarded = trust
  else if (trust !== undefined) {
    if (!Array.isArray(trust) || !trust.every((x) => typeof x === "string")) {
      throw new ConfigError(
        `${key}.trustForwarded`,
        `expected true, false or a list of CIDR ranges, got ${show(trust)}`
      )
    }
    const cidrs = parseCidrList(trust)
    if (typeof cidrs === "string") throw new ConfigError(`${key}.trustForwarded`, cidrs)
    trustForwarded = trust as Array<string>
  }
  const certs = o.certificates ?? []
  if (!Array.isArray(certs)) throw new ConfigError(`${key}.certificates`, `expected a list, got ${show(certs)}`)
  const certificates = certs.map((c, i) => {
    const k = `${key}.certificates.${i}`
    const e = object(c, k, ["cert", "key", "hosts"])
    const hosts = e.hosts
    if (hosts !== undefined && (!Array.isArray(hosts) || !hosts.every((h) => typeof h === "string" && h.length > 0))) {
      throw new ConfigError(`${k}.hosts`, `expected a list of server names, got ${show(hosts)}`)
    }
    return {
      cert: path.resolve(baseDir, str(e.cert, `${k}.cert`)),
      key: path.resolve(baseDir, str(e.key, `${k}.key`)),
      hosts: hosts as Array<string> | undefined
    }
  })
  if (certificates.length > 0 && o.tls === undefined) {
    throw new ConfigError(`${key}.certificates`, "needs `tls` too: its certificate serves clients without SNI")
  }
  const u = object(o.upstream ?? {}, `${key}.upstream`, [
    "headersTimeout",
    "bodyTimeout",
    "keepAliveTimeout",
    "maxConnections"
  ])
  const fixed = o.fixedBackend
  if (fixed !== undefined) {
    const parsed = parseEndpoint(str(fixed, `${key}.fixedBackend`))
    if (typeof parsed === "string") throw new ConfigError(`${key}.fixedBackend`, parsed)
    if (!/^[\d.]+$|:/.test(parsed.host)) throw new ConfigError(`${key}.fixedBackend`, "expected an IP literal")
  }
  return {
    telemetry: bool(o.telemetry, `${key}.telemetry`, false),
    preserveHost: bool(o.preserveHost, `${key}.preserveHost`, true),
    trustForwarded,
    h2c: bool(o.h2c, `${key}.h2c`, true),
    certificates,
    maxHeaderSize: int(o.maxHeaderSize, `${key}.maxHeaderSize`, 1024, 1_048_576, 16_384),
    keepAliveTimeout: seconds(o.keepAliveTimeout, `${key}.keepAliveTimeout`, 5),
    upstream: {
      headersTimeout: seconds(u.headersTimeout, `${key}.upstream.headersTimeout`, 60),
      bodyTimeout: seconds(u.bodyTimeout, `${key}.upstream.bodyTimeout`, 60),
      keepAliveTimeout: seconds(u.keepAliveTimeout, `${key}.upstream.keepAliveTimeout`, 4),
      maxConnections: int(u.maxConnections, `${key}.upstream.maxConnections`, 0, 1_000_000, 256)
    },
    fixedBackend: fixed as string | undefined,
    directResponse: bool(o.directResponse, `${key}.directResponse`, false),
    fastPath: bool(o.fastPath, `${key}.fastPath`, false)
  }
}

const tcpRoute = (v: unknown, key: string, baseDir: string): TcpRoute => {
  if (typeof v === "string" || v === undefined) return str(v, key)
  const o = object(v, key, ["firstBytes"])
  const ref = str(o.firstBytes, `${key}.firstBytes`)
  // "<module path>#<export>"; without "#", the default export. The last "#" splits: a path with a "#" names its export.
  const hash = ref.lastIndexOf("#")
  const file = hash < 0 ? ref : ref.slice(0, hash)
  const name = hash < 0 ? "default" : ref.slice(hash + 1)
  if (file === "" || !/^[A-Za-z_$][\w$]*$/.test(name)) {
    throw new ConfigError(`${key}.firstBytes`, `expected "<module path>#<export name>", got ${show(ref)}`)
  }
  // Imported at startup (decoding is synchronous); the path is fixed now, against the config file's folder.
  return { firstBytes: `${path.resolve(baseDir, file)}#${name}` }
}

const protocolLabel = (v: unknown, key: string, fallback: ProtocolLabel): ProtocolLabel => {
  if (v === undefined) return fallback
  if (!isProtocolLabel(v)) throw new ConfigError(key, `expected one of ${protocolLabels.join(", ")}, got ${show(v)}`)
  return v
}

const listener = (name: ListenerName, v: unknown, baseDir: string): ListenerConfig => {
  const key = `listeners.${name}`
  const routeBy = routeByOptions[name]
  const known = [
    "host",
    "port",
    "tls",
    "maxConnections",
    "proxyProtocol",
    "trustedProxies",
    "protocol",
    ...(name === "tcp" ? ["route", "defaultRoute"] : []),
    ...(routeBy ? ["routeBy", "upstreamTls", "defaultRoute"] : []),
    ...(name === "http" ? httpKeys : []),
    ...(name === "mongodb" ? ["maxRoutingCommand"] : [])
  ]
  const o = object(v ?? {}, key, known)
  const port = int(o.port, `${key}.port`, 0, 65535)
  const route = name === "tcp" ? tcpRoute(o.route, `${key}.route`, baseDir) : undefined
  if (typeof route === "string" && route !== "sni" && o.defaultRoute !== undefined) {
    throw new ConfigError(`${key}.defaultRoute`, "only used with route: sni or route: { firstBytes }")
  }
  return {
    routeBy: routeBy ? oneOf(o.routeBy, `${key}.routeBy`, routeBy, routeBy[0]!) : undefined,
    defaultRoute: o.defaultRoute === undefined ? undefined : str(o.defaultRoute, `${key}.defaultRoute`),
    upstreamTls: upstreamTls(o.upstreamTls, `${key}.upstreamTls`, baseDir),
    http: name === "http" ? httpOptions(o, key, baseDir) : undefined,
    // Up to MongoDB's largest command document (16 MiB + 16 KiB): what an unrouted connection may make the proxy hold.
    maxRoutingCommand:
      name === "mongodb" ? int(o.maxRoutingCommand, `${key}.maxRoutingCommand`, 1024, 16_793_600, 65_536) : undefined,
    host: host(o.host, `${key}.host`, defaults.listenerHost),
    port,
    tls: tlsFiles(o.tls, `${key}.tls`, baseDir),
    maxConnections: int(o.maxConnections, `${key}.maxConnections`, 0, 10_000_000, 0),
    proxyProtocol: bool(o.proxyProtocol, `${key}.proxyProtocol`, false),
    trustedProxies: cidrList(o.trustedProxies, `${key}.trustedProxies`, ["127.0.0.0/8", "::1/128"]),
    route,
    protocol: protocolLabel(o.protocol, `${key}.protocol`, defaultProtocolLabel(name, port))
  }
}

const endpoint = (v: string, key: string): string => {
  const parsed = parseEndpoint(v)
  if (typeof parsed === "string") throw new ConfigError(key, parsed)
  return v
}

const route = (id: string, v: unknown): RouteConfig => {
  const key = `routes.${id}`
  if (id.length === 0) throw new ConfigError("routes", "a route id must not be empty")
  if (id.includes("*") && !/^\*\.[^*]+$/.test(id)) {
    throw new ConfigError(key, `a wildcard must be the whole first label, as in "*.example.com"`)
  }
  if (typeof v === "string") return { endpoint: endpoint(v, key) }
  const o = object(v, key, ["endpoint", "metadata", "timeout"])
  if (o.metadata !== undefined && !isObj(o.metadata)) throw new ConfigError(`${key}.metadata`, "expected a mapping")
  return {
    endpoint: endpoint(str(o.endpoint, `${key}.endpoint`), `${key}.endpoint`),
    metadata: o.metadata as Obj | undefined,
    timeout: o.timeout === undefined ? undefined : seconds(o.timeout, `${key}.timeout`, 0)
  }
}

/** A URL with one of `schemes`; never echoed back, since it may carry a password. */
const url = (v: unknown, key: string, schemes: ReadonlyArray<string>): string => {
  const text = str(v, key)
  let scheme: string
  try {
    scheme = new URL(text).protocol
  } catch {
    throw new ConfigError(key, `not a valid URL (expected ${schemes.map((s) => `${s}//…`).join(" or ")})`)
  }
  if (!schemes.includes(scheme)) {
    throw new ConfigError(key, `expected a ${schemes.join(" or ")} URL, got ${scheme}`)
  }
  return text
}

const positiveSeconds = (v: unknown, key: string, fallback: number): number => {
  const s = seconds(v, key, fallback)
  if (s === 0) throw new ConfigError(key, "must be more than 0 seconds")
  return s
}

const resolverConfig = (v: unknown): ResolverConfig => {
  if (v === undefined || v === null) return { type: "static" }
  const type = oneOf(isObj(v) ? v.type : undefined, "resolver.type", resolverTypes, "static")
  const d = defaults.resolver
  switch (type) {
    case "static":
      object(v, "resolver", ["type"])
      return { type }
    case "redis": {
      const o = object(v, "resolver", ["type", "url", "key", "timeout"])
      return {
        type,
        url: url(o.url, "resolver.url", ["redis:", "rediss:"]),
        key: str(o.key, "resolver.key", d.redis.key),
        timeout: positiveSeconds(o.timeout, "resolver.timeout", d.redis.timeout)
      }
    }
    case "http": {
      const o = object(v, "resolver", [
        "type",
        "url",
        "token",
        "timeout",
        "retries",
        "failureThreshold",
        "cooldown",
        "wakeUrl"
      ])
      return {
        type,
        url: url(o.url, "resolver.url", ["http:", "https:"]),
        token: o.token === undefined ? undefined : str(o.token, "resolver.token"),
        timeout: positiveSeconds(o.timeout, "resolver.timeout", d.http.timeout),
        retries: int(o.retries, "resolver.retries", 0, 10, d.http.retries),
        failureThreshold: int(o.failureThreshold, "resolver.failureThreshold", 0, 1_000_000, d.http.failureThreshold),
        cooldown: seconds(o.cooldown, "resolver.cooldown", d.http.cooldown),
        wakeUrl: o.wakeUrl === undefined ? undefined : url(o.wakeUrl, "resolver.wakeUrl", ["http:", "https:"])
      }
    }
  }
}

const adminConfig = (v: unknown): AdminConfig => {
  const a = object(v ?? {}, "admin", ["host", "port", "token", "allowedHosts", "insecure"])
  const allowed = a.allowedHosts
  if (
    allowed !== undefined &&
    !(Array.isArray(allowed) && allowed.every((h) => typeof h === "string" && validAllowedHost(h)))
  ) {
    throw new ConfigError(
      "admin.allowedHosts",
      `expected a list of host names such as "polyproxy-admin.example.com" or "*.example.com" (no port), got ${show(allowed)}`
    )
  }
  const admin: AdminConfig = {
    host: host(a.host, "admin.host", defaults.admin.host),
    port: int(a.port, "admin.port", 0, 65535, defaults.admin.port),
    token: a.token === undefined ? undefined : str(a.token, "admin.token"),
    allowedHosts: allowed === undefined ? undefined : (allowed as Array<string>).map((h) => h.toLowerCase()),
    insecure: a.insecure === undefined ? undefined : bool(a.insecure, "admin.insecure", false)
  }
  // Reachable from the network with nothing to stop purge/drain/reload: refused unless said on purpose.
  if (admin.token === undefined && admin.insecure !== true && !isLoopbackHost(admin.host)) {
    throw new ConfigError(
      "admin.token",
      `required when admin.host (${admin.host}) is not a loopback address: set admin.token (POLYPROXY_ADMIN_TOKEN), bind admin.host to 127.0.0.1, or set admin.insecure: true to let anyone who reaches the port purge, drain and reload`
    )
  }
  return admin
}

/** Validates a raw config value. `baseDir` anchors relative certificate paths (the config file's folder). */
export const decodeConfig = (raw: unknown, baseDir: string): Config => {
  const o = object(raw ?? {}, "", [
    "workers",
    "nodeOptions",
    "admin",
    "listeners",
    "routes",
    "cache",
    "ssrf",
    "upstream",
    "timeouts",
    "log",
    "tls",
    "limits",
    "metrics",
    "breaker",
    "coldStart",
    "resolver"
  ])

  const admin = o.admin === false || o.admin === null ? undefined : adminConfig(o.admin)

  const ls = object(o.listeners ?? {}, "listeners", listenerNames)
  const listeners: Partial<Record<ListenerName, ListenerConfig>> = {}
  for (const name of listenerNames) if (ls[name] !== undefined) listeners[name] = listener(name, ls[name], baseDir)

  const rs = o.routes === undefined || o.routes === null ? {} : o.routes
  if (!isObj(rs)) throw new ConfigError("routes", `expected a mapping of resource id to "host:port", got ${show(rs)}`)
  const routes: Record<string, RouteConfig> = {}
  for (const [id, v] of Object.entries(rs)) routes[id.toLowerCase()] = route(id, v)

  const c = object(o.cache ?? {}, "cache", ["ttl", "negativeTtl", "maxEntries", "redis"])
  const s = object(o.ssrf ?? {}, "ssrf", ["allow"])
  const allow = s.allow ?? []
  if (!Array.isArray(allow) || !allow.every((x) => typeof x === "string")) {
    throw new ConfigError("ssrf.allow", `expected a list of CIDR ranges such as "127.0.0.0/8", got ${show(allow)}`)
  }
  const cidrs = parseCidrList(allow)
  if (typeof cidrs === "string") throw new ConfigError("ssrf.allow", cidrs)
  const up = object(o.upstream ?? {}, "upstream", ["sourceAddresses"])
  const sources = up.sourceAddresses ?? []
  if (!Array.isArray(sources) || !sources.every((x) => typeof x === "string" && isIP(x) !== 0)) {
    throw new ConfigError(
      "upstream.sourceAddresses",
      `expected a list of IP addresses of this host such as "10.0.0.2", got ${show(sources)}`
    )
  }
  const t = object(o.timeouts ?? {}, "timeouts", ["handshake", "connect", "idle", "halfClose", "resolve", "drain"])
  const l = object(o.log ?? {}, "log", ["level", "format", "connections", "sample"])
  const lim = object(o.limits ?? {}, "limits", ["maxConnections", "perResource"])
  const br = object(o.breaker ?? {}, "breaker", ["failureThreshold", "cooldown"])
  const mt = object(o.metrics ?? {}, "metrics", ["perResource"])
  const cs = object(o.coldStart ?? {}, "coldStart", ["timeout", "maxQueue"])

  return {
    workers: int(o.workers, "workers", 0, 1024, defaults.workers),
    nodeOptions: nodeOptions(o.nodeOptions),
    admin,
    listeners,
    routes,
    resolver: resolverConfig(o.resolver),
    tls: tlsFiles(o.tls, "tls", baseDir),
    cache: {
      ttl: seconds(c.ttl, "cache.ttl", defaults.cache.ttl),
      negativeTtl: seconds(c.negativeTtl, "cache.negativeTtl", defaults.cache.negativeTtl),
      maxEntries: int(c.maxEntries, "cache.maxEntries", 1, 100_000_000, defaults.cache.maxEntries),
      redis: c.redis === undefined ? undefined : redisUrl(c.redis, "cache.redis")
    },
    ssrf: { allow: allow as Array<string> },
    upstream: { sourceAddresses: sources as Array<string> },
    timeouts: {
      handshake: seconds(t.handshake, "timeouts.handshake", defaults.timeouts.handshake),
      connect: seconds(t.connect, "timeouts.connect", defaults.timeouts.connect),
      idle: seconds(t.idle, "timeouts.idle", defaults.timeouts.idle),
      halfClose: seconds(t.halfClose, "timeouts.halfClose", defaults.timeouts.halfClose),
      resolve: seconds(t.resolve, "timeouts.resolve", defaults.timeouts.resolve),
      drain: seconds(t.drain, "timeouts.drain", defaults.timeouts.drain)
    },
    limits: {
      maxConnections: int(lim.maxConnections, "limits.maxConnections", 0, 100_000_000, defaults.limits.maxConnections),
      perResource: int(lim.perResource, "limits.perResource", 0, 100_000_000, defaults.limits.perResource)
    },
    metrics: { perResource: int(mt.perResource, "metrics.perResource", 0, 10_000, defaults.metrics.perResource) },
    breaker: {
      failureThreshold: int(
        br.failureThreshold,
        "breaker.failureThreshold",
        0,
        1_000_000,
        defaults.breaker.failureThreshold
      ),
      cooldown: seconds(br.cooldown, "breaker.cooldown", defaults.breaker.cooldown)
    },
    coldStart: {
      timeout: seconds(cs.timeout, "coldStart.timeout", defaults.coldStart.timeout),
      maxQueue: int(cs.maxQueue, "coldStart.maxQueue", 0, 10_000_000, defaults.coldStart.maxQueue)
    },
    log: {
      level: oneOf<LogLevel>(l.level, "log.level", ["debug", "info", "warn", "error"], defaults.log.level),
      format: oneOf(l.format, "log.format", ["auto", "json", "pretty"] as const, defaults.log.format),
      connections: bool(l.connections, "log.connections", defaults.log.connections),
      sample: fraction(l.sample, "log.sample", defaults.log.sample)
    }
  }
}
