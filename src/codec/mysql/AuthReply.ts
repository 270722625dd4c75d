// Server → client: whatever follows a HandshakeResponse41 or an auth response: OK, ERR, AuthSwitchRequest,
// AuthMoreData or (MySQL 8.0.27+) AuthNextFactor. Telling them apart takes the first byte.
import { describeByte, type Invalid, invalid } from "./Decode.ts"
import { Marker } from "./Protocol.ts"

export type AuthReply = "OK" | "ERR" | "AuthSwitchRequest" | "AuthMoreData" | "AuthNextFactor"

/** Never throws. */
export const classifyAuthReply = (payload: Buffer): AuthReply | Invalid => {
  if (payload.length === 0) return invalid("empty packet during authentication")
  switch (payload[0]) {
    case Marker.OK:
      return "OK"
    case Marker.ERR:
      return "ERR"
    case Marker.EOF:
      return "AuthSwitchRequest"
    case Marker.AUTH_MORE_DATA:
      return "AuthMoreData"
    case Marker.AUTH_NEXT_FACTOR:
      return "AuthNextFactor"
    default:
      return invalid(`unexpected packet ${describeByte(payload[0]!)} during authentication`)
  }
}
