// What every message after the startup shares, whichever way it goes: Byte1 type, Int32 length counting itself but
// not the type, then the body. The backend and frontend decoders differ only in the side their reasons name.
import { type Decoded, describeByte, frame, invalid, need } from "./Decode.ts"

export interface TypedMessage {
  /** One character: "R", "Z", "p", "Q", ... */
  readonly type: string
  /** A view into the input, not a copy: take what you need before the buffer is reused. */
  readonly body: Buffer
}

const HEADER = 5

/** Frames one message off the front of `buf`; `maxLength` bounds the length word. Never throws. */
export const frameTypedMessage = (
  buf: Buffer,
  maxLength: number,
  side: "backend" | "frontend"
): Decoded<TypedMessage> => {
  if (buf.length < HEADER) return need(HEADER - buf.length)
  const typeByte = buf[0]!
  // Every message type is a printable ASCII character; anything else (a TLS alert, binary junk) is not PostgreSQL.
  if (typeByte < 0x21 || typeByte > 0x7e) return invalid(`invalid ${side} message type ${describeByte(typeByte)}`)
  const length = buf.readInt32BE(1)
  if (length < 4) return invalid(`invalid ${side} message length ${length} (at least 4)`)
  if (length > maxLength) return invalid(`${side} message too long: ${length} bytes (at most ${maxLength})`)
  const size = 1 + length
  if (buf.length < size) return need(size - buf.length)
  return frame({ type: String.fromCharCode(typeByte), body: buf.subarray(HEADER, size) }, size)
}

/** A whole message: type byte, length word, body. */
export const encodeTypedMessage = (type: string, body: Uint8Array = new Uint8Array()): Buffer => {
  const out = Buffer.allocUnsafe(HEADER + body.length)
  out[0] = type.charCodeAt(0)
  out.writeInt32BE(4 + body.length, 1)
  out.set(body, HEADER)
  return out
}
