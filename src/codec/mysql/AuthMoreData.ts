// Server → client: AuthMoreData (0x01), a plugin's next step, e.g. caching_sha2_password's fast-auth verdict (0x03
// success, 0x04 "send the full password") or an RSA public key.
import { type Decoded, describeByte, type Invalid, invalid } from "./Decode.ts"
import { DEFAULT_MAX_PAYLOAD, decodeMessage, type Framed } from "./Packet.ts"
import { Marker } from "./Protocol.ts"

export interface AuthMoreData {
  readonly _tag: "AuthMoreData"
  /** A view into the payload, not a copy. */
  readonly data: Buffer
}

/** caching_sha2_password's one-byte verdicts after the scramble. */
export const CachingSha2 = {
  /** The scramble matched the server's cache: OK follows, the client sends nothing. */
  FAST_AUTH_SUCCESS: 0x03,
  /** Not cached: the client must send the password, in clear over TLS or RSA-encrypted otherwise. */
  PERFORM_FULL_AUTHENTICATION: 0x04,
  /** Client → server, without TLS: "send me your RSA public key". */
  REQUEST_PUBLIC_KEY: 0x02
} as const

/** Never throws. */
export const parseAuthMoreData = (payload: Buffer): AuthMoreData | Invalid => {
  if (payload.length === 0) return invalid("empty packet where AuthMoreData was expected")
  if (payload[0] !== Marker.AUTH_MORE_DATA) {
    return invalid(`expected AuthMoreData (0x01), got ${describeByte(payload[0]!)}`)
  }
  return { _tag: "AuthMoreData", data: payload.subarray(1) }
}

export const decodeAuthMoreData = (buf: Buffer, maxPayload = DEFAULT_MAX_PAYLOAD): Decoded<Framed<AuthMoreData>> =>
  decodeMessage(buf, parseAuthMoreData, maxPayload)

export const encodeAuthMoreData = (data: Uint8Array): Buffer => {
  const out = Buffer.allocUnsafe(1 + data.length)
  out[0] = Marker.AUTH_MORE_DATA
  out.set(data, 1)
  return out
}
