// Client → proxy: as much of the next message as the proxy needs before it can act: its header, then the body
// section of an OP_MSG (whose $db routes the connection), a whole OP_QUERY (only the legacy handshake is one), or the
// compressor byte of an OP_COMPRESSED. Limits apply as soon as a length is known, so an oversized or foreign stream
// is refused before it is buffered: a command document larger than `maxBody` is told apart (Oversized) from a
// malformed message as soon as its section size is in, 25 bytes into the message, so that the listener can refuse
// it in words the user can act on.
import { peekCommand } from "./Command.ts"
import { type Decoded, frame, invalid, need } from "./Decode.ts"
import { documentAt } from "./Document.ts"
import { decodeHeader, type MessageHeader } from "./MessageHeader.ts"
import { decodeOpCompressed } from "./OpCompressed.ts"
import { flagBitsProblem, MIN_OP_MSG_LENGTH } from "./OpMsg.ts"
import { decodeOpQuery } from "./OpQuery.ts"
import {
  HEADER_LENGTH,
  isRemovedOpcode,
  MAX_COMMAND_BODY,
  MAX_HANDSHAKE_MESSAGE,
  MAX_MESSAGE_SIZE,
  OP_COMPRESSED,
  OP_MSG,
  OP_QUERY,
  OP_REPLY,
  OpMsgFlags,
  opcodeName
} from "./Protocol.ts"

export interface ClientLimits {
  /** Any message (maxMessageSizeBytes). */
  readonly maxMessage: number
  /** The bytes of an OP_MSG up to the end of its body: what must be buffered to read `$db`. More is Oversized. */
  readonly maxBody: number
  /** An OP_QUERY: only the handshake may be one. */
  readonly maxLegacy: number
}

export const defaultClientLimits: ClientLimits = {
  maxMessage: MAX_MESSAGE_SIZE,
  maxBody: MAX_COMMAND_BODY,
  maxLegacy: MAX_HANDSHAKE_MESSAGE
}

export interface ClientCommand {
  readonly _tag: "Command"
  readonly header: MessageHeader
  /** Came as OP_QUERY: answer with OP_REPLY. */
  readonly legacy: boolean
  /** OP_MSG flag bits (0 for OP_QUERY). */
  readonly flagBits: number
  readonly name: string
  /** `$db`, or for OP_QUERY the database of "db.$cmd". */
  readonly db: string | undefined
  /** The command document: a view into the input. */
  readonly body: Buffer
}

export interface ClientCompressed {
  readonly _tag: "Compressed"
  readonly header: MessageHeader
  readonly compressor: string
}

/** An OP_MSG whose command document ends past `maxBody`: nothing of it beyond the first section's size was read. */
export interface ClientOversized {
  readonly _tag: "Oversized"
  readonly header: MessageHeader
  /** Bytes up to the end of the command document (or of a document sequence before it): more than `maxBody`. */
  readonly bodyEnd: number
}

export type ClientMessage = ClientCommand | ClientCompressed | ClientOversized

/**
 * Frame once the deciding prefix is in; its `size` is that prefix, not necessarily the whole message
 * (`header.messageLength`): a routed message's remaining bytes are relayed, not read. Never throws.
 */
export const peekClientMessage = (buf: Buffer, limits: ClientLimits = defaultClientLimits): Decoded<ClientMessage> => {
  const decoded = decodeHeader(buf, limits.maxMessage)
  if (decoded._tag !== "Frame") return decoded
  const header = decoded.value
  switch (header.opCode) {
    case OP_MSG:
      return peekOpMsg(buf, header, limits)
    case OP_QUERY:
      return peekOpQuery(buf, header, limits)
    case OP_COMPRESSED: {
      const c = decodeOpCompressed(buf, limits.maxMessage)
      return c._tag === "Frame" ? frame({ _tag: "Compressed", header, compressor: c.value.compressor }, c.size) : c
    }
    case OP_REPLY:
      return invalid("OP_REPLY is a server's reply, not a request")
  }
  // A TLS record (0x16, version 3.x) read as a header has a plausible length but never a valid opcode.
  if (buf[0] === 0x16 && buf[1] === 0x03) return invalid("a TLS handshake, but this listener does not terminate TLS")
  if (isRemovedOpcode(header.opCode)) {
    return invalid(`${opcodeName(header.opCode)} was removed in MongoDB 5.1: use a driver that speaks OP_MSG`)
  }
  return invalid(`${opcodeName(header.opCode)}: not a MongoDB request`)
}

