// Helpers shared by the mysql codec specs: raw packets, byte-by-byte feeding, and the shape every result must have.
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import type { Decoded } from "../../../src/codec/mysql/index.ts"

import { decodeAll, feedByteByByte } from "../support.ts"

export { decodeAll, feedByteByByte }

/** A packet header written as given (right or wrong) in front of `payload`. */
export const rawPacket = (payload: Uint8Array, sequenceId: number, length: number = payload.length): Buffer => {
  const out = Buffer.alloc(4 + payload.length)
  out.writeUIntLE(length, 0, 3)
  out[3] = sequenceId
  out.set(payload, 4)
  return out
}

/** Every prefix but the last answers Need (never asking past the end), and the whole answers a Frame of its size. */
export const expectNeedThenFrame = <A>(bytes: Buffer, decode: (buf: Buffer) => Decoded<A>): A => {
  const results = feedByteByByte(bytes, decode)
  const last = results.pop()
  for (const [i, result] of results.entries()) {
    if (result._tag !== "Need")
      throw new Error(`prefix of ${i + 1} bytes: expected Need, got ${JSON.stringify(result)}`)
    if (result.bytes > bytes.length - (i + 1)) throw new Error(`prefix of ${i + 1} bytes asks for ${result.bytes}`)
  }
  if (last?._tag !== "Frame" || last.size !== bytes.length) throw new Error(`expected a whole frame, got ${last?._tag}`)
  return last.value
}

/** The check every decoder result must pass whatever the input. */
export const wellFormed = <A>(result: Decoded<A>, inputLength: number): boolean => {
  switch (result._tag) {
    case "Need":
      return Number.isInteger(result.bytes) && result.bytes > 0
    case "Frame":
      return Number.isInteger(result.size) && result.size > 0 && result.size <= inputLength
    case "Invalid":
      return typeof result.reason === "string" && result.reason.length > 0
  }
}

export const frameOf = <A>(result: Decoded<A>): A => {
  if (result._tag !== "Frame") throw new Error(`expected a Frame, got ${JSON.stringify(result)}`)
  return result.value
}

export const reasonOf = (result: unknown): string => {
  const r = result as { readonly _tag?: string; readonly reason?: string }
  if (r._tag !== "Invalid" || r.reason === undefined) throw new Error(`expected Invalid, got ${JSON.stringify(result)}`)
  return r.reason
}

// mysql2's packet classes (not in its public exports): the real client's encoders and decoders, to check both ways.
const require = createRequire(import.meta.url)
const mysql2Root = dirname(require.resolve("mysql2"))

export interface Mysql2Packet {
  readonly buffer: Buffer
  asError(encoding: string): Error & { errno: number; code?: string; sqlState: string; sqlMessage: string }
}

export const mysql2 = {
  Packets: require(join(mysql2Root, "lib/packets/index.js")) as Record<
    string,
    // biome-ignore lint/suspicious/noExplicitAny: mysql2's packet classes are untyped JavaScript
    any
  >,
  Packet: require(join(mysql2Root, "lib/packets/packet.js")) as new (
    id: number,
    buffer: Buffer,
    start: number,
    end: number
  ) => Mysql2Packet,
  defaultFlags: (options: Record<string, unknown> = {}): number => {
    const ConnectionConfig = require(join(mysql2Root, "lib/connection_config.js"))
    return new ConnectionConfig({ user: "u", ...options }).clientFlags >>> 0
  }
}

/** A whole packet (header included) as mysql2 reads it from the wire. */
export const asMysql2Packet = (packet: Buffer): Mysql2Packet => new mysql2.Packet(packet[3]!, packet, 0, packet.length)

/** The payload of a packet mysql2 built (its `toPacket()` leaves the header for the connection to fill in). */
export const mysql2Payload = (packet: { buffer: Buffer }): Buffer => packet.buffer.subarray(4)
