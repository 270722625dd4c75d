// Header hygiene in both directions: hop-by-hop fields stay on their hop (RFC 9110 §7.6.1), the backend learns who
// asked (X-Forwarded-*, Forwarded: RFC 7239), and heads are built as one latin1 string, written in one go.
import { FIELD_STRIDE, type FieldList, hasToken, type RequestHead, type ResponseHead } from "../../codec/http/index.ts"

/** What the backend is told about the request beyond its own fields. */
export interface Forwarding {
  readonly clientIp: string
  readonly proto: "http" | "https"
  /** Extend the client's X-Forwarded-* / Forwarded instead of replacing them. */
  readonly trusted: boolean
  /** The Host to send: the client's, or the route's endpoint when preserveHost is off. */
  readonly host: string
  /** What the client asked for (X-Forwarded-Host). */
  readonly originalHost: string
  /** Ask an HTTP/1.1 backend to close the connection after its answer (`upstream.keepAlive: false`). */
  readonly close?: boolean | undefined
}

// Connection tokens that name no field of their own: their presence alone does not mean "strip a field by this name".
const plainConnectionTokens = (connection: string): boolean => {
  for (const t of connection.split(",")) if (t !== "close" && t !== "keep-alive" && t !== "upgrade") return false
  return true
}

/** Fields that belong to one hop, by lower-cased name (Proxy-* included: they address this proxy). */
const isHopByHop = (lower: string): boolean => {
  switch (lower) {
    case "connection":
    case "keep-alive":
    case "te":
    case "transfer-encoding":
    case "upgrade":
    // RFC 9113 §3.1 deprecated the h2c upgrade this field belongs to; it only ever concerns one hop.
    case "http2-settings":
      return true
    default:
      return lower.length > 6 && lower.charCodeAt(5) === 0x2d && lower.startsWith("proxy-")
  }
}

/**
 * One Content-Length value for a field the codec accepted: "5, 5" (a list of equal values, RFC 9110 §8.6) becomes
 * "5", so that a server which cannot read lists (RFC 9112 §6.3 lets it refuse them) sees one plain number.
 */
const singleLength = (value: string): string => {
  const comma = value.indexOf(",")
  return comma < 0 ? value : value.slice(0, comma).trimEnd()
}

const quoteIfNeeded = (v: string): string =>
  /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(v) ? v : `"${v.replace(/["\\]/g, "\\$&")}"`

const forwardedFor = (ip: string): string => (ip.includes(":") ? `"[${ip}]"` : ip)

/** The four forwarding fields, each extended or replaced. */
const forwardingFields = (f: Forwarding, xff: string, xfp: string, xfh: string, fwd: string): string => {
  const element = `for=${forwardedFor(f.clientIp)};host=${quoteIfNeeded(f.originalHost)};proto=${f.proto}`
  return (
    `x-forwarded-for: ${xff.length > 0 ? `${xff}, ${f.clientIp}` : f.clientIp}\r\n` +
    `x-forwarded-proto: ${xfp.length > 0 ? xfp : f.proto}\r\n` +
    `x-forwarded-host: ${xfh.length > 0 ? xfh : f.originalHost}\r\n` +
    `forwarded: ${fwd.length > 0 ? `${fwd}, ${element}` : element}\r\n`
  )
}

/**
 * The fields of `fields` to forward, as "name: value\r\n" lines: hop-by-hop ones and those the Connection field
 * names are dropped, Host is replaced by `host`, incoming forwarding fields are removed (and returned in `seen`
 * when trusted so they can be extended).
 */
const forwardFields = (fields: FieldList, connection: string, f: Forwarding, seen: Array<string>): string => {
  const named = connection.length > 0 && !plainConnectionTokens(connection)
  let out = ""
  let contentLength = false
  for (let i = 0; i < fields.length; i += FIELD_STRIDE) {
    const lower = fields[i + 1]!
    switch (lower) {
      case "host":
        out += `host: ${f.host}\r\n`
        continue
      case "content-length":
        // Equal duplicates (fields or a list) were accepted by the codec; the backend gets exactly one value.
        if (contentLength) continue
        contentLength = true
        out += `${fields[i]}: ${singleLength(fields[i + 2]!)}\r\n`
        continue
      case "x-forwarded-for":
        if (f.trusted) seen[0] = seen[0]!.length > 0 ? `${seen[0]}, ${fields[i + 2]}` : fields[i + 2]!
        continue
      case "x-forwarded-proto":
        if (f.trusted && seen[1]!.length === 0) seen[1] = fields[i + 2]!
        continue
      case "x-forwarded-host":
        if (f.trusted && seen[2]!.length === 0) seen[2] = fields[i + 2]!
        continue
      case "forwarded":
        if (f.trusted) seen[3] = seen[3]!.length > 0 ? `${seen[3]}, ${fields[i + 2]}` : fields[i + 2]!
        continue
      default:
        if (isHopByHop(lower) || (named && hasToken(connection, lower))) continue
    }
    out += `${fields[i]}: ${fields[i + 2]}\r\n`
  }
  return out
}

