// Environment overrides: POLYPROXY_<PATH> sets the config key at PATH (camelCase keys in SNAKE_CASE), e.g.
// POLYPROXY_LISTENERS_HTTP_PORT=8081 -> listeners.http.port. The seed's PROXY_TLS_* variables set the shared `tls`.

import { listenerTypes } from "./Config.ts"
import { ConfigError } from "./decode.ts"
import { isObj } from "./fields.ts"

type Kind = "int" | "number" | "string" | "bool" | "list" | "json" | "stringOrJson"

/** The variables of one listener, by name: its common keys, and a tcp listener's route (TLS: `tlsLeaves`). */
const listenerLeaves = (name: string, type: string): ReadonlyArray<readonly [string, Kind]> => {
  const p = `listeners.${name}`
  return [
    [`${p}.host`, "string"],
    [`${p}.port`, "int"],
    [`${p}.maxConnections`, "int"],
    [`${p}.protocol`, "string"],
    // A resource id, "sni", or JSON such as {"firstBytes":"./extract.js#extract"}.
    ...(type === "tcp"
      ? ([
          [`${p}.route`, "stringOrJson"],
          [`${p}.defaultRoute`, "string"]
        ] as const)
      : [])
  ]
}

const tlsLeaves = (p: string): ReadonlyArray<readonly [string, Kind]> => [
  [`${p}.cert`, "string"],
  [`${p}.key`, "string"],
  [`${p}.ca`, "string"],
  [`${p}.requireClientCert`, "bool"],
  [`${p}.ciphers`, "string"],
  [`${p}.minVersion`, "string"]
]

const leaf: ReadonlyArray<readonly [string, Kind]> = [
  ["workers", "int"],
  ["admin.host", "string"],
  ["admin.port", "int"],
  ["admin.token", "string"],
  ["admin.allowedHosts", "list"],
  ["admin.insecure", "bool"],
  ["routes", "json"],
  ["resolver.type", "string"],
  ["resolver.url", "string"],
  ["resolver.token", "string"],
  ["cache.ttl", "number"],
  ["cache.negativeTtl", "number"],
  ["cache.maxEntries", "int"],
  ["cache.redis", "string"],
  ["ssrf.allow", "list"],
  ["ssrf.disabled", "bool"],
  ["tcp.keepAlive.enabled", "bool"],
  ["tcp.keepAlive.idle", "int"],
  ["tcp.keepAlive.interval", "int"],
  ["tcp.keepAlive.count", "int"],
  ["upstream.sourceAddresses", "list"],
  ["timeouts.handshake", "number"],
  ["timeouts.connect", "number"],
  ["timeouts.idle", "number"],
  ["timeouts.halfClose", "number"],
  ["timeouts.resolve", "number"],
  ["timeouts.drain", "number"],
  ["limits.maxConnections", "int"],
  ["limits.perResource", "int"],
  ["metrics.perResource", "int"],
  ["breaker.failureThreshold", "int"],
  ["breaker.cooldown", "number"],
  ["coldStart.timeout", "number"],
  ["coldStart.maxQueue", "int"],
  ["log.level", "string"],
  ["log.format", "string"],
  ["log.connections", "bool"],
  ["log.sample", "number"],
  ...tlsLeaves("tls"),
  ...listenerTypes.flatMap((t) => tlsLeaves(`listeners.${t}.tls`)),
  ...listenerTypes.flatMap((t) => listenerLeaves(t, t))
]

/** "listeners.http.maxConnections" -> "POLYPROXY_LISTENERS_HTTP_MAX_CONNECTIONS"; "listeners.pg-alt.port" -> "…_PG_ALT_PORT" */
export const envName = (keyPath: string): string =>
  `POLYPROXY_${keyPath
    .replace(/([a-z])([A-Z])/g, "$1_$2")
    .replace(/[.-]/g, "_")
    .toUpperCase()}`

type EnvTable = ReadonlyMap<string, { readonly path: string; readonly kind: Kind }>

const tableOf = (leaves: ReadonlyArray<readonly [string, Kind]>): EnvTable =>
  new Map(leaves.map(([p, kind]) => [envName(p), { path: p, kind }]))

const byEnvName = tableOf(leaf)

/** The variables for `raw`: the built-in ones, plus those of the listeners the file names (`pg-alt`: …_PG_ALT_PORT). */
const envTableFor = (raw: Readonly<Record<string, unknown>>): EnvTable => {
  const listeners = isObj(raw.listeners) ? Object.entries(raw.listeners) : []
  const named = listeners.filter(([name]) => !byEnvName.has(envName(`listeners.${name}.port`)))
  if (named.length === 0) return byEnvName
  return tableOf([
    ...leaf,
    ...named.flatMap(([name, v]) => {
      const type = isObj(v) && typeof v.type === "string" ? v.type : name
      return [...listenerLeaves(name, type), ...tlsLeaves(`listeners.${name}.tls`)]
    })
  ])
}

/** Variables read by the CLI itself rather than mapped to a key. */
const reserved = new Set(["POLYPROXY_CONFIG"])

/** The variables that are not `POLYPROXY_` + a key path, and what they do. */
const otherVariables: ReadonlyArray<readonly [string, string]> = [
  ["POLYPROXY_CONFIG", "the config file of serve and routes (default: the embedded fixtures/example.yaml)"],
  ["PROXY_TLS_ENABLED", "true: set tls from the PROXY_TLS_* variables"],
  ["PROXY_TLS_CERT", "tls.cert (required with PROXY_TLS_ENABLED)"],
  ["PROXY_TLS_KEY", "tls.key (required with PROXY_TLS_ENABLED)"],
  ["PROXY_TLS_CA", "tls.ca"],
  ["PROXY_TLS_REQUIRE_CLIENT_CERT", "tls.requireClientCert"],
  ["PROXY_TLS_CIPHERS", "tls.ciphers"],
  ["PROXY_TLS_MIN_VERSION", "tls.minVersion"]
]

