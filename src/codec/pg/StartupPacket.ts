// Frontend → proxy: the first packet of a connection without TLS (StartupMessage, SSLRequest, GSSENCRequest or CancelRequest).
import { type Decoded, frame, invalid, need } from "./Decode.ts"
import {
  CANCEL_REQUEST_CODE,
  GSSENC_REQUEST_CODE,
  MAX_SECRET_KEY_LENGTH,
  MAX_STARTUP_PACKET_LENGTH,
  MIN_SECRET_KEY_LENGTH,
  PROTOCOL_3_0,
  SSL_REQUEST_CODE
} from "./Protocol.ts"
import { badLayout, noUser, type RefusedStartup, refusedByProxy, unsupportedProtocol } from "./StartupRefusal.ts"

export interface SSLRequest {
  readonly _tag: "SSLRequest"
}

export interface GSSENCRequest {
  readonly _tag: "GSSENCRequest"
}

export interface CancelRequest {
  readonly _tag: "CancelRequest"
  readonly processId: number
  /** 4 bytes from a 3.0 client, up to 256 from a 3.2 one. */
  readonly secretKey: Buffer
}

export interface StartupMessage {
  readonly _tag: "StartupMessage"
  readonly major: number
  readonly minor: number
  /** In wire order: user, database, application_name, options, replication, client_encoding, _pq_.* ... */
  readonly parameters: ReadonlyMap<string, string>
  /** The packet exactly as received, to replay to the backend when nothing needs rewriting. */
  readonly raw: Buffer
}

export type Startup = SSLRequest | GSSENCRequest | CancelRequest | StartupMessage | RefusedStartup

const HEADER = 8

// Frozen singletons: these two carry no data, so no allocation per connection.
const SSL_REQUEST: SSLRequest = Object.freeze({ _tag: "SSLRequest" })
const GSSENC_REQUEST: GSSENCRequest = Object.freeze({ _tag: "GSSENCRequest" })

// fatal: two different byte strings must never decode to the same routing key (U+FFFD would merge them).
// ignoreBOM: a leading U+FEFF is part of the name, not a marker to drop.
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

/**
 * Decodes the first packet a client sends, with the server's own outcomes: Invalid where PostgreSQL logs the problem
 * and closes without a byte (a length it cannot frame, a malformed CancelRequest), a RefusedStartup where it reads the
 * packet whole and answers FATAL (another protocol version, a bad parameter list, no user).
 * Bytes after `size` belong to the next packet: after an SSLRequest or a GSSENCRequest the client must send nothing
 * before the answer, so the listener must refuse leftover bytes there rather than replay them (CVE-2021-23214).
 * `maxLength` bounds the packet after its length word, as the server's MAX_STARTUP_PACKET_LENGTH does. Never throws.
 */
export const decodeStartup = (buf: Buffer, maxLength: number = MAX_STARTUP_PACKET_LENGTH): Decoded<Startup> => {
  if (buf.length < 4) return need(HEADER - buf.length)
  const length = buf.readInt32BE(0)
  // e.g. node-postgres's Terminate ('X' 0 0 0 4) sent before any startup, read as a length of 0x58000000.
  if (length < HEADER || length - 4 > maxLength) {
    return invalid(`invalid length of startup packet: ${length} (${HEADER} to ${maxLength + 4})`)
  }
  if (buf.length < HEADER) return need(length - buf.length)
  const code = buf.readInt32BE(4)
  // A cancel is answered with silence whatever is wrong with it: refuse a bad one as soon as it is visible.
  if (code === CANCEL_REQUEST_CODE) {
    const keyLength = length - 12
    if (keyLength < MIN_SECRET_KEY_LENGTH || keyLength > MAX_SECRET_KEY_LENGTH) {
      return invalid(
        `invalid length of CancelRequest: ${length} (secret key of ${MIN_SECRET_KEY_LENGTH} to ${MAX_SECRET_KEY_LENGTH} bytes expected)`
      )
    }
  }
  // Everything else is read whole before its code is looked at, as the server does.
  if (buf.length < length) return need(length - buf.length)
  switch (code) {
    // The server looks only at the code of these two, whatever their length.
    case SSL_REQUEST_CODE:
      return frame(SSL_REQUEST, length)
    case GSSENC_REQUEST_CODE:
      return frame(GSSENC_REQUEST, length)
    case CANCEL_REQUEST_CODE:
      return frame(
        {
          _tag: "CancelRequest",
          processId: buf.readInt32BE(8),
          // A copy, so a key held while the cancel is routed does not pin the socket's read buffer.
          secretKey: Buffer.from(buf.subarray(12, length))
        },
        length
      )
  }
  // A newer 3.x minor is not refused: the backend answers it with NegotiateProtocolVersion, which we relay.
  if (code >>> 16 !== 3) return frame(unsupportedProtocol(code), length)
  return decodeStartupMessage(buf, length, code)
}

