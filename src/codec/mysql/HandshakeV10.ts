// Server → client: the initial handshake (protocol 10), the first packet of every connection; carries the nonce.
import { type Decoded, describeByte, type Invalid, invalid } from "./Decode.ts"
import { DEFAULT_MAX_PAYLOAD, decodeMessage, type Framed } from "./Packet.ts"
import { Capability, hasCapability, Marker } from "./Protocol.ts"
import { Reader, utf8Lenient } from "./Reader.ts"

export interface HandshakeV10 {
  readonly _tag: "HandshakeV10"
  readonly serverVersion: string
  readonly connectionId: number
  /** The nonce (auth-plugin-data, both parts) without the NUL some servers put after it: 20 bytes for the usual plugins. */
  readonly authPluginData: Buffer
  readonly capabilities: number
  readonly characterSet: number
  readonly statusFlags: number
  /** MariaDB's extended capabilities, from the reserved bytes; 0 when the server sets CLIENT_MYSQL (LONG_PASSWORD). */
  readonly mariadbCapabilities: number
  /** Absent when the server does not speak CLIENT_PLUGIN_AUTH. */
  readonly authPlugin: string | undefined
}

export interface HandshakeV10Input {
  readonly serverVersion: string
  readonly connectionId: number
  /** At least 8 bytes; 20 for mysql_native_password and caching_sha2_password. Should contain no NUL byte. */
  readonly authPluginData: Uint8Array
  readonly capabilities: number
  readonly characterSet: number
  readonly statusFlags: number
  readonly authPlugin: string
  /** MariaDB's extended capabilities to offer; non-zero clears CLIENT_MYSQL (LONG_PASSWORD), which says to read them. */
  readonly mariadbCapabilities?: number | undefined
}

const PROTOCOL_VERSION = 10

/** The payload of a server greeting. Never throws. */
export const parseHandshakeV10 = (payload: Buffer): HandshakeV10 | Invalid => {
  const r = new Reader(payload)
  const version = r.u8()
  if (version === undefined) return invalid("empty server greeting")
  if (version === Marker.ERR) return invalid("the server answered with an error instead of a greeting")
  if (version !== PROTOCOL_VERSION) {
    return invalid(`unsupported server protocol version ${describeByte(version)}, expected 10`)
  }
  const serverVersion = r.nulTerminated()
  const connectionId = r.u32()
  const part1 = r.bytes(8)
  const filler = r.u8()
  const lower = r.u16()
  if (serverVersion === undefined || connectionId === undefined || part1 === undefined || lower === undefined) {
    return invalid("server greeting too short")
  }
  if (filler !== 0) return invalid("server greeting: missing filler after auth-plugin-data-part-1")
  // Pre-4.1 servers may stop here; the proxy needs 4.1 anyway, so the short form is decoded and then refused by callers.
  if (r.remaining === 0) {
    return {
      _tag: "HandshakeV10",
      serverVersion: utf8Lenient(serverVersion),
      connectionId,
      authPluginData: Buffer.from(part1),
      capabilities: lower,
      characterSet: 0,
      statusFlags: 0,
      mariadbCapabilities: 0,
      authPlugin: undefined
    }
  }
  const characterSet = r.u8()
  const statusFlags = r.u16()
  const upper = r.u16()
  const dataLength = r.u8()
  const reserved = r.bytes(10)
  if (
    characterSet === undefined ||
    statusFlags === undefined ||
    upper === undefined ||
    dataLength === undefined ||
    reserved === undefined
  ) {
    return invalid("server greeting too short")
  }
  const capabilities = (lower | (upper << 16)) >>> 0
  const mariadbCapabilities = hasCapability(capabilities, Capability.LONG_PASSWORD) ? 0 : reserved.readUInt32LE(6)
  let data: Buffer = part1
  if (hasCapability(capabilities, Capability.SECURE_CONNECTION)) {
    const part2 = r.bytes(Math.max(13, dataLength - 8))
    if (part2 === undefined) return invalid("server greeting: auth-plugin-data-part-2 cut short")
    data = Buffer.concat([part1, part2])
  }
  // auth-plugin-data length counts the NUL after the nonce (21 for a 20-byte nonce); part 2 is padded to 13 bytes.
  if (hasCapability(capabilities, Capability.PLUGIN_AUTH) && dataLength > 8) data = data.subarray(0, dataLength)
  if (data.length > 8 && data[data.length - 1] === 0) data = data.subarray(0, data.length - 1)
  let authPlugin: string | undefined
  if (hasCapability(capabilities, Capability.PLUGIN_AUTH)) {
    // MySQL before 5.5.10 left out the final NUL.
    authPlugin = utf8Lenient(r.nulTerminatedOrRest())
  }
  return {
    _tag: "HandshakeV10",
    serverVersion: utf8Lenient(serverVersion),
    connectionId,
    authPluginData: Buffer.from(data),
    capabilities,
    characterSet,
    statusFlags,
    mariadbCapabilities,
    authPlugin
  }
}

/** A whole greeting packet off the front of `buf`. */
export const decodeHandshakeV10 = (buf: Buffer, maxPayload = DEFAULT_MAX_PAYLOAD): Decoded<Framed<HandshakeV10>> =>
  decodeMessage(buf, parseHandshakeV10, maxPayload)

/**
 * The greeting payload (frame it with sequence id 0). CLIENT_SECURE_CONNECTION and CLIENT_PLUGIN_AUTH are always
 * written: every client the proxy serves needs both. Throws RangeError on a nonce shorter than 8 bytes (a caller bug).
 */
export const encodeHandshakeV10 = (input: HandshakeV10Input): Buffer => {
  const data = input.authPluginData
  if (data.length < 8) throw new RangeError("auth-plugin-data must have at least 8 bytes")
  const mariadb = (input.mariadbCapabilities ?? 0) >>> 0
  let capabilities = (input.capabilities | Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH) >>> 0
  if (mariadb !== 0) capabilities = (capabilities & ~Capability.LONG_PASSWORD) >>> 0
  const version = Buffer.from(input.serverVersion, "utf8")
  const plugin = Buffer.from(input.authPlugin, "utf8")
  // part 2 is the rest of the nonce plus its NUL, at least 13 bytes.
  const part2Length = Math.max(13, data.length - 8 + 1)
  const out = Buffer.alloc(
    1 + version.length + 1 + 4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10 + part2Length + plugin.length + 1
  )
  let o = 0
  out[o++] = PROTOCOL_VERSION
  o += version.copy(out, o)
  out[o++] = 0
  out.writeUInt32LE(input.connectionId >>> 0, o)
  o += 4
  out.set(data.subarray(0, 8), o)
  o += 8
  out[o++] = 0
  out.writeUInt16LE(capabilities & 0xffff, o)
  o += 2
  out[o++] = input.characterSet
  out.writeUInt16LE(input.statusFlags, o)
  o += 2
  out.writeUInt16LE(capabilities >>> 16, o)
  o += 2
  out[o++] = Math.min(255, data.length + 1)
  // 6 reserved bytes, then MariaDB's extended capabilities (or 4 more reserved bytes for MySQL).
  out.writeUInt32LE(mariadb, o + 6)
  o += 10
  out.set(data.subarray(8), o)
  o += part2Length
  o += plugin.copy(out, o)
  out[o] = 0
  return out
}
