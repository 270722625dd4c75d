// Client → proxy: OP_QUERY, gone from servers since 5.1 except for the handshake: drivers still open with a legacy
// `isMaster` in it, on "admin.$cmd", because they cannot know yet whether the server speaks OP_MSG.
import type { Document } from "bson"
import { type Decoded, frame, invalid, need } from "./Decode.ts"
import { cstringAt, documentAt, documentBytes } from "./Document.ts"
import { decodeHeader, type MessageHeader, writeHeader } from "./MessageHeader.ts"
import { HEADER_LENGTH, MAX_HANDSHAKE_MESSAGE, OP_QUERY, opcodeName } from "./Protocol.ts"

export interface OpQuery {
  readonly header: MessageHeader
  readonly flags: number
  /** "db.collection"; a command goes to "db.$cmd". */
  readonly fullCollectionName: string
  readonly numberToSkip: number
  readonly numberToReturn: number
  /** The query document, for a command the command itself: a view into the input. */
  readonly query: Buffer
  readonly returnFieldsSelector: Buffer | undefined
}

/** Header, flags, a 1-byte name ("\0"), skip, return, a 5-byte document. */
const MIN_LENGTH = HEADER_LENGTH + 4 + 1 + 4 + 4 + 5

/** One whole OP_QUERY off the front of `buf`. The default limit is the handshake's: nothing else is accepted. */
export const decodeOpQuery = (buf: Buffer, maxLength: number = MAX_HANDSHAKE_MESSAGE): Decoded<OpQuery> => {
  const decoded = decodeHeader(buf, maxLength)
  if (decoded._tag !== "Frame") return decoded
  const header = decoded.value
  if (header.opCode !== OP_QUERY) return invalid(`expected OP_QUERY, got ${opcodeName(header.opCode)}`)
  const length = header.messageLength
  if (length < MIN_LENGTH) return invalid(`OP_QUERY of ${length} bytes is too short (at least ${MIN_LENGTH})`)
  if (buf.length < length) return need(length - buf.length)
  const msg = buf.subarray(0, length)
  const flags = msg.readInt32LE(HEADER_LENGTH)
  const name = cstringAt(msg, HEADER_LENGTH + 4, length)
  if (typeof name === "string") return invalid(`OP_QUERY collection name ${name}`)
  let offset = name.next
  if (offset + 8 > length) return invalid("OP_QUERY ends before numberToSkip/numberToReturn")
  const numberToSkip = msg.readInt32LE(offset)
  const numberToReturn = msg.readInt32LE(offset + 4)
  offset += 8
  const query = documentAt(msg, offset, length)
  if (typeof query === "string") return invalid(`OP_QUERY query: ${query}`)
  offset += query.length
  let returnFieldsSelector: Buffer | undefined
  if (offset < length) {
    const selector = documentAt(msg, offset, length)
    if (typeof selector === "string") return invalid(`OP_QUERY returnFieldsSelector: ${selector}`)
    if (offset + selector.length !== length) return invalid("OP_QUERY has bytes after its returnFieldsSelector")
    returnFieldsSelector = selector
  }
  return frame(
    { header, flags, fullCollectionName: name.text, numberToSkip, numberToReturn, query, returnFieldsSelector },
    length
  )
}

export interface OpQueryInput {
  readonly requestId: number
  readonly flags?: number
  readonly fullCollectionName: string
  readonly numberToSkip?: number
  /** -1 for a command: one reply document, no cursor. */
  readonly numberToReturn?: number
  readonly query: Document | Uint8Array
}

/** Builds an OP_QUERY (what a driver sends for its legacy handshake). Throws RangeError on a NUL in the name. */
export const encodeOpQuery = (input: OpQueryInput): Buffer => {
  if (input.fullCollectionName.includes("\0")) throw new RangeError("collection name contains NUL")
  const name = Buffer.from(`${input.fullCollectionName}\0`, "utf8")
  const query = documentBytes(input.query)
  const length = HEADER_LENGTH + 4 + name.length + 8 + query.length
  const out = Buffer.allocUnsafe(length)
  writeHeader(out, { messageLength: length, requestId: input.requestId, responseTo: 0, opCode: OP_QUERY })
  out.writeInt32LE(input.flags ?? 0, HEADER_LENGTH)
  let offset = HEADER_LENGTH + 4
  offset += name.copy(out, offset)
  out.writeInt32LE(input.numberToSkip ?? 0, offset)
  out.writeInt32LE(input.numberToReturn ?? -1, offset + 4)
  out.set(query, offset + 8)
  return out
}
