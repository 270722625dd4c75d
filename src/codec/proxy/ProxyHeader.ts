// Load balancer → proxy (and proxy → backend): the PROXY protocol header (HAProxy's spec, v1 text and v2 binary)
// that carries the real client address in front of the connection's own bytes.
import { isIP } from "node:net"
import ipaddr from "ipaddr.js"

import { type Decoded, frame as frameOf, invalid, need } from "../Decode.ts"

export type { Decoded }

export interface Address {
  readonly address: string
  readonly port: number
}

export interface ProxyHeader {
  readonly version: 1 | 2
  /** LOCAL: a health check from the balancer itself; the connection's own addresses stand. */
  readonly command: "PROXY" | "LOCAL"
  readonly family: "TCP4" | "TCP6" | "UNKNOWN"
  readonly source?: Address | undefined
  readonly destination?: Address | undefined
}

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a])
const V1_PREFIX = Buffer.from("PROXY ", "latin1")
/** The v1 spec's bound: 107 bytes including CRLF. */
const V1_MAX = 107
/** Addresses plus TLVs; HAProxy itself refuses more than a few hundred bytes. */
const V2_MAX_BODY = 2048

const frame = (value: ProxyHeader, size: number) => frameOf(value, size)

/** Whether `buf` starts like a PROXY header (either version): "need" while too short to tell. */
export const looksLikeProxyHeader = (buf: Uint8Array): boolean | "need" => {
  const n = Math.min(buf.length, V2_SIGNATURE.length)
  const v2 = V2_SIGNATURE.subarray(0, n).equals(Buffer.from(buf.subarray(0, n)))
  const m = Math.min(buf.length, V1_PREFIX.length)
  const v1 = V1_PREFIX.subarray(0, m).equals(Buffer.from(buf.subarray(0, m)))
  if (!v1 && !v2) return false
  return buf.length >= (v2 ? V2_SIGNATURE.length : V1_PREFIX.length) ? true : "need"
}

const port = (text: string): number | undefined =>
  /^\d{1,5}$/.test(text) && Number(text) <= 65535 ? Number(text) : undefined

const decodeV1 = (buf: Buffer): Decoded<ProxyHeader> => {
  const end = buf.indexOf("\r\n", 0, "latin1")
  if (end < 0) return buf.length >= V1_MAX ? invalid("PROXY v1 header longer than 107 bytes") : need(1)
  if (end + 2 > V1_MAX) return invalid("PROXY v1 header longer than 107 bytes")
  const parts = buf.subarray(0, end).toString("latin1").split(" ")
  if (parts[1] === "UNKNOWN") return frame({ version: 1, command: "PROXY", family: "UNKNOWN" }, end + 2)
  if (parts.length !== 6) return invalid("PROXY v1 header: expected 'PROXY TCP4|TCP6 src dst sport dport'")
  const [, family, src, dst, sport, dport] = parts as [string, string, string, string, string, string]
  const want = family === "TCP4" ? 4 : family === "TCP6" ? 6 : 0
  if (want === 0) return invalid(`PROXY v1 header: unknown family ${JSON.stringify(family)}`)
  const sp = port(sport)
  const dp = port(dport)
  if (isIP(src) !== want || isIP(dst) !== want || sp === undefined || dp === undefined) {
    return invalid("PROXY v1 header: bad address or port")
  }
  return frame(
    {
      version: 1,
      command: "PROXY",
      family: want === 4 ? "TCP4" : "TCP6",
      source: { address: src, port: sp },
      destination: { address: dst, port: dp }
    },
    end + 2
  )
}

const ipv6 = (b: Buffer) => ipaddr.fromByteArray([...b]).toString()

