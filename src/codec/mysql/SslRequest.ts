// Client → server: SSLRequest, the first 32 bytes of a HandshakeResponse41 with CLIENT_SSL; TLS starts right after it.
import { type Invalid, invalid } from "./Decode.ts"
import { Capability, hasCapability } from "./Protocol.ts"

export interface SslRequest {
  readonly _tag: "SSLRequest"
  readonly capabilities: number
  readonly maxPacketSize: number
  readonly characterSet: number
  /** MariaDB's extended client capabilities (last 4 filler bytes); 0 when the client sets CLIENT_MYSQL. */
  readonly mariadbCapabilities: number
}

/** Payload length of an SSLRequest, and of the fixed head every HandshakeResponse41 starts with. */
export const SSL_REQUEST_LENGTH = 32

/** The fixed head shared by SSLRequest and HandshakeResponse41: capabilities, max packet, charset, 23-byte filler. */
export const parseResponseHead = (payload: Buffer): SslRequest | Invalid => {
  if (payload.length < 4) return invalid(`handshake response too short: ${payload.length} bytes`)
  const capabilities = payload.readUInt32LE(0)
  if (!hasCapability(capabilities, Capability.PROTOCOL_41)) {
    return invalid("client does not speak protocol 4.1 (CLIENT_PROTOCOL_41 unset)")
  }
  if (payload.length < SSL_REQUEST_LENGTH) return invalid(`handshake response too short: ${payload.length} bytes`)
  return {
    _tag: "SSLRequest",
    capabilities,
    maxPacketSize: payload.readUInt32LE(4),
    characterSet: payload[8]!,
    mariadbCapabilities: hasCapability(capabilities, Capability.LONG_PASSWORD) ? 0 : payload.readUInt32LE(28)
  }
}

/** The payload when it is an SSLRequest (exactly 32 bytes with CLIENT_SSL). Never throws. */
export const parseSslRequest = (payload: Buffer): SslRequest | Invalid => {
  if (payload.length !== SSL_REQUEST_LENGTH) return invalid(`SSLRequest must be 32 bytes, got ${payload.length}`)
  const head = parseResponseHead(payload)
  if (head._tag === "Invalid") return head
  if (!hasCapability(head.capabilities, Capability.SSL)) return invalid("32-byte handshake response without CLIENT_SSL")
  return head
}

export interface ResponseHeadInput {
  readonly capabilities: number
  readonly maxPacketSize: number
  readonly characterSet: number
  /** MariaDB's extended capabilities; non-zero clears CLIENT_MYSQL (LONG_PASSWORD), which says to read them. */
  readonly mariadbCapabilities?: number | undefined
}

/** The 32-byte head of an SSLRequest or a HandshakeResponse41, capabilities written as given. */
export const encodeResponseHead = (input: ResponseHeadInput): Buffer => {
  const mariadb = (input.mariadbCapabilities ?? 0) >>> 0
  const out = Buffer.alloc(SSL_REQUEST_LENGTH)
  out.writeUInt32LE((mariadb === 0 ? input.capabilities : input.capabilities & ~Capability.LONG_PASSWORD) >>> 0, 0)
  out.writeUInt32LE(input.maxPacketSize >>> 0, 4)
  out[8] = input.characterSet
  out.writeUInt32LE(mariadb, 28)
  return out
}

/** An SSLRequest payload (frame it with sequence id 1): what the proxy sends a backend before starting TLS. */
export const encodeSslRequest = (input: ResponseHeadInput): Buffer =>
  encodeResponseHead({ ...input, capabilities: input.capabilities | Capability.SSL | Capability.PROTOCOL_41 })
