// Answers the proxy sends as the server to a client it logged in itself (logins checked by the proxy), laid out as
// MariaDB 10.11 lays them out (captured): the OK of a command that changed nothing, and a result set of one text
// column and one row (`SELECT DATABASE()` before any USE). Pure.
import {
  Capability,
  encodeOkPacket,
  encodePacket,
  hasCapability,
  MariaDbCapability,
  Marker
} from "../../codec/mysql/index.ts"
import { lenencBytes } from "../../codec/mysql/Reader.ts"

/** What the client negotiated that shapes an answer. */
export interface AnswerShape {
  /** Capabilities negotiated with the proxy's greeting. */
  readonly flags: number
  /** MariaDB extras negotiated with it. */
  readonly mariadbCapabilities: number
  /** The client's collation id (column definitions carry it). */
  readonly characterSet: number
}

/** The OK payload of a command that changed nothing (MariaDB's 7 bytes). */
export const okPayload = (status: number): Buffer => encodeOkPacket({ statusFlags: status })

const MYSQL_TYPE_VAR_STRING = 0xfd
/** NOT_FIXED_DEC: what MariaDB sends for a string expression's decimals. */
const NOT_FIXED_DEC = 0x27
const NULL_VALUE = Buffer.from([0xfb])
const empty = Buffer.alloc(0)
const catalog = lenencBytes(Buffer.from("def"))

/** A column definition (protocol 4.1) of a string expression named `name`, `chars` characters wide. */
const columnDefinition = (name: string, chars: number, shape: AnswerShape): Buffer => {
  const blank = lenencBytes(empty)
  const fixed = Buffer.alloc(13)
  fixed[0] = 0x0c
  fixed.writeUInt16LE(shape.characterSet, 1)
  fixed.writeUInt32LE(chars * 4, 3)
  fixed[7] = MYSQL_TYPE_VAR_STRING
  fixed.writeUInt16LE(0, 8) // flags: nullable, no key
  fixed[10] = NOT_FIXED_DEC
  // MariaDB's extended metadata (type and format names) comes before the fixed fields: none for a plain string.
  const extended = (shape.mariadbCapabilities & MariaDbCapability.EXTENDED_METADATA) !== 0 ? [Buffer.from([0])] : []
  return Buffer.concat([
    catalog,
    blank,
    blank,
    blank,
    lenencBytes(Buffer.from(name, "utf8")),
    blank,
    ...extended,
    fixed
  ])
}

/** EOF_Packet: warnings, then status. */
const eofPayload = (status: number): Buffer => {
  const out = Buffer.alloc(5)
  out[0] = Marker.EOF
  out.writeUInt16LE(status, 3)
  return out
}

/** With CLIENT_DEPRECATE_EOF a result set ends with an OK whose header is 0xFE. */
const endOkPayload = (status: number): Buffer => {
  const out = okPayload(status)
  out[0] = Marker.EOF
  return out
}

/**
 * The packets (from sequence id 1, after the command's 0) of a result set with one string column `name`, `chars`
 * wide, and one row holding `value` (null: SQL NULL).
 */
export const oneValue = (name: string, chars: number, value: string | null, status: number, shape: AnswerShape) => {
  const deprecateEof = hasCapability(shape.flags, Capability.DEPRECATE_EOF)
  const payloads = [
    Buffer.from([1]),
    columnDefinition(name, chars, shape),
    ...(deprecateEof ? [] : [eofPayload(status)]),
    value === null ? NULL_VALUE : lenencBytes(Buffer.from(value, "utf8")),
    deprecateEof ? endOkPayload(status) : eofPayload(status)
  ]
  return Buffer.concat(payloads.map((payload, i) => encodePacket(payload, i + 1)))
}