const peekOpQuery = (buf: Buffer, header: MessageHeader, limits: ClientLimits): Decoded<ClientMessage> => {
  if (header.messageLength > limits.maxLegacy) {
    return invalid(
      `OP_QUERY of ${header.messageLength} bytes: only the handshake may use OP_QUERY, ` +
        `and it takes at most ${limits.maxLegacy}`
    )
  }
  const q = decodeOpQuery(buf, limits.maxLegacy)
  if (q._tag !== "Frame") return q
  const ns = q.value.fullCollectionName
  if (!ns.endsWith(".$cmd") || ns.length === 5) {
    return invalid(`OP_QUERY on ${JSON.stringify(ns)}: only commands (the handshake) may use OP_QUERY`)
  }
  const command = peekCommand(q.value.query)
  if (typeof command === "string") return invalid(command)
  return frame(
    {
      _tag: "Command",
      header,
      legacy: true,
      flagBits: 0,
      name: command.name,
      db: ns.slice(0, -5),
      body: q.value.query
    },
    q.size
  )
}

const peekOpMsg = (buf: Buffer, header: MessageHeader, limits: ClientLimits): Decoded<ClientMessage> => {
  const length = header.messageLength
  if (length < MIN_OP_MSG_LENGTH)
    return invalid(`OP_MSG of ${length} bytes is too short (at least ${MIN_OP_MSG_LENGTH})`)
  if (buf.length < HEADER_LENGTH + 4) return need(HEADER_LENGTH + 4 - buf.length)
  const flagBits = buf.readUInt32LE(HEADER_LENGTH)
  const flagProblem = flagBitsProblem(flagBits)
  if (flagProblem !== undefined) return invalid(flagProblem)
  const end = (flagBits & OpMsgFlags.checksumPresent) !== 0 ? length - 4 : length
  let offset = HEADER_LENGTH + 4
  for (;;) {
    // A section is a kind byte and at least a 5-byte document (or a size and a 1-character identifier).
    if (end - offset < 6) {
      return invalid(offset === HEADER_LENGTH + 4 ? "OP_MSG has no sections" : "OP_MSG has no body section (kind 0)")
    }
    if (buf.length < offset + 5) return need(offset + 5 - buf.length)
    const kind = buf[offset]!
    const size = buf.readInt32LE(offset + 1)
    if (kind !== 0 && kind !== 1) return invalid(`OP_MSG has a section of unknown kind ${kind}`)
    if (size < (kind === 0 ? 5 : 6)) return invalid(`OP_MSG section of invalid size ${size}`)
    if (size > end - offset - 1) return invalid(`OP_MSG section of ${size} bytes runs past the end of the message`)
    const next = offset + 1 + size
    if (next > limits.maxBody) return frame({ _tag: "Oversized", header, bodyEnd: next }, offset + 5)
    if (buf.length < next) return need(next - buf.length)
    if (kind === 1) {
      // A sequence sent before the body: skipped here, checked by decodeOpMsg if the message is answered locally.
      offset = next
      continue
    }
    const body = documentAt(buf, offset + 1, next)
    if (typeof body === "string") return invalid(`OP_MSG body: ${body}`)
    const command = peekCommand(body)
    if (typeof command === "string") return invalid(command)
    return frame({ _tag: "Command", header, legacy: false, flagBits, name: command.name, db: command.db, body }, next)
  }
}
