// Server → client: OK_Packet (0x00, or 0xFE with CLIENT_DEPRECATE_EOF) and the older EOF_Packet (0xFE, < 9 bytes).
import { type Decoded, describeByte, type Invalid, invalid } from "./Decode.ts"
import { DEFAULT_MAX_PAYLOAD, decodeMessage, type Framed } from "./Packet.ts"
import { Marker } from "./Protocol.ts"
import { Reader } from "./Reader.ts"

export interface OkPacket {
  readonly _tag: "OkPacket"
  readonly affectedRows: number
  readonly lastInsertId: number
  readonly statusFlags: number
  readonly warnings: number
  /** Human-readable info and, with CLIENT_SESSION_TRACK, session state changes: kept as bytes. */
  readonly info: Buffer
}

export interface EofPacket {
  readonly _tag: "EofPacket"
  readonly warnings: number
  readonly statusFlags: number
}

/** An EOF packet is 0xFE with at most 8 payload bytes; longer 0xFE packets are OKs (or AuthSwitchRequests). */
const EOF_MAX_LENGTH = 9

/** OK_Packet, protocol 4.1. Never throws. */
export const parseOkPacket = (payload: Buffer): OkPacket | Invalid => {
  const r = new Reader(payload)
  const marker = r.u8()
  if (marker === undefined) return invalid("empty packet where OK was expected")
  if (marker !== Marker.OK && !(marker === Marker.EOF && payload.length >= EOF_MAX_LENGTH)) {
    return invalid(`expected OK (0x00), got ${describeByte(marker)}`)
  }
  const affectedRows = r.lenencInt()
  const lastInsertId = r.lenencInt()
  const statusFlags = r.u16()
  const warnings = r.u16()
  if (affectedRows === undefined || lastInsertId === undefined || statusFlags === undefined || warnings === undefined) {
    return invalid("OK packet too short")
  }
  return { _tag: "OkPacket", affectedRows, lastInsertId, statusFlags, warnings, info: Buffer.from(r.rest()) }
}

export const decodeOkPacket = (buf: Buffer, maxPayload = DEFAULT_MAX_PAYLOAD): Decoded<Framed<OkPacket>> =>
  decodeMessage(buf, parseOkPacket, maxPayload)

/** EOF_Packet, protocol 4.1. Never throws. */
export const parseEofPacket = (payload: Buffer): EofPacket | Invalid => {
  if (payload.length === 0) return invalid("empty packet where EOF was expected")
  if (payload[0] !== Marker.EOF || payload.length >= EOF_MAX_LENGTH) {
    return invalid(`expected EOF (0xfe, under 9 bytes), got ${describeByte(payload[0]!)} of ${payload.length} bytes`)
  }
  if (payload.length < 5) return invalid("EOF packet too short")
  return { _tag: "EofPacket", warnings: payload.readUInt16LE(1), statusFlags: payload.readUInt16LE(3) }
}

export const decodeEofPacket = (buf: Buffer, maxPayload = DEFAULT_MAX_PAYLOAD): Decoded<Framed<EofPacket>> =>
  decodeMessage(buf, parseEofPacket, maxPayload)

/** An OK payload with no rows affected, for tests and fakes. */
export const encodeOkPacket = (input: { readonly statusFlags: number; readonly warnings?: number }): Buffer => {
  const out = Buffer.alloc(7)
  out[0] = Marker.OK
  out.writeUInt16LE(input.statusFlags, 3)
  out.writeUInt16LE(input.warnings ?? 0, 5)
  return out
}
