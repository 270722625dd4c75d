// Both directions: the packet framing, int<3> payload length + int<1> sequence id; a payload of 2^24-1 bytes or more
// continues in the next packet, so one logical payload may span several.
import { type Decoded, frame, type Invalid, invalid, isInvalid, need } from "./Decode.ts"
import { MAX_PACKET_PAYLOAD, PACKET_HEADER } from "./Protocol.ts"

export interface Packet {
  /** Sequence id of the first part. */
  readonly sequenceId: number
  /** Sequence id of the last part: the peer's answer carries this plus one. */
  readonly lastSequenceId: number
  /** The logical payload. A single-part payload is a view into the input, not a copy. */
  readonly payload: Buffer
}

/** One message and the ids of the packets it came in. */
export interface Framed<A> {
  readonly sequenceId: number
  readonly lastSequenceId: number
  readonly message: A
}

/** Start of the Invalid reason for a payload above the limit, so callers can answer "packet too large" (1153). */
export const PACKET_TOO_LARGE = "packet too large"

/** MySQL's own ceiling for max_allowed_packet. */
export const DEFAULT_MAX_PAYLOAD = 0x40000000

/**
 * One logical packet off the front of `buf`. Refuses a payload above `maxPayload` as soon as its length is visible,
 * and a continuation whose sequence id does not follow on. Never throws.
 */
export const decodePacket = (buf: Buffer, maxPayload: number = DEFAULT_MAX_PAYLOAD): Decoded<Packet> => {
  let offset = 0
  let total = 0
  let first = -1
  let last = -1
  let parts: Buffer[] | undefined
  for (;;) {
    if (buf.length < offset + PACKET_HEADER) return need(offset + PACKET_HEADER - buf.length)
    const length = buf.readUIntLE(offset, 3)
    const sequenceId = buf[offset + 3]!
    if (first < 0) first = sequenceId
    else if (sequenceId !== ((last + 1) & 0xff)) {
      return invalid(`packet continuation has sequence id ${sequenceId}, expected ${(last + 1) & 0xff}`)
    }
    last = sequenceId
    total += length
    if (total > maxPayload) {
      return invalid(
        `${PACKET_TOO_LARGE}: ${total} bytes${parts || length === MAX_PACKET_PAYLOAD ? " or more" : ""}, the limit is ${maxPayload}`
      )
    }
    const end = offset + PACKET_HEADER + length
    if (buf.length < end) return need(end - buf.length)
    const part = buf.subarray(offset + PACKET_HEADER, end)
    offset = end
    if (length < MAX_PACKET_PAYLOAD) {
      const payload = parts === undefined ? part : Buffer.concat([...parts, part], total)
      return frame({ sequenceId: first, lastSequenceId: last, payload }, offset)
    }
    ;(parts ??= []).push(part)
  }
}

/** Frames `payload` starting at `sequenceId`, splitting it in parts of 2^24-1 bytes (and an empty last part if needed). */
export const encodePacket = (payload: Uint8Array, sequenceId: number): Buffer => {
  const count = Math.floor(payload.length / MAX_PACKET_PAYLOAD) + 1
  const out = Buffer.allocUnsafe(payload.length + count * PACKET_HEADER)
  let offset = 0
  for (let i = 0; i < count; i++) {
    const start = i * MAX_PACKET_PAYLOAD
    const length = Math.min(MAX_PACKET_PAYLOAD, payload.length - start)
    out.writeUIntLE(length, offset, 3)
    out[offset + 3] = (sequenceId + i) & 0xff
    out.set(payload.subarray(start, start + length), offset + PACKET_HEADER)
    offset += PACKET_HEADER + length
  }
  return out
}

/** The sequence id the next packet after `framed` carries, from either side. */
export const nextSequenceId = (packet: { readonly lastSequenceId: number }): number =>
  (packet.lastSequenceId + 1) & 0xff

/** Lifts a payload parser to whole packets: what readers of a socket need. */
export const decodeMessage = <A>(
  buf: Buffer,
  parse: (payload: Buffer) => A | Invalid,
  maxPayload: number = DEFAULT_MAX_PAYLOAD
): Decoded<Framed<A>> => {
  const packet = decodePacket(buf, maxPayload)
  if (packet._tag !== "Frame") return packet
  const message = parse(packet.value.payload)
  if (isInvalid(message)) return message
  return frame(
    { sequenceId: packet.value.sequenceId, lastSequenceId: packet.value.lastSequenceId, message },
    packet.size
  )
}
