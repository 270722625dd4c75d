// Client → proxy: OP_COMPRESSED. The proxy's hello offers no compressor, so a driver never sends one before routing;
// one that arrives anyway is refused by name, which needs only the 9 bytes after the header.
import { type Decoded, frame, invalid, need } from "./Decode.ts"
import { decodeHeader, type MessageHeader, writeHeader } from "./MessageHeader.ts"
import { compressorName, HEADER_LENGTH, MAX_MESSAGE_SIZE, OP_COMPRESSED, opcodeName } from "./Protocol.ts"

export interface OpCompressed {
  readonly header: MessageHeader
  readonly originalOpcode: number
  readonly uncompressedSize: number
  readonly compressorId: number
  /** "snappy", "zlib", "zstd", "noop", or a description of an unknown id. */
  readonly compressor: string
}

/** Header, original opcode, uncompressed size, compressor id. */
export const OP_COMPRESSED_PREFIX = HEADER_LENGTH + 4 + 4 + 1

/** The prefix of an OP_COMPRESSED: Frame once its first 25 bytes are in (size 25; the payload is not read). */
export const decodeOpCompressed = (buf: Buffer, maxLength: number = MAX_MESSAGE_SIZE): Decoded<OpCompressed> => {
  const decoded = decodeHeader(buf, maxLength)
  if (decoded._tag !== "Frame") return decoded
  const header = decoded.value
  if (header.opCode !== OP_COMPRESSED) return invalid(`expected OP_COMPRESSED, got ${opcodeName(header.opCode)}`)
  if (header.messageLength < OP_COMPRESSED_PREFIX) {
    return invalid(`OP_COMPRESSED of ${header.messageLength} bytes is too short (at least ${OP_COMPRESSED_PREFIX})`)
  }
  if (buf.length < OP_COMPRESSED_PREFIX) return need(OP_COMPRESSED_PREFIX - buf.length)
  const compressorId = buf[HEADER_LENGTH + 8]!
  return frame(
    {
      header,
      originalOpcode: buf.readInt32LE(HEADER_LENGTH),
      uncompressedSize: buf.readInt32LE(HEADER_LENGTH + 4),
      compressorId,
      compressor: compressorName(compressorId)
    },
    OP_COMPRESSED_PREFIX
  )
}

/** Builds an OP_COMPRESSED around an already compressed payload (for specs: what a compressing driver sends). */
export const encodeOpCompressed = (input: {
  readonly requestId: number
  readonly originalOpcode: number
  readonly uncompressedSize: number
  readonly compressorId: number
  readonly payload: Uint8Array
}): Buffer => {
  const length = OP_COMPRESSED_PREFIX + input.payload.length
  const out = Buffer.allocUnsafe(length)
  writeHeader(out, { messageLength: length, requestId: input.requestId, responseTo: 0, opCode: OP_COMPRESSED })
  out.writeInt32LE(input.originalOpcode, HEADER_LENGTH)
  out.writeInt32LE(input.uncompressedSize, HEADER_LENGTH + 4)
  out[HEADER_LENGTH + 8] = input.compressorId
  out.set(input.payload, OP_COMPRESSED_PREFIX)
  return out
}