/**
 * The head sent to an HTTP/1.1 backend for an HTTP/1.x request: request line in origin form, hygienic fields,
 * forwarding fields, and the framing and upgrade fields this hop needs. Backend connections are kept alive unless
 * `f.close`.
 */
export const upstreamHeadFromH1 = (head: RequestHead, f: Forwarding, upgrade: string | undefined): string => {
  const seen = ["", "", "", ""]
  let out = `${head.method} ${head.target} HTTP/1.1\r\n${forwardFields(head.fields, head.connection, f, seen)}`
  if (head.hostCount === 0) out += `host: ${f.host}\r\n`
  if (head.chunked) out += "transfer-encoding: chunked\r\n"
  if (upgrade !== undefined) out += `connection: upgrade\r\nupgrade: ${upgrade}\r\n`
  else if (f.close) out += "connection: close\r\n"
  return `${out}${forwardingFields(f, seen[0]!, seen[1]!, seen[2]!, seen[3]!)}\r\n`
}

/** HTTP/2 request fields (pseudo-headers already taken out) → the head for an HTTP/1.1 backend. */
export const upstreamHeadFromH2 = (
  method: string,
  path: string,
  fields: FieldList,
  f: Forwarding,
  chunked: boolean
): string => {
  const seen = ["", "", "", ""]
  let out = `${method} ${path} HTTP/1.1\r\nhost: ${f.host}\r\n${forwardFields(fields, "", f, seen)}`
  if (chunked) out += "transfer-encoding: chunked\r\n"
  if (f.close) out += "connection: close\r\n"
  return `${out}${forwardingFields(f, seen[0]!, seen[1]!, seen[2]!, seen[3]!)}\r\n`
}

/**
 * HTTP/2 request headers for an HTTP/2 backend: the client's fields minus hop-by-hop ones (TE survives only as
 * "trailers", which gRPC needs), the forwarding fields, and our own pseudo-headers.
 */
export const h2UpstreamHeaders = (
  method: string,
  path: string,
  scheme: "http" | "https",
  fields: FieldList,
  f: Forwarding
): Record<string, string | Array<string>> => {
  const seen = ["", "", "", ""]
  const out: Record<string, string | Array<string>> = { ":method": method, ":path": path, ":scheme": scheme }
  if (method !== "CONNECT") out[":authority"] = f.host
  const lines = forwardFields(fields, "", f, seen)
  for (let i = 0; i < fields.length; i += FIELD_STRIDE) {
    if (fields[i + 1] === "te" && fields[i + 2]!.trim().toLowerCase() === "trailers") out.te = "trailers"
  }
  for (const line of `${lines}${forwardingFields(f, seen[0]!, seen[1]!, seen[2]!, seen[3]!)}`.split("\r\n")) {
    const colon = line.indexOf(":")
    if (colon <= 0) continue
    const name = line.slice(0, colon).toLowerCase()
    if (name === "host") continue
    const value = line.slice(colon + 2)
    const prev = out[name]
    if (prev === undefined) out[name] = value
    else if (Array.isArray(prev)) prev.push(value)
    else out[name] = [prev, value]
  }
  return out
}

/** Response headers from an HTTP/2 backend, for an HTTP/2 client: connection-specific ones dropped. */
export const h2PassResponseHeaders = (
  headers: Readonly<Record<string, string | Array<string> | number | undefined>>,
  extra: ReadonlyArray<readonly [string, string]>
): Record<string, string | Array<string> | number> => {
  const out: Record<string, string | Array<string> | number> = {}
  for (const name in headers) {
    const v = headers[name]
    if (v === undefined || h2Forbidden(name) || isHopByHop(name)) continue
    out[name] = v
  }
  for (const [k, v] of extra) out[k] = v
  return out
}

/** What the proxy adds to a response head for an HTTP/1.x client. */
export interface ResponseHeadOptions {
  /** Transfer-Encoding to announce when the body is relayed chunked, as the backend sent it. */
  readonly transferEncoding: string | undefined
  /** 0: say nothing (HTTP/1.1 keep-alive), 1: "connection: close", 2: "connection: keep-alive" (HTTP/1.0 client). */
  readonly connection: 0 | 1 | 2
  /** Extra "name: value\r\n" lines (telemetry), or "". */
  readonly extra: string
  /** A 101 answer keeps its Upgrade field and says "connection: upgrade". */
  readonly upgrade: boolean
}

