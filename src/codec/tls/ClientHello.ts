// Client → server: the first flight of a TLS connection, read only for its server name (SNI) and ALPN list.
// A peek: the decoder never asks for bytes to be removed, because the backend terminates TLS and needs them all.
import { type Decoded, describeByte, frame, invalid, need } from "./Decode.ts"
import {
  CONTENT_HANDSHAKE,
  EXTENSION_ALPN,
  EXTENSION_SERVER_NAME,
  HANDSHAKE_CLIENT_HELLO,
  HANDSHAKE_HEADER,
  MAX_CLIENT_HELLO,
  MAX_HOST_NAME,
  MAX_RECORD_FRAGMENT,
  NAME_TYPE_HOST_NAME,
  RECORD_HEADER
} from "./Protocol.ts"

export interface ClientHello {
  /** legacy_version of the handshake (0x0303 for TLS 1.2 and 1.3; 1.3 says so in supported_versions). */
  readonly version: number
  /** The server_name extension's host_name, as sent (ASCII, any case); undefined when the client sent none. */
  readonly serverName: string | undefined
  /** application_layer_protocol_negotiation, in the client's order; empty when absent. */
  readonly alpn: ReadonlyArray<string>
}

const noAlpn: ReadonlyArray<string> = Object.freeze([])

const u16 = (b: Buffer, i: number): number => (b[i]! << 8) | b[i + 1]!

/**
 * Decodes the ClientHello at the start of `buf`, which may be split across several handshake records (RFC 8446
 * §5.1 allows any fragmentation) and any number of reads. `size` is where the record that completes it ends; bytes
 * after that (TLS 1.3 early data, say) are not looked at. Never throws.
 */
export const decodeClientHello = (buf: Buffer): Decoded<ClientHello> => {
  const first = buf[0]
  if (first === undefined) return need(RECORD_HEADER)
  if (first !== CONTENT_HANDSHAKE) {
    // SSL 2.0's hello starts with a 2-byte length whose top bit is set, then message type 1: it has no extensions.
    if ((first & 0x80) !== 0 && buf[2] === 1) return invalid("SSL 2.0 ClientHello: no server name possible")
    return invalid(`not TLS: first byte ${describeByte(first)}, expected 0x16 (handshake record)`)
  }
  if (buf.length > 1 && buf[1] !== 3) return invalid(`not TLS: record version ${describeByte(buf[1]!)}.x`)

  // Walk the records. In the usual case the whole ClientHello is in the first one and is parsed in place; only a
  // fragmented one is copied together.
  let offset = 0
  let fragments: Array<Buffer> | undefined
  let single: Buffer | undefined
  let collected = 0
  let messageLength = -1
  for (;;) {
    const available = buf.length - offset
    const stillNeeded = messageLength < 0 ? HANDSHAKE_HEADER - collected : HANDSHAKE_HEADER + messageLength - collected
    if (available < RECORD_HEADER) return need(RECORD_HEADER - available + stillNeeded)
    if (buf[offset] !== CONTENT_HANDSHAKE) {
      return invalid(`record of content type ${buf[offset]} before the ClientHello was complete`)
    }
    if (buf[offset + 1] !== 3) return invalid(`not TLS: record version ${describeByte(buf[offset + 1]!)}.x`)
    const length = u16(buf, offset + 3)
    // RFC 8446 §5.1: handshake records are never empty (so a flood of empty ones cannot hold us either).
    if (length === 0) return invalid("empty handshake record")
    if (length > MAX_RECORD_FRAGMENT) return invalid(`record of ${length} bytes (the limit is ${MAX_RECORD_FRAGMENT})`)
    if (available < RECORD_HEADER + length) {
      // The handshake header usually arrives with the first bytes: refuse a non-ClientHello or an oversized one now
      // rather than after waiting for (up to 16 KB of) the rest.
      if (collected === 0 && available >= RECORD_HEADER + HANDSHAKE_HEADER) {
        const early = checkHeader(buf, offset + RECORD_HEADER)
        if (early !== undefined) return early
      }
      return need(RECORD_HEADER + length - available)
    }
    const fragment = buf.subarray(offset + RECORD_HEADER, offset + RECORD_HEADER + length)
    offset += RECORD_HEADER + length
    if (single === undefined && fragments === undefined) single = fragment
    else {
      fragments ??= [single!]
      fragments.push(fragment)
    }
    collected += length
    if (messageLength < 0 && collected >= HANDSHAKE_HEADER) {
      const head = fragments === undefined ? single! : Buffer.concat(fragments)
      const bad = checkHeader(head, 0)
      if (bad !== undefined) return bad
      messageLength = (head[1]! << 16) | (head[2]! << 8) | head[3]!
    }
    if (messageLength >= 0 && collected >= HANDSHAKE_HEADER + messageLength) break
  }
  const message = fragments === undefined ? single! : Buffer.concat(fragments)
  const body = message.subarray(HANDSHAKE_HEADER, HANDSHAKE_HEADER + messageLength)
  const parsed = parseBody(body)
  return typeof parsed === "string" ? invalid(`malformed ClientHello: ${parsed}`) : frame(parsed, offset)
}

