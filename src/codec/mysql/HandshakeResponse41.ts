// Client → server: HandshakeResponse41, the login (user, auth response, database, plugin, attributes); or the
// SSLRequest that comes first when the client wants TLS.
import { type Decoded, type Invalid, invalid } from "./Decode.ts"
import { DEFAULT_MAX_PAYLOAD, decodeMessage, type Framed } from "./Packet.ts"
import { Capability, hasCapability } from "./Protocol.ts"
import { lenencIntSize, Reader, utf8Lenient, utf8OrUndefined, writeLenencInt } from "./Reader.ts"
import {
  encodeResponseHead,
  parseResponseHead,
  parseSslRequest,
  SSL_REQUEST_LENGTH,
  type SslRequest
} from "./SslRequest.ts"

export interface HandshakeResponse41 {
  readonly _tag: "HandshakeResponse41"
  readonly capabilities: number
  readonly maxPacketSize: number
  readonly characterSet: number
  readonly mariadbCapabilities: number
  readonly user: string
  /** Computed by the client from the nonce it was given; a copy. */
  readonly authResponse: Buffer
  /** Present only with CLIENT_CONNECT_WITH_DB; may be "" (mysql2 sets the flag and sends an empty name). */
  readonly database: string | undefined
  readonly authPlugin: string | undefined
  /** The connection attributes as sent (key/value pairs, without the total length in front); a copy. */
  readonly attributes: Buffer | undefined
  readonly zstdLevel: number | undefined
}

export type ClientHandshake = SslRequest | HandshakeResponse41

export interface HandshakeResponse41Input {
  readonly capabilities: number
  readonly maxPacketSize: number
  readonly characterSet: number
  readonly user: string
  readonly authResponse: Uint8Array
  readonly database?: string | undefined
  readonly authPlugin?: string | undefined
  readonly attributes?: Uint8Array | undefined
  readonly zstdLevel?: number | undefined
  /** MariaDB's extended capabilities to ask for; non-zero clears CLIENT_MYSQL (LONG_PASSWORD), which says to read them. */
  readonly mariadbCapabilities?: number | undefined
}

/** The payload of a HandshakeResponse41 (not an SSLRequest). Never throws. */
export const parseHandshakeResponse41 = (payload: Buffer): HandshakeResponse41 | Invalid => {
  const head = parseResponseHead(payload)
  if (head._tag === "Invalid") return head
  if (payload.length === SSL_REQUEST_LENGTH) return invalid("handshake response ends before the user name")
  const caps = head.capabilities
  const r = new Reader(payload, SSL_REQUEST_LENGTH)
  const userBytes = r.nulTerminated()
  if (userBytes === undefined) return invalid("handshake response: user name not NUL-terminated")
  const user = utf8OrUndefined(userBytes)
  if (user === undefined) return invalid("handshake response: user name is not valid UTF-8")
  let authResponse: Buffer | undefined
  if (hasCapability(caps, Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA)) authResponse = r.lenencBytes()
  else if (hasCapability(caps, Capability.SECURE_CONNECTION)) {
    const n = r.u8()
    authResponse = n === undefined ? undefined : r.bytes(n)
  } else authResponse = r.nulTerminated()
  if (authResponse === undefined) return invalid("handshake response: auth response cut short")
  let database: string | undefined
  if (hasCapability(caps, Capability.CONNECT_WITH_DB) && r.remaining > 0) {
    database = utf8OrUndefined(r.nulTerminatedOrRest())
    if (database === undefined) return invalid("handshake response: database name is not valid UTF-8")
  }
  let authPlugin: string | undefined
  if (hasCapability(caps, Capability.PLUGIN_AUTH) && r.remaining > 0) authPlugin = utf8Lenient(r.nulTerminatedOrRest())
  let attributes: Buffer | undefined
  if (hasCapability(caps, Capability.CONNECT_ATTRS) && r.remaining > 0) {
    const block = r.lenencBytes()
    if (block === undefined) return invalid("handshake response: connection attributes cut short")
    const pairs = decodeAttributes(block)
    if (pairs._tag === "Invalid") return pairs
    attributes = Buffer.from(block)
  }
  let zstdLevel: number | undefined
  if (hasCapability(caps, Capability.ZSTD_COMPRESSION_ALGORITHM) && r.remaining > 0) zstdLevel = r.u8()
  return {
    _tag: "HandshakeResponse41",
    capabilities: caps,
    maxPacketSize: head.maxPacketSize,
    characterSet: head.characterSet,
    mariadbCapabilities: head.mariadbCapabilities,
    user,
    authResponse: Buffer.from(authResponse),
    database,
    authPlugin,
    attributes,
    zstdLevel
  }
}

