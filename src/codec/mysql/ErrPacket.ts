// Server → client: ERR_Packet (0xFF), an error code, a SQLSTATE and a message; what every MySQL client prints.
import { type Decoded, describeByte, type Invalid, invalid } from "./Decode.ts"
import { DEFAULT_MAX_PAYLOAD, decodeMessage, type Framed } from "./Packet.ts"
import { Marker } from "./Protocol.ts"
import { Reader, utf8Lenient } from "./Reader.ts"

export interface ErrPacket {
  readonly _tag: "ErrPacket"
  readonly code: number
  /** Five characters, e.g. 42000; undefined from a pre-4.1 server or a greeting-time error. */
  readonly sqlState: string | undefined
  readonly message: string
}

export interface ErrPacketInput {
  readonly code: number
  readonly sqlState: string
  readonly message: string
}

const SQLSTATE = /^[0-9A-Z]{5}$/

/** Never throws. */
export const parseErrPacket = (payload: Buffer): ErrPacket | Invalid => {
  const r = new Reader(payload)
  const marker = r.u8()
  if (marker === undefined) return invalid("empty packet where ERR was expected")
  if (marker !== Marker.ERR) return invalid(`expected ERR (0xff), got ${describeByte(marker)}`)
  const code = r.u16()
  if (code === undefined) return invalid("ERR packet too short")
  let sqlState: string | undefined
  if (r.remaining >= 6 && payload[r.offset] === 0x23 /* '#' */) {
    r.offset++
    sqlState = r.bytes(5)!.toString("latin1")
  }
  return { _tag: "ErrPacket", code, sqlState, message: utf8Lenient(r.rest()) }
}

export const decodeErrPacket = (buf: Buffer, maxPayload = DEFAULT_MAX_PAYLOAD): Decoded<Framed<ErrPacket>> =>
  decodeMessage(buf, parseErrPacket, maxPayload)

/** The payload, message in UTF-8 (the charset clients assume before theirs is settled). Throws on a bad SQLSTATE. */
export const encodeErrPacket = (input: ErrPacketInput): Buffer => {
  if (!SQLSTATE.test(input.sqlState)) throw new RangeError(`invalid SQLSTATE ${JSON.stringify(input.sqlState)}`)
  if (!Number.isInteger(input.code) || input.code < 0 || input.code > 0xffff) {
    throw new RangeError(`invalid error code ${input.code}`)
  }
  const message = Buffer.from(input.message, "utf8")
  const out = Buffer.allocUnsafe(9 + message.length)
  out[0] = Marker.ERR
  out.writeUInt16LE(input.code, 1)
  out[3] = 0x23
  out.write(input.sqlState, 4, "latin1")
  message.copy(out, 9)
  return out
}
