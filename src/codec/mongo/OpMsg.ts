// Both directions: OP_MSG, the message of every command since MongoDB 3.6: flag bits, one body document (section
// kind 0), any document sequences (kind 1), and an optional CRC-32C checksum.
import type { Document } from "bson"
import { type Decoded, frame, invalid, need } from "./Decode.ts"
import { cstringAt, documentAt, documentBytes } from "./Document.ts"
import { decodeHeader, type MessageHeader, writeHeader } from "./MessageHeader.ts"
import { HEADER_LENGTH, MAX_MESSAGE_SIZE, OP_MSG, OpMsgFlags, opcodeName } from "./Protocol.ts"

export interface DocumentSequence {
  /** The command field the documents belong to, e.g. "documents" of an insert. */
  readonly identifier: string
  /** Views into the input. */
  readonly documents: ReadonlyArray<Buffer>
}

export interface OpMsg {
  readonly header: MessageHeader
  readonly flagBits: number
  /** The kind-0 document, a view into the input: copy what you keep. */
  readonly body: Buffer
  readonly sequences: ReadonlyArray<DocumentSequence>
  /** Present when flag bit 0 is set. Not verified here: a relay passes the bytes on untouched. */
  readonly checksum: number | undefined
}

/** Flag bits 20 bytes in, then at least one section kind byte and a 5-byte document. */
export const MIN_OP_MSG_LENGTH = HEADER_LENGTH + 4 + 1 + 5

/** Why the flag bits cannot be accepted, or undefined: an unknown bit among 0-15 is an error by the OP_MSG spec. */
export const flagBitsProblem = (flagBits: number): string | undefined => {
  const unknownRequired = flagBits & 0xffff & ~(OpMsgFlags.checksumPresent | OpMsgFlags.moreToCome)
  return unknownRequired === 0
    ? undefined
    : `OP_MSG sets unknown required flag bits 0x${unknownRequired.toString(16).padStart(4, "0")}`
}

/** One whole OP_MSG off the front of `buf`. Never throws. */
export const decodeOpMsg = (buf: Buffer, maxLength: number = MAX_MESSAGE_SIZE): Decoded<OpMsg> => {
  const decoded = decodeHeader(buf, maxLength)
  if (decoded._tag !== "Frame") return decoded
  const header = decoded.value
  if (header.opCode !== OP_MSG) return invalid(`expected OP_MSG, got ${opcodeName(header.opCode)}`)
  const length = header.messageLength
  if (length < MIN_OP_MSG_LENGTH)
    return invalid(`OP_MSG of ${length} bytes is too short (at least ${MIN_OP_MSG_LENGTH})`)
  if (buf.length < length) return need(length - buf.length)
  // Bounded to this message, so that bytes of the next one can never complete a section of this one.
  const msg = buf.subarray(0, length)
  const flagBits = msg.readUInt32LE(HEADER_LENGTH)
  const flagProblem = flagBitsProblem(flagBits)
  if (flagProblem !== undefined) return invalid(flagProblem)
  const hasChecksum = (flagBits & OpMsgFlags.checksumPresent) !== 0
  const end = hasChecksum ? length - 4 : length
  let body: Buffer | undefined
  const sequences: Array<DocumentSequence> = []
  let offset = HEADER_LENGTH + 4
  if (offset >= end) return invalid("OP_MSG has no sections")
  while (offset < end) {
    const kind = msg[offset++]
    if (kind === 0) {
      if (body !== undefined) return invalid("OP_MSG has more than one body section (kind 0)")
      const doc = documentAt(msg, offset, end)
      if (typeof doc === "string") return invalid(`OP_MSG body: ${doc}`)
      body = doc
      offset += doc.length
    } else if (kind === 1) {
      const sequence = sequenceAt(msg, offset, end)
      if (typeof sequence === "string") return invalid(`OP_MSG document sequence: ${sequence}`)
      sequences.push(sequence.value)
      offset = sequence.next
    } else {
      return invalid(`OP_MSG has a section of unknown kind ${kind}`)
    }
  }
  if (body === undefined) return invalid("OP_MSG has no body section (kind 0)")
  return frame(
    { header, flagBits, body, sequences, checksum: hasChecksum ? msg.readUInt32LE(length - 4) : undefined },
    length
  )
}

/** A kind-1 section whose int32 size starts at `offset`. */
export const sequenceAt = (
  msg: Buffer,
  offset: number,
  end: number
): { readonly value: DocumentSequence; readonly next: number } | string => {
  if (offset + 4 > end) return "size runs past the end of the message"
  const size = msg.readInt32LE(offset)
  // The size counts itself and a NUL-terminated identifier, at least "x\0".
  if (size < 6) return `invalid size ${size}`
  if (size > end - offset) return `size ${size} runs past the end of the message`
  const sequenceEnd = offset + size
  const identifier = cstringAt(msg, offset + 4, sequenceEnd)
  if (typeof identifier === "string") return `identifier ${identifier}`
  if (identifier.text === "") return "empty identifier"
  const documents: Array<Buffer> = []
  let at = identifier.next
  while (at < sequenceEnd) {
    const doc = documentAt(msg, at, sequenceEnd)
    if (typeof doc === "string") return doc
    documents.push(doc)
    at += doc.length
  }
  return { value: { identifier: identifier.text, documents }, next: sequenceEnd }
}

export interface OpMsgInput {
  readonly requestId: number
  /** The requestId answered; 0 (the default) for a request. */
  readonly responseTo?: number
  /** Bit 0 (checksum) is never written: no checksum is computed. */
  readonly flagBits?: number
  readonly body: Document | Uint8Array
  readonly sequences?: ReadonlyArray<{
    readonly identifier: string
    readonly documents: ReadonlyArray<Document | Uint8Array>
  }>
}

/** Builds an OP_MSG. Throws RangeError on a sequence identifier with a NUL (the caller's constant). */
export const encodeOpMsg = (input: OpMsgInput): Buffer => {
  const body = documentBytes(input.body)
  const sequences = (input.sequences ?? []).map((s) => {
    if (s.identifier.includes("\0")) throw new RangeError("document sequence identifier contains NUL")
    const identifier = Buffer.from(`${s.identifier}\0`, "utf8")
    const documents = s.documents.map(documentBytes)
    const size = 4 + identifier.length + documents.reduce((n, d) => n + d.length, 0)
    return { identifier, documents, size }
  })
  const length = HEADER_LENGTH + 4 + 1 + body.length + sequences.reduce((n, s) => n + 1 + s.size, 0)
  const out = Buffer.allocUnsafe(length)
  writeHeader(out, {
    messageLength: length,
    requestId: input.requestId,
    responseTo: input.responseTo ?? 0,
    opCode: OP_MSG
  })
  out.writeUInt32LE((input.flagBits ?? 0) & ~OpMsgFlags.checksumPresent, HEADER_LENGTH)
  let offset = HEADER_LENGTH + 4
  out[offset++] = 0
  out.set(body, offset)
  offset += body.length
  for (const s of sequences) {
    out[offset++] = 1
    out.writeInt32LE(s.size, offset)
    offset += 4
    offset += s.identifier.copy(out, offset)
    for (const d of s.documents) {
      out.set(d, offset)
      offset += d.length
    }
  }
  return out
}