/** Every variable polyproxy reads, with the key it sets (or what it does). */
export const documentedEnv = (): ReadonlyArray<readonly [string, string]> => [
  ...leaf.map(([p]) => [envName(p), p] as const),
  ...otherVariables
]

/** Levenshtein distance: edits (insert, delete, replace) from `a` to `b`. */
const distance = (a: string, b: string): number => {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const next = [i]
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    row = next
  }
  return row[b.length]!
}

/**
 * The variable a mistyped one most likely meant: the closest by a few edits (LISTENER_ for LISTENERS_), else the only
 * one that ends with what was typed (POLYPROXY_HTTP_PORT for POLYPROXY_LISTENERS_HTTP_PORT).
 */
export const nearestEnvName = (name: string, table: EnvTable = byEnvName): string | undefined => {
  const names = [...table.keys(), ...reserved]
  let best: string | undefined
  let bestDistance = Number.POSITIVE_INFINITY
  for (const candidate of names) {
    const d = distance(name, candidate)
    if (d < bestDistance) [best, bestDistance] = [candidate, d]
  }
  if (bestDistance <= 2) return best
  const tail = `_${name.slice("POLYPROXY_".length)}`
  const endings = names.filter((n) => n.endsWith(tail))
  return endings.length === 1 ? endings[0] : undefined
}

const unknownVariable = (name: string, table: EnvTable): ConfigError => {
  const guess = nearestEnvName(name, table)
  return new ConfigError(
    name,
    `unknown environment variable${guess ? `; did you mean ${guess}?` : ""} (\`polyproxy env\` lists them all)`
  )
}

const convert = (name: string, value: string, kind: Kind): unknown => {
  switch (kind) {
    case "string":
      return value
    case "list":
      return value
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s.length > 0)
    case "bool":
      if (/^(true|1|yes|on)$/i.test(value)) return true
      if (/^(false|0|no|off)$/i.test(value)) return false
      throw new ConfigError(name, `expected true or false, got ${JSON.stringify(value)}`)
    case "stringOrJson":
      if (!value.trimStart().startsWith("{")) return value
      return convert(name, value, "json")
    case "json":
      try {
        return JSON.parse(value)
      } catch {
        throw new ConfigError(name, "expected a JSON object")
      }
    default: {
      const n = Number(value)
      if (value.trim() === "" || Number.isNaN(n))
        throw new ConfigError(name, `expected a number, got ${JSON.stringify(value)}`)
      return n
    }
  }
}

const setPath = (root: Record<string, unknown>, keyPath: string, value: unknown) => {
  const parts = keyPath.split(".")
  let node = root
  for (const part of parts.slice(0, -1)) {
    const next = node[part]
    node[part] = typeof next === "object" && next !== null && !Array.isArray(next) ? { ...next } : {}
    node = node[part] as Record<string, unknown>
  }
  node[parts[parts.length - 1]!] = value
}

/**
 * Applies POLYPROXY_* and PROXY_TLS_* variables on top of the raw file value (never mutating it).
 * Relative paths from the environment are made absolute against `cwd`, since the file's folder means nothing to them.
 */
export const applyEnv = (raw: unknown, env: Readonly<Record<string, string | undefined>>, cwd: string): unknown => {
  const root: Record<string, unknown> =
    typeof raw === "object" && raw !== null && !Array.isArray(raw) ? { ...(raw as Record<string, unknown>) } : {}
  const abs = (p: string) => (p.startsWith("/") ? p : `${cwd}/${p}`)
  const table = envTableFor(root)
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith("POLYPROXY_") || value === undefined || reserved.has(name)) continue
    const target = table.get(name)
    if (target === undefined) throw unknownVariable(name, table)
    let v = convert(name, value, target.kind)
    const module = target.kind === "stringOrJson" && typeof v === "object" ? (v as { firstBytes?: unknown }) : undefined
    if (typeof module?.firstBytes === "string") v = { ...module, firstBytes: abs(module.firstBytes) }
    setPath(root, target.path, /\.(cert|key|ca)$/.test(target.path) ? abs(v as string) : v)
  }
  if (/^(true|1|yes|on)$/i.test(env.PROXY_TLS_ENABLED ?? "")) {
    const need = (n: string) => {
      const v = env[n]
      if (v === undefined || v === "") throw new ConfigError(n, "required when PROXY_TLS_ENABLED is true")
      return abs(v)
    }
    setPath(root, "tls", {
      cert: need("PROXY_TLS_CERT"),
      key: need("PROXY_TLS_KEY"),
      ...(env.PROXY_TLS_CA ? { ca: abs(env.PROXY_TLS_CA) } : {}),
      requireClientCert: convert("PROXY_TLS_REQUIRE_CLIENT_CERT", env.PROXY_TLS_REQUIRE_CLIENT_CERT ?? "false", "bool"),
      ...(env.PROXY_TLS_CIPHERS ? { ciphers: env.PROXY_TLS_CIPHERS } : {}),
      ...(env.PROXY_TLS_MIN_VERSION ? { minVersion: env.PROXY_TLS_MIN_VERSION } : {})
    })
  }
  return root
}
