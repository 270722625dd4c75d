// Server response packets for the ResponseEnd specs, built the way MariaDB lays them out (mariadb.com "Result Set
// Packets", "OK_Packet", "EOF_Packet", "COM_STMT_PREPARE"), and a feeder that walks them as a pooled session would.
import { expect } from "vitest"
import { encodePacket, MAX_PACKET_PAYLOAD } from "../../../src/codec/mysql/index.ts"
import { lenencBytes, writeLenencInt } from "../../../src/codec/mysql/Reader.ts"
import type { ResponseEnd, ServerVerdict } from "../../../src/codec/mysql/ResponseEnd.ts"

const lenencOf = (n: number): Buffer => {
  const out = Buffer.alloc(9)
  return out.subarray(0, writeLenencInt(out, n, 0))
}

export const ok = (
  status: number,
  opts: { readonly header?: number; readonly affected?: number; readonly insertId?: number } = {}
): Buffer =>
  Buffer.concat([
    Buffer.from([opts.header ?? 0x00]),
    lenencOf(opts.affected ?? 0),
    lenencOf(opts.insertId ?? 0),
    Buffer.from([status & 0xff, status >> 8, 0, 0])
  ])

export const eof = (status: number): Buffer => Buffer.from([0xfe, 0, 0, status & 0xff, status >> 8])

/** The OK that stands for an EOF with CLIENT_DEPRECATE_EOF. */
export const okEof = (status: number, affected = 0): Buffer => ok(status, { header: 0xfe, affected })

export const err = (code = 1064, message = "You have an error in your SQL syntax"): Buffer =>
  Buffer.concat([Buffer.from([0xff, code & 0xff, code >> 8]), Buffer.from(`#42000${message}`)])

/** MariaDB's progress report: an ERR with code 0xFFFF that is no error. */
export const progress = (): Buffer => Buffer.from([0xff, 0xff, 0xff, 1, 1, 1, 0x10, 0x27, 0, 3, 0x61, 0x62, 0x63])

export const columnCount = (n: number, metadataFollows?: boolean): Buffer =>
  metadataFollows === undefined ? lenencOf(n) : Buffer.concat([lenencOf(n), Buffer.from([metadataFollows ? 1 : 0])])

export const columnDefinition = (name: string): Buffer =>
  Buffer.concat([
    ...["def", "appdb", "t", "t", name, name].map((s) => lenencBytes(Buffer.from(s))),
    Buffer.from([0x0c, 0x2d, 0x00, 0xff, 0xff, 0, 0, 0xfd, 0, 0, 0, 0, 0])
  ])

export const textRow = (values: ReadonlyArray<string | null>): Buffer =>
  Buffer.concat(values.map((v) => (v === null ? Buffer.from([0xfb]) : lenencBytes(Buffer.from(v)))))

export const binaryRow = (value: number): Buffer => Buffer.from([0x00, 0x00, value & 0xff, 0, 0, 0])

export const prepareOk = (columns: number, params: number): Buffer => {
  const out = Buffer.alloc(12)
  out.writeUInt32LE(7, 1)
  out.writeUInt16LE(columns, 5)
  out.writeUInt16LE(params, 7)
  return out
}

export const localInfile = (file: string): Buffer => Buffer.concat([Buffer.from([0xfb]), Buffer.from(file)])

/** A text result set: count, definitions, [EOF], rows, terminator. */
export const resultSet = (
  rows: number,
  deprecateEof: boolean,
  status: number,
  opts: { readonly columns?: number; readonly metadata?: boolean } = {}
): Buffer[] => {
  const columns = opts.columns ?? 1
  const metadata = opts.metadata ?? true
  return [
    columnCount(columns, opts.metadata === undefined ? undefined : metadata),
    ...(metadata ? Array.from({ length: columns }, (_, i) => columnDefinition(`c${i}`)) : []),
    ...(deprecateEof ? [] : [eof(status & ~0x0008)]),
    ...Array.from({ length: rows }, (_, r) => textRow(Array.from({ length: columns }, (_, c) => `${r}.${c}`))),
    deprecateEof ? okEof(status) : eof(status)
  ]
}

/** Every packet's verdict through `serverPacket`. */
export const verdicts = (end: ResponseEnd, payloads: readonly Buffer[]): ServerVerdict[] =>
  payloads.map((p) => end.serverPacket(p))

/** Passes `payloads` and expects "more" for all but the last, which gives `last`. */
export const expectEndAtLast = (end: ResponseEnd, payloads: readonly Buffer[], last: ServerVerdict = "done") => {
  const got = verdicts(end, payloads)
  expect(got.slice(0, -1).every((v) => v === "more")).toBe(true)
  expect(got.at(-1)).toBe(last)
}

/** The wire packets' payloads of a logical payload: 0xFFFFFF-byte parts, then a shorter (maybe empty) last one. */
export const wireParts = (payload: Buffer): Buffer[] => {
  const parts: Buffer[] = []
  for (let at = 0; ; at += MAX_PACKET_PAYLOAD) {
    const part = payload.subarray(at, at + MAX_PACKET_PAYLOAD)
    parts.push(part)
    if (part.length < MAX_PACKET_PAYLOAD) return parts
  }
}

/** Frames logical payloads as the server would, sequence ids counting up from `first` (continuation parts too). */
export const frame = (payloads: readonly Buffer[], first = 1): Buffer => {
  let seq = first
  return Buffer.concat(
    payloads.map((p) => {
      const packet = encodePacket(p, seq)
      seq = (seq + wireParts(p).length) & 0xff
      return packet
    })
  )
}