/** The head for an HTTP/1.x client: the backend's status and end-to-end fields, plus this hop's framing. */
export const clientResponseHead = (head: ResponseHead, o: ResponseHeadOptions): string => {
  const named = head.connection.length > 0 && !plainConnectionTokens(head.connection)
  const fields = head.fields
  let out = `HTTP/1.1 ${head.status} ${head.reason}\r\n`
  let contentLength = false
  for (let i = 0; i < fields.length; i += FIELD_STRIDE) {
    const lower = fields[i + 1]!
    if (isHopByHop(lower) || (named && hasToken(head.connection, lower))) continue
    if (lower === "content-length") {
      // As towards the backend: one value, however the backend repeated it.
      if (contentLength) continue
      contentLength = true
      out += `${fields[i]}: ${singleLength(fields[i + 2]!)}\r\n`
      continue
    }
    out += `${fields[i]}: ${fields[i + 2]}\r\n`
  }
  if (o.upgrade) out += `connection: upgrade\r\nupgrade: ${head.upgrade ?? ""}\r\n`
  else if (o.connection === 1) out += "connection: close\r\n"
  else if (o.connection === 2) out += "connection: keep-alive\r\n"
  if (o.transferEncoding !== undefined) out += `transfer-encoding: ${o.transferEncoding}\r\n`
  return `${out}${o.extra}\r\n`
}

/** An informational (1xx) head for an HTTP/1.1 client. */
export const informationalHead = (head: ResponseHead): string => clientResponseHead(head, noExtras)

const noExtras: ResponseHeadOptions = { transferEncoding: undefined, connection: 0, extra: "", upgrade: false }

// RFC 9113 §8.2.2: connection-specific fields must not appear in HTTP/2.
const h2Forbidden = (lower: string): boolean =>
  lower === "connection" ||
  lower === "keep-alive" ||
  lower === "proxy-connection" ||
  lower === "transfer-encoding" ||
  lower === "upgrade" ||
  lower === "te" ||
  lower === "host"

/** A backend response head as HTTP/2 response headers. Repeated fields become arrays (Set-Cookie). */
export const h2ResponseHeaders = (
  head: ResponseHead,
  extra: ReadonlyArray<readonly [string, string]>
): Record<string, string | Array<string> | number> => {
  const named = head.connection.length > 0 && !plainConnectionTokens(head.connection)
  const out: Record<string, string | Array<string> | number> = { ":status": head.status }
  const fields = head.fields
  for (let i = 0; i < fields.length; i += FIELD_STRIDE) {
    const lower = fields[i + 1]!
    if (h2Forbidden(lower) || isHopByHop(lower) || (named && hasToken(head.connection, lower))) continue
    if (lower === "content-length") {
      if (out[lower] === undefined) out[lower] = singleLength(fields[i + 2]!)
      continue
    }
    const value = fields[i + 2]!
    const prev = out[lower]
    if (prev === undefined) out[lower] = value
    else if (Array.isArray(prev)) prev.push(value)
    else out[lower] = [String(prev), value]
  }
  for (const [k, v] of extra) out[k] = v
  return out
}

const protocolNames = (list: string): Array<string> => {
  const out: Array<string> = []
  for (const part of list.split(",")) {
    const t = part.trim().toLowerCase()
    if (t.length === 0) continue
    const slash = t.indexOf("/")
    out.push(slash < 0 ? t : t.slice(0, slash))
  }
  return out
}

/**
 * The protocols of the client's Upgrade offered to the backend (WebSocket), or undefined: no upgrade to pass on.
 * h2c is taken out (RFC 9113 §3.1 deprecates it, and after a 101 the proxy would relay HTTP/2 it cannot see into),
 * so the backend answers such a request in plain HTTP/1.1. An Upgrade that Connection does not name, or one in an
 * HTTP/1.0 request, is ignored (RFC 9110 §7.8).
 */
export const upgradeOffer = (head: RequestHead): string | undefined => {
  const value = head.upgrade
  if (value === undefined || head.minor === 0 || !hasToken(head.connection, "upgrade")) return undefined
  let kept = ""
  for (const part of value.split(",")) {
    const t = part.trim()
    if (t.length === 0 || t.toLowerCase() === "h2c") continue
    kept = kept.length === 0 ? t : `${kept}, ${t}`
  }
  return kept.length === 0 ? undefined : kept
}

/** Whether a 101's Upgrade switches only to protocols the backend was offered (RFC 9110 §7.8). */
export const upgradeGranted = (offer: string, answer: string | undefined): boolean => {
  if (answer === undefined) return false
  const offered = protocolNames(offer)
  const chosen = protocolNames(answer)
  return chosen.length > 0 && chosen.every((p) => offered.includes(p))
}

/** Whether the client keeps its connection open after this exchange. */
export const clientKeepsAlive = (head: RequestHead): boolean =>
  head.minor >= 1 ? !hasToken(head.connection, "close") : hasToken(head.connection, "keep-alive")