const decodeStartupMessage = (buf: Buffer, length: number, code: number): Decoded<Startup> => {
  // Bounded to this packet so that a NUL in the next one can never terminate a string of this one.
  const packet = buf.subarray(0, length)
  const parameters = new Map<string, string>()
  // The server takes these two; the proxy cannot route on them. Reported after a layout error, as the server would.
  let unroutable: string | undefined
  let offset = HEADER
  for (;;) {
    if (offset >= length) return frame(badLayout(code), length)
    if (packet[offset] === 0) {
      if (offset !== length - 1) return frame(badLayout(code), length)
      break
    }
    const nameEnd = packet.indexOf(0, offset)
    const valueEnd = nameEnd < 0 ? -1 : packet.indexOf(0, nameEnd + 1)
    if (valueEnd < 0) return frame(badLayout(code), length)
    const name = decodeText(packet, offset, nameEnd)
    const value = decodeText(packet, nameEnd + 1, valueEnd)
    if (name === undefined || value === undefined) unroutable ??= "startup parameter is not valid UTF-8"
    // The server keeps the last of two "user"s; routing on the first would send a tenant's login elsewhere.
    else if (parameters.has(name)) unroutable ??= `duplicate startup parameter ${JSON.stringify(name)}`
    else parameters.set(name, value)
    offset = valueEnd + 1
  }
  if (unroutable !== undefined) return frame(refusedByProxy(unroutable, code), length)
  if (!parameters.get("user")) return frame(noUser(code), length)
  return frame(
    {
      _tag: "StartupMessage",
      major: code >>> 16,
      minor: code & 0xffff,
      parameters,
      // A copy so the message held until the backend answers does not pin the socket's whole read buffer.
      raw: Buffer.from(packet)
    },
    length
  )
}

const decodeText = (buf: Buffer, start: number, end: number): string | undefined => {
  try {
    return utf8.decode(buf.subarray(start, end))
  } catch {
    return undefined
  }
}

/** The database the server will open: it falls back to the user name when `database` is absent or empty. */
export const databaseOf = (message: StartupMessage): string =>
  message.parameters.get("database") || message.parameters.get("user") || ""

/**
 * Builds a StartupMessage, e.g. to replay a client's parameters with the tenant suffix stripped from `user`.
 * Throws RangeError on a NUL in a name or value or an empty name: the caller's bug, since decoded parameters have none.
 */
export const encodeStartup = (
  params: ReadonlyMap<string, string> | Readonly<Record<string, string>>,
  version: number = PROTOCOL_3_0
): Buffer => {
  const entries: Iterable<readonly [string, string]> =
    params instanceof Map ? params.entries() : Object.entries(params as Readonly<Record<string, string>>)
  const parts: Buffer[] = []
  let length = HEADER + 1
  for (const [name, value] of entries) {
    if (name === "") throw new RangeError("startup parameter name must not be empty")
    if (name.includes("\0") || value.includes("\0")) throw new RangeError(`startup parameter "${name}" contains NUL`)
    const part = Buffer.from(`${name}\0${value}\0`, "utf8")
    parts.push(part)
    length += part.length
  }
  const out = Buffer.allocUnsafe(length)
  out.writeInt32BE(length, 0)
  out.writeUInt32BE(version >>> 0, 4)
  let offset = HEADER
  for (const part of parts) offset += part.copy(out, offset)
  out[offset] = 0
  return out
}

/**
 * PostgreSQL 17 direct TLS: the client opens with a TLS handshake record (0x16) instead of a length. A real length's
 * first byte is 0 (at most 10,000), so one byte decides. "need" on an empty buffer.
 */
export const detectDirectTls = (buf: Uint8Array): boolean | "need" => {
  if (buf.length === 0) return "need"
  return buf[0] === 0x16
}
