// Turns the parsed YAML/JSON (plus environment overrides) into a Config, or a message naming the bad key and why.

import { isIP } from "node:net"
import * as path from "node:path"
import * as tls from "node:tls"
import { isLoopbackHost, validAllowedHost } from "../admin/hosts.ts"
import { parseEndpoint } from "../domain/Endpoint.ts"
import { isProtocolLabel, protocolLabels } from "../domain/Protocols.ts"
import { parseCidrList } from "../domain/SpecialRanges.ts"
import { libuvProbes, probesSettable } from "../listeners/keepAlive.ts"
import type { ListenerManifest } from "../listeners/manifest.ts"
import { checkRouteMetadata } from "../listeners/pool/routeMetadata.ts"
import { type ListenerRegistryShape, listenerTypesWith } from "../listeners/registry.ts"
import { type Bind, distinctBinds, listenHost } from "./addresses.ts"
import {
  type AdminConfig,
  type Config,
  defaults,
  type ListenerConfig,
  type LogLevel,
  type RouteConfig,
  type TcpKeepAlive,
  type TlsFiles,
  type TlsVersion,
  tlsVersions,
  type UpstreamTls
} from "./Config.ts"
import { resolverConfig } from "./decodeResolver.ts"
import { bool, ConfigError, fraction, int, isObj, type Obj, object, oneOf, seconds, show, str } from "./fields.ts"

export { ConfigError }

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

/** The type's own label, or one of the protocol table's. */
const protocolLabel = (v: unknown, key: string, own: string): string => {
  if (v === undefined || v === own) return own
  if (!isProtocolLabel(v)) {
    const known = isProtocolLabel(own) ? protocolLabels : [...protocolLabels, own]
    throw new ConfigError(key, `expected one of ${known.join(", ")}, got ${show(v)}`)
  }
  return v
}

/** A name that reads the same in a metric label, a log line and an environment variable (dashes become "_"). */
const listenerName = /^[A-Za-z][A-Za-z0-9_-]{0,62}$/

/** The listener's type: its `type`, or in the short form its name, which must then be a type. */
const listenerManifest = (name: string, o: Obj, types: ListenerRegistryShape): ListenerManifest => {
  const key = `listeners.${name}`
  const known = types.manifests.map((m) => m.type).join(", ")
  if (o.type === undefined) {
    const m = types.find(name)
    if (m !== undefined) return m
    throw new ConfigError(
      `${key}.type`,
      `required: "${name}" is not a listener type (${known}); a listener of another name says its type, as in ${name}: { type: tcp, port: … }`
    )
  }
  const type = str(o.type, `${key}.type`)
  const m = types.find(type)
  if (m === undefined) throw new ConfigError(`${key}.type`, `unknown listener type ${show(type)} (known: ${known})`)
  return m
}

const listener = (name: string, v: unknown, baseDir: string, types: ListenerRegistryShape): ListenerConfig => {
  const key = `listeners.${name}`
  if (!listenerName.test(name)) {
    throw new ConfigError(key, "a listener name is a letter, then up to 62 letters, digits, - or _")
  }
  const manifest = listenerManifest(name, isObj(v) ? v : {}, types)
  const routeBy = manifest.routeBy
  const known = [
    "type",
    "host",
    "port",
    "tls",
    "maxConnections",
    "proxyProtocol",
    "trustedProxies",
    "protocol",
    ...(routeBy ? ["routeBy", "upstreamTls", "defaultRoute"] : []),
    ...(manifest.options?.keys ?? [])
  ]
  const o = object(v ?? {}, key, known)
  const port = int(o.port, `${key}.port`, 0, 65535)
  const label = typeof manifest.label === "function" ? manifest.label(port) : manifest.label
  return {
    type: manifest.type,
    routeBy: routeBy ? oneOf(o.routeBy, `${key}.routeBy`, routeBy, routeBy[0]!) : undefined,
    defaultRoute: o.defaultRoute === undefined ? undefined : str(o.defaultRoute, `${key}.defaultRoute`),
    upstreamTls: upstreamTls(o.upstreamTls, `${key}.upstreamTls`, baseDir),
    host: listenHost(o.host, `${key}.host`, defaults.listenerHost),
    port,
    tls: tlsFiles(o.tls, `${key}.tls`, baseDir),
    maxConnections: int(o.maxConnections, `${key}.maxConnections`, 0, 10_000_000, 0),
    proxyProtocol: bool(o.proxyProtocol, `${key}.proxyProtocol`, false),
    trustedProxies: cidrList(o.trustedProxies, `${key}.trustedProxies`, ["127.0.0.0/8", "::1/128"]),
    protocol: protocolLabel(o.protocol, `${key}.protocol`, label),
    ...manifest.options?.decode(o, key, baseDir)
  }
}

const endpoint = (v: string, key: string): string => {
  const parsed = parseEndpoint(v)
  if (typeof parsed === "string") throw new ConfigError(key, parsed)
  return v
}

