// Both directions: the 16-byte header in front of every MongoDB message: four little-endian int32s.
import { type Decoded, frame, invalid, need } from "./Decode.ts"
import { HEADER_LENGTH, MAX_MESSAGE_SIZE } from "./Protocol.ts"

export interface MessageHeader {
  /** The whole message, header included. */
  readonly messageLength: number
  readonly requestId: number
  /** The requestId this message answers; 0 in a request. */
  readonly responseTo: number
  readonly opCode: number
}

/**
 * The header, once 16 bytes are in. The length is checked as soon as its 4 bytes arrive, so a stream that is not
 * MongoDB (or that announces more than `maxLength`) is refused before anything is buffered for it. Never throws.
 */
export const decodeHeader = (buf: Buffer, maxLength: number = MAX_MESSAGE_SIZE): Decoded<MessageHeader> => {
  if (buf.length < 4) return need(HEADER_LENGTH - buf.length)
  const messageLength = buf.readInt32LE(0)
  if (messageLength < HEADER_LENGTH)
    return invalid(`invalid message length ${messageLength} (at least ${HEADER_LENGTH})`)
  if (messageLength > maxLength) {
    return invalid(`message of ${messageLength} bytes is larger than the limit of ${maxLength} bytes`)
  }
  if (buf.length < HEADER_LENGTH) return need(HEADER_LENGTH - buf.length)
  return frame(
    {
      messageLength,
      requestId: buf.readInt32LE(4),
      responseTo: buf.readInt32LE(8),
      opCode: buf.readInt32LE(12)
    },
    HEADER_LENGTH
  )
}

/** Writes a header at the start of `out` (which must hold at least 16 bytes). */
export const writeHeader = (out: Buffer, header: MessageHeader): void => {
  out.writeInt32LE(header.messageLength, 0)
  out.writeInt32LE(header.requestId | 0, 4)
  out.writeInt32LE(header.responseTo | 0, 8)
  out.writeInt32LE(header.opCode, 12)
}