/** The client's first answer to a greeting: an SSLRequest (32 bytes) or a HandshakeResponse41. Never throws. */
export const parseClientHandshake = (payload: Buffer): ClientHandshake | Invalid =>
  payload.length === SSL_REQUEST_LENGTH ? parseSslRequest(payload) : parseHandshakeResponse41(payload)

/** A whole SSLRequest or HandshakeResponse41 packet off the front of `buf`. */
export const decodeClientHandshake = (
  buf: Buffer,
  maxPayload = DEFAULT_MAX_PAYLOAD
): Decoded<Framed<ClientHandshake>> => decodeMessage(buf, parseClientHandshake, maxPayload)

export interface AttributeList {
  readonly _tag: "Attributes"
  readonly pairs: ReadonlyArray<readonly [string, string]>
}

/** Key/value pairs of string<lenenc>, as in a HandshakeResponse41 (without the total length). Never throws. */
export const decodeAttributes = (block: Buffer): AttributeList | Invalid => {
  const r = new Reader(block)
  const pairs: Array<readonly [string, string]> = []
  while (r.remaining > 0) {
    const key = r.lenencBytes()
    const value = r.lenencBytes()
    if (key === undefined || value === undefined) return invalid("handshake response: malformed connection attributes")
    pairs.push([utf8Lenient(key), utf8Lenient(value)])
  }
  return { _tag: "Attributes", pairs }
}

/** The attribute block for HandshakeResponse41Input.attributes. */
export const encodeAttributes = (pairs: Iterable<readonly [string, string]>): Buffer => {
  const parts: Buffer[] = []
  for (const [key, value] of pairs) {
    for (const text of [key, value]) {
      const bytes = Buffer.from(text, "utf8")
      const out = Buffer.allocUnsafe(lenencIntSize(bytes.length) + bytes.length)
      bytes.copy(out, writeLenencInt(out, bytes.length, 0))
      parts.push(out)
    }
  }
  return Buffer.concat(parts)
}

/**
 * A HandshakeResponse41 payload laid out as `capabilities` say. Throws RangeError when the auth response does not fit
 * the layout (over 255 bytes without CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA, or a NUL in it without either flag).
 */
export const encodeHandshakeResponse41 = (input: HandshakeResponse41Input): Buffer => {
  const caps = input.capabilities >>> 0
  const auth = input.authResponse
  const parts: Uint8Array[] = []
  parts.push(encodeResponseHead({ ...input, capabilities: caps }), Buffer.from(`${input.user}\0`, "utf8"))
  if (hasCapability(caps, Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA)) {
    const len = Buffer.allocUnsafe(lenencIntSize(auth.length))
    writeLenencInt(len, auth.length, 0)
    parts.push(len, auth)
  } else if (hasCapability(caps, Capability.SECURE_CONNECTION)) {
    if (auth.length > 255)
      throw new RangeError("auth response over 255 bytes needs CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA")
    parts.push(Buffer.from([auth.length]), auth)
  } else {
    if (auth.includes(0)) throw new RangeError("auth response with a NUL byte needs CLIENT_SECURE_CONNECTION")
    parts.push(auth, Buffer.from([0]))
  }
  if (hasCapability(caps, Capability.CONNECT_WITH_DB)) parts.push(Buffer.from(`${input.database ?? ""}\0`, "utf8"))
  if (hasCapability(caps, Capability.PLUGIN_AUTH)) parts.push(Buffer.from(`${input.authPlugin ?? ""}\0`, "utf8"))
  if (hasCapability(caps, Capability.CONNECT_ATTRS)) {
    const attrs = input.attributes ?? Buffer.alloc(0)
    const len = Buffer.allocUnsafe(lenencIntSize(attrs.length))
    writeLenencInt(len, attrs.length, 0)
    parts.push(len, attrs)
  }
  if (hasCapability(caps, Capability.ZSTD_COMPRESSION_ALGORITHM)) parts.push(Buffer.from([input.zstdLevel ?? 3]))
  return Buffer.concat(parts)
}