/** Why the handshake header at `at` cannot start an acceptable ClientHello, if it cannot. */
const checkHeader = (b: Buffer, at: number): Decoded<never> | undefined => {
  if (b[at] !== HANDSHAKE_CLIENT_HELLO) {
    return invalid(`handshake message type ${b[at]} where a ClientHello (1) was expected`)
  }
  const size = HANDSHAKE_HEADER + ((b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!)
  return size > MAX_CLIENT_HELLO
    ? invalid(`ClientHello of ${size} bytes (the limit is ${MAX_CLIENT_HELLO})`)
    : undefined
}

/** The ClientHello body (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2), or why it is malformed. */
const parseBody = (b: Buffer): ClientHello | string => {
  const end = b.length
  // legacy_version (2) + random (32) + session id length (1)
  if (end < 35) return "too short"
  const version = u16(b, 0)
  let p = 34
  const sessionId = b[p]!
  if (sessionId > 32) return `session id of ${sessionId} bytes`
  p += 1 + sessionId
  if (p + 2 > end) return "truncated before the cipher suites"
  const suites = u16(b, p)
  if (suites < 2 || suites % 2 !== 0) return `cipher suites length ${suites}`
  p += 2 + suites
  if (p + 1 > end) return "truncated before the compression methods"
  const compression = b[p]!
  if (compression < 1) return "no compression method"
  p += 1 + compression
  if (p > end) return "truncated in the compression methods"
  // Extensions are optional (an SSL 3.0 style hello ends here).
  if (p === end) return { version, serverName: undefined, alpn: noAlpn }
  if (p + 2 > end) return "truncated extensions length"
  const extensionsEnd = p + 2 + u16(b, p)
  if (extensionsEnd !== end) return "extensions length does not match the message length"
  p += 2
  let serverName: string | undefined
  let alpn = noAlpn
  let seenSni = false
  let seenAlpn = false
  while (p < end) {
    if (p + 4 > end) return "truncated extension header"
    const type = u16(b, p)
    const length = u16(b, p + 2)
    p += 4
    if (p + length > end) return `extension ${type} overruns the message`
    if (type === EXTENSION_SERVER_NAME) {
      // RFC 8446 §4.2: at most one extension of each type; two server names would be ambiguous routing.
      if (seenSni) return "two server_name extensions"
      seenSni = true
      const name = parseServerName(b, p, p + length)
      if (typeof name === "object") return name.malformed
      serverName = name
    } else if (type === EXTENSION_ALPN) {
      if (seenAlpn) return "two ALPN extensions"
      seenAlpn = true
      const list = parseAlpn(b, p, p + length)
      if (typeof list === "string") return list
      alpn = list
    }
    p += length
  }
  return { version, serverName, alpn }
}

interface Malformed {
  readonly malformed: string
}
const malformed = (why: string): Malformed => ({ malformed: why })

/** The host_name, undefined when the list names none (only other name types), or why the extension is malformed. */
const parseServerName = (b: Buffer, start: number, end: number): string | undefined | Malformed => {
  if (end - start < 2) return malformed("server_name extension without a list")
  if (start + 2 + u16(b, start) !== end) return malformed("server_name list length does not match")
  let p = start + 2
  let host: string | undefined
  while (p < end) {
    if (p + 3 > end) return malformed("truncated server name entry")
    const type = b[p]!
    const length = u16(b, p + 1)
    p += 3
    if (p + length > end) return malformed("server name overruns its list")
    if (type === NAME_TYPE_HOST_NAME) {
      // RFC 6066 §3: one name per type.
      if (host !== undefined) return malformed("two host names in server_name")
      if (!isHostName(b, p, p + length)) return malformed("server name is not a DNS host name")
      host = b.toString("latin1", p, p + length)
    }
    p += length
  }
  return host
}

/**
 * Letters, digits, '-', '_' in dot-separated non-empty labels, no trailing dot (RFC 6066 §3). The name becomes a
 * routing key handed to resolvers (URLs, Redis fields, logs), so anything else is refused rather than passed on.
 */
const isHostName = (b: Buffer, start: number, end: number): boolean => {
  if (end - start < 1 || end - start > MAX_HOST_NAME) return false
  let label = 0
  for (let i = start; i < end; i++) {
    const c = b[i]!
    if (c === 0x2e) {
      if (label === 0) return false
      label = 0
      continue
    }
    const ok =
      (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x5f
    if (!ok || ++label > 63) return false
  }
  return label > 0
}

const parseAlpn = (b: Buffer, start: number, end: number): ReadonlyArray<string> | string => {
  if (end - start < 2) return "ALPN extension without a list"
  if (start + 2 + u16(b, start) !== end) return "ALPN list length does not match"
  let p = start + 2
  if (p === end) return "empty ALPN list"
  const names: Array<string> = []
  while (p < end) {
    const length = b[p]!
    p += 1
    if (length === 0 || p + length > end) return "malformed ALPN protocol name"
    names.push(b.toString("latin1", p, p + length))
    p += length
  }
  return names
}
