// Proxy → client: OP_REPLY, the only answer a legacy OP_QUERY handshake understands.
import type { Document } from "bson"
import { type Decoded, frame, invalid, need } from "./Decode.ts"
import { documentAt, documentBytes } from "./Document.ts"
import { decodeHeader, type MessageHeader, writeHeader } from "./MessageHeader.ts"
import { HEADER_LENGTH, MAX_MESSAGE_SIZE, OP_REPLY, opcodeName } from "./Protocol.ts"

export interface OpReply {
  readonly header: MessageHeader
  readonly responseFlags: number
  readonly cursorId: bigint
  readonly startingFrom: number
  readonly numberReturned: number
  /** Views into the input. */
  readonly documents: ReadonlyArray<Buffer>
}

const FIXED = HEADER_LENGTH + 4 + 8 + 4 + 4

export interface OpReplyInput {
  readonly requestId: number
  readonly responseTo: number
  readonly responseFlags?: number
  readonly documents: ReadonlyArray<Document | Uint8Array>
}

/** Builds an OP_REPLY without a cursor: a command's answer. */
export const encodeOpReply = (input: OpReplyInput): Buffer => {
  const documents = input.documents.map(documentBytes)
  const length = FIXED + documents.reduce((n, d) => n + d.length, 0)
  const out = Buffer.allocUnsafe(length)
  writeHeader(out, {
    messageLength: length,
    requestId: input.requestId,
    responseTo: input.responseTo,
    opCode: OP_REPLY
  })
  out.writeInt32LE(input.responseFlags ?? 0, HEADER_LENGTH)
  out.writeBigInt64LE(0n, HEADER_LENGTH + 4)
  out.writeInt32LE(0, HEADER_LENGTH + 12)
  out.writeInt32LE(documents.length, HEADER_LENGTH + 16)
  let offset = FIXED
  for (const d of documents) {
    out.set(d, offset)
    offset += d.length
  }
  return out
}

/** One whole OP_REPLY off the front of `buf` (what a client reads). Never throws. */
export const decodeOpReply = (buf: Buffer, maxLength: number = MAX_MESSAGE_SIZE): Decoded<OpReply> => {
  const decoded = decodeHeader(buf, maxLength)
  if (decoded._tag !== "Frame") return decoded
  const header = decoded.value
  if (header.opCode !== OP_REPLY) return invalid(`expected OP_REPLY, got ${opcodeName(header.opCode)}`)
  const length = header.messageLength
  if (length < FIXED) return invalid(`OP_REPLY of ${length} bytes is too short (at least ${FIXED})`)
  if (buf.length < length) return need(length - buf.length)
  const msg = buf.subarray(0, length)
  const numberReturned = msg.readInt32LE(HEADER_LENGTH + 16)
  if (numberReturned < 0) return invalid(`OP_REPLY numberReturned ${numberReturned} is negative`)
  const documents: Array<Buffer> = []
  let offset = FIXED
  while (offset < length) {
    const doc = documentAt(msg, offset, length)
    if (typeof doc === "string") return invalid(`OP_REPLY document: ${doc}`)
    documents.push(doc)
    offset += doc.length
  }
  if (documents.length !== numberReturned) {
    return invalid(`OP_REPLY says ${numberReturned} documents but holds ${documents.length}`)
  }
  return frame(
    {
      header,
      responseFlags: msg.readInt32LE(HEADER_LENGTH),
      cursorId: msg.readBigInt64LE(HEADER_LENGTH + 4),
      startingFrom: msg.readInt32LE(HEADER_LENGTH + 12),
      numberReturned,
      documents
    },
    length
  )
}
