// Server → client: AuthSwitchRequest (0xFE), "authenticate again with this plugin and this nonce"; the client
// answers with a bare AuthSwitchResponse packet holding the new auth data.
import { type Decoded, describeByte, type Invalid, invalid } from "./Decode.ts"
import { DEFAULT_MAX_PAYLOAD, decodeMessage, type Framed } from "./Packet.ts"
import { Marker } from "./Protocol.ts"
import { Reader, utf8Lenient } from "./Reader.ts"

export interface AuthSwitchRequest {
  readonly _tag: "AuthSwitchRequest"
  readonly plugin: string
  /** Plugin data as sent, e.g. a 20-byte nonce followed by a NUL; a copy. */
  readonly data: Buffer
}

/**
 * The payload of an AuthSwitchRequest. A lone 0xFE is the pre-4.1 "old password" switch, which no supported server
 * sends any more: Invalid. Never throws.
 */
export const parseAuthSwitchRequest = (payload: Buffer): AuthSwitchRequest | Invalid => {
  const r = new Reader(payload)
  const marker = r.u8()
  if (marker === undefined) return invalid("empty packet where an AuthSwitchRequest was expected")
  if (marker !== Marker.EOF) return invalid(`expected AuthSwitchRequest (0xfe), got ${describeByte(marker)}`)
  if (r.remaining === 0) return invalid("old-password AuthSwitchRequest (mysql_old_password) is not supported")
  const plugin = r.nulTerminated()
  if (plugin === undefined) return invalid("AuthSwitchRequest: plugin name not NUL-terminated")
  return { _tag: "AuthSwitchRequest", plugin: utf8Lenient(plugin), data: Buffer.from(r.rest()) }
}

export const decodeAuthSwitchRequest = (
  buf: Buffer,
  maxPayload = DEFAULT_MAX_PAYLOAD
): Decoded<Framed<AuthSwitchRequest>> => decodeMessage(buf, parseAuthSwitchRequest, maxPayload)

/** The payload; `data` goes as is, so pass the nonce with its trailing NUL (MySQL's own clients check the length). */
export const encodeAuthSwitchRequest = (plugin: string, data: Uint8Array): Buffer => {
  const name = Buffer.from(plugin, "utf8")
  const out = Buffer.allocUnsafe(1 + name.length + 1 + data.length)
  out[0] = Marker.EOF
  name.copy(out, 1)
  out[1 + name.length] = 0
  out.set(data, 2 + name.length)
  return out
}
