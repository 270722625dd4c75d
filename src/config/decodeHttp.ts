// `listeners.http` keys beyond the ones every listener has.
import * as path from "node:path"
import { parseEndpoint } from "../domain/Endpoint.ts"
import { parseCidrList } from "../domain/SpecialRanges.ts"
import type { DirectResponse, HttpListenerOptions } from "./Config.ts"
import { bool, ConfigError, int, type Obj, object, seconds, show, str } from "./fields.ts"

/** `true` is the benchmark's 200 "ok"; `{ status, body }` any final answer. */
const directResponse = (v: unknown, key: string): DirectResponse | undefined => {
  if (v === undefined || v === false) return undefined
  if (v === true) return { status: 200, body: "ok\n" }
  const o = object(v, key, ["status", "body"])
  const status = int(o.status, `${key}.status`, 200, 599, 200)
  const body = o.body ?? ""
  if (typeof body !== "string") throw new ConfigError(`${key}.body`, `expected a string, got ${show(body)}`)
  // RFC 9110 §15.3.5, §15.3.6, §15.4.5: these answers never carry content.
  if ((status === 204 || status === 205 || status === 304) && body.length > 0) {
    throw new ConfigError(`${key}.body`, `must be empty: a ${status} response has no content`)
  }
  return { status, body }
}

export const httpKeys = [
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

export const httpOptions = (o: Obj, key: string, baseDir: string): HttpListenerOptions => {
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
    "maxConnections",
    "keepAlive"
  ])
  const fixed = o.fixedBackend
  if (fixed !== undefined) {
    const parsed = parseEndpoint(str(fixed, `${key}.fixedBackend`))
    if (typeof parsed === "string") throw new ConfigError(`${key}.fixedBackend`, parsed)
    if (!/^[\d.]+$|:/.test(parsed.host)) throw new ConfigError(`${key}.fixedBackend`, "expected an IP literal")
  }
  const fastPath = bool(o.fastPath, `${key}.fastPath`, false)
  const keepAlive = bool(u.keepAlive, `${key}.upstream.keepAlive`, true)
  if (!keepAlive && fastPath) {
    throw new ConfigError(
      `${key}.upstream.keepAlive`,
      "false needs fastPath off: fastPath forwards request heads untouched, so the backend cannot be sent Connection: close"
    )
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
      maxConnections: int(u.maxConnections, `${key}.upstream.maxConnections`, 0, 1_000_000, 256),
      keepAlive
    },
    fixedBackend: fixed as string | undefined,
    directResponse: directResponse(o.directResponse, `${key}.directResponse`),
    fastPath
  }
}