const decodeV2 = (buf: Buffer): Decoded<ProxyHeader> => {
  if (buf.length < 16) return need(16 - buf.length)
  const verCmd = buf[12]!
  if (verCmd >> 4 !== 2) return invalid(`PROXY v2 header: version ${verCmd >> 4}`)
  const command = verCmd & 0x0f
  if (command > 1) return invalid(`PROXY v2 header: unknown command ${command}`)
  const fam = buf[13]!
  const length = buf.readUInt16BE(14)
  if (length > V2_MAX_BODY) return invalid(`PROXY v2 header: ${length} bytes of addresses and TLVs is too many`)
  if (buf.length < 16 + length) return need(16 + length - buf.length)
  const size = 16 + length
  const body = buf.subarray(16, size)
  if (command === 0) return frame({ version: 2, command: "LOCAL", family: "UNKNOWN" }, size)
  // Only the transport matters here (low nibble 1 = STREAM); UDP and unix sockets are not proxied by polyproxy.
  if (fam === 0x11 && body.length >= 12) {
    const a = (o: number) => `${body[o]}.${body[o + 1]}.${body[o + 2]}.${body[o + 3]}`
    return frame(
      {
        version: 2,
        command: "PROXY",
        family: "TCP4",
        source: { address: a(0), port: body.readUInt16BE(8) },
        destination: { address: a(4), port: body.readUInt16BE(10) }
      },
      size
    )
  }
  if (fam === 0x21 && body.length >= 36) {
    return frame(
      {
        version: 2,
        command: "PROXY",
        family: "TCP6",
        source: { address: ipv6(body.subarray(0, 16)), port: body.readUInt16BE(32) },
        destination: { address: ipv6(body.subarray(16, 32)), port: body.readUInt16BE(34) }
      },
      size
    )
  }
  if (fam === 0x00) return frame({ version: 2, command: "PROXY", family: "UNKNOWN" }, size)
  return invalid(`PROXY v2 header: unsupported address family 0x${fam.toString(16)}`)
}

/** Decodes a PROXY header at the start of `buf`. Never throws. */
export const decodeProxyHeader = (buf: Buffer): Decoded<ProxyHeader> => {
  const looks = looksLikeProxyHeader(buf)
  if (looks === "need") return need(1)
  if (!looks) return invalid("expected a PROXY protocol header (v1 or v2) from a trusted load balancer")
  return buf[0] === 0x0d ? decodeV2(buf) : decodeV1(buf)
}

const v6bytes = (address: string): Buffer => Buffer.from(ipaddr.IPv6.parse(address).toByteArray())

/** Encodes a header for a backend that wants one (`metadata.proxyProtocol: 1 | 2`). */
export const encodeProxyHeader = (version: 1 | 2, sourceIn: Address, destinationIn: Address): Buffer => {
  // One family for both ends: an IPv4 end next to an IPv6 one is written in its IPv4-mapped IPv6 form.
  const mixed = isIP(sourceIn.address) + isIP(destinationIn.address) === 10
  const mapped = (a: Address): Address =>
    mixed && isIP(a.address) === 4 ? { ...a, address: `::ffff:${a.address}` } : a
  const source = mapped(sourceIn)
  const destination = mapped(destinationIn)
  const v4 = isIP(source.address) === 4 && isIP(destination.address) === 4
  const v6 = isIP(source.address) === 6 && isIP(destination.address) === 6
  if (version === 1) {
    if (!v4 && !v6) return Buffer.from("PROXY UNKNOWN\r\n", "latin1")
    const fam = v4 ? "TCP4" : "TCP6"
    return Buffer.from(
      `PROXY ${fam} ${source.address} ${destination.address} ${source.port} ${destination.port}\r\n`,
      "latin1"
    )
  }
  const body = v4
    ? Buffer.concat([
        Buffer.from(source.address.split(".").map(Number)),
        Buffer.from(destination.address.split(".").map(Number)),
        Buffer.alloc(4)
      ])
    : v6
      ? Buffer.concat([v6bytes(source.address), v6bytes(destination.address), Buffer.alloc(4)])
      : Buffer.alloc(0)
  if (v4 || v6) {
    body.writeUInt16BE(source.port, body.length - 4)
    body.writeUInt16BE(destination.port, body.length - 2)
  }
  const head = Buffer.alloc(16)
  V2_SIGNATURE.copy(head, 0)
  head[12] = 0x21
  head[13] = v4 ? 0x11 : v6 ? 0x21 : 0x00
  head.writeUInt16BE(body.length, 14)
  return Buffer.concat([head, body])
}