/** `mysqlPools`: a mysql listener may read the route's `pool` block (without `auth`: it checks logins itself). */
const route = (id: string, v: unknown, mysqlPools: boolean): RouteConfig => {
  const key = `routes.${id}`
  if (id.length === 0) throw new ConfigError("routes", "a route id must not be empty")
  if (id.includes("*") && !/^\*\.[^*]+$/.test(id)) {
    throw new ConfigError(key, `a wildcard must be the whole first label, as in "*.example.com"`)
  }
  if (typeof v === "string") return { endpoint: endpoint(v, key) }
  const o = object(v, key, ["endpoint", "metadata", "timeout"])
  if (o.metadata !== undefined && !isObj(o.metadata)) throw new ConfigError(`${key}.metadata`, "expected a mapping")
  // A pooling block (metadata.pool / metadata.auth) is checked here, so check-config names its mistakes.
  checkRouteMetadata(o.metadata, `${key}.metadata`, mysqlPools)
  return {
    endpoint: endpoint(str(o.endpoint, `${key}.endpoint`), `${key}.endpoint`),
    metadata: o.metadata as Obj | undefined,
    timeout: o.timeout === undefined ? undefined : seconds(o.timeout, `${key}.timeout`, 0)
  }
}

/** `tcp.keepAlive`: a mapping, or true/false for the defaults on or off. */
const tcpKeepAlive = (v: unknown): TcpKeepAlive => {
  const d = defaults.tcp.keepAlive
  if (typeof v === "boolean") return { ...d, enabled: v }
  const k = object(v ?? {}, "tcp.keepAlive", ["enabled", "idle", "interval", "count"])
  // Linux's limits (MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL, MAX_TCP_KEEPCNT); libuv refuses an idle time of 0.
  const ka: TcpKeepAlive = {
    enabled: bool(k.enabled, "tcp.keepAlive.enabled", d.enabled),
    idle: int(k.idle, "tcp.keepAlive.idle", 1, 32_767, d.idle),
    interval: int(k.interval, "tcp.keepAlive.interval", 1, 32_767, d.interval),
    count: int(k.count, "tcp.keepAlive.count", 1, 127, d.count)
  }
  if (!probesSettable && (ka.interval !== libuvProbes.interval || ka.count !== libuvProbes.count)) {
    throw new ConfigError(
      ka.interval !== libuvProbes.interval ? "tcp.keepAlive.interval" : "tcp.keepAlive.count",
      `this Node.js (${process.version}) cannot set the probe interval and count (socket.setKeepAlive takes only the idle time); remove the key or run a Node.js 24 that has them`
    )
  }
  return ka
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
    host: listenHost(a.host, "admin.host", defaults.admin.host),
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

export interface DecodeOptions {
  /** Listener types of your own, beside the built-in ones (pass the same to runProxy). */
  readonly listeners?: ReadonlyArray<ListenerManifest> | undefined
}

/** Validates a raw config value. `baseDir` anchors relative certificate paths (the config file's folder). */
export const decodeConfig = (raw: unknown, baseDir: string, options: DecodeOptions = {}): Config => {
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
    "resolver",
    "tcp"
  ])

  const admin = o.admin === false || o.admin === null ? undefined : adminConfig(o.admin)

  const ls = o.listeners ?? {}
  if (!isObj(ls)) throw new ConfigError("listeners", `expected a mapping of listener name to its keys, got ${show(ls)}`)
  const types = listenerTypesWith(options.listeners)
  const listeners: Record<string, ListenerConfig> = {}
  const binds: Array<Bind> = []
  // In the file's order, so that an overlap names the listener written second.
  for (const [name, v] of Object.entries(ls)) {
    if (v === undefined) continue
    const l = listener(name, v, baseDir, types)
    listeners[name] = l
    binds.push({ key: `listeners.${name}`, host: l.host, port: l.port })
  }
  if (admin !== undefined) binds.push({ key: "admin", host: admin.host, port: admin.port })
  distinctBinds(binds)

  const rs = o.routes === undefined || o.routes === null ? {} : o.routes
  if (!isObj(rs)) throw new ConfigError("routes", `expected a mapping of resource id to "host:port", got ${show(rs)}`)
  const routes: Record<string, RouteConfig> = {}
  const mysqlPools = Object.values(listeners).some((l) => l.type === "mysql")
  for (const [id, v] of Object.entries(rs)) routes[id.toLowerCase()] = route(id, v, mysqlPools)

  const c = object(o.cache ?? {}, "cache", ["ttl", "negativeTtl", "maxEntries", "redis"])
  const s = object(o.ssrf ?? {}, "ssrf", ["allow", "disabled"])
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
    ssrf: { allow: allow as Array<string>, disabled: bool(s.disabled, "ssrf.disabled", false) },
    tcp: { keepAlive: tcpKeepAlive(object(o.tcp ?? {}, "tcp", ["keepAlive"]).keepAlive) },
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
