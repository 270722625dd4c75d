// Helpers shared by the mongo codec specs: raw messages written by hand, loops that feed a decoder as a socket would.
import { serialize } from "bson"
import fc from "fast-check"
import type { Decoded } from "../../../src/codec/mongo/index.ts"

import { decodeAll, feedByteByByte } from "../support.ts"

export { decodeAll, feedByteByByte }

/** A message with the header written as given (right or wrong) and `rest` after it. */
export const message = (length: number, requestId: number, opCode: number, rest: Uint8Array = new Uint8Array()) => {
  const out = Buffer.alloc(16 + rest.length)
  out.writeInt32LE(length | 0, 0)
  out.writeInt32LE(requestId | 0, 4)
  out.writeInt32LE(0, 8)
  out.writeInt32LE(opCode | 0, 12)
  out.set(rest, 16)
  return out
}

/** An OP_MSG assembled by hand from flag bits and raw sections, its length computed unless given. */
export const rawOpMsg = (requestId: number, flagBits: number, sections: ReadonlyArray<Uint8Array>, length?: number) => {
  const body = Buffer.concat([int32u(flagBits), ...sections])
  return message(length ?? 16 + body.length, requestId, 2013, body)
}

export const int32u = (value: number) => {
  const out = Buffer.alloc(4)
  out.writeUInt32LE(value >>> 0, 0)
  return out
}

export const int32 = (value: number) => {
  const out = Buffer.alloc(4)
  out.writeInt32LE(value | 0, 0)
  return out
}

/** Section kind 0 holding `doc`. */
export const bodySection = (doc: Record<string, unknown> | Uint8Array) =>
  Buffer.concat([Buffer.from([0]), doc instanceof Uint8Array ? doc : serialize(doc)])

/** Section kind 1: size, identifier, documents. */
export const sequenceSection = (identifier: string, docs: ReadonlyArray<Record<string, unknown>>) => {
  const id = Buffer.from(`${identifier}\0`)
  const bytes = docs.map((d) => Buffer.from(serialize(d)))
  const size = 4 + id.length + bytes.reduce((n, b) => n + b.length, 0)
  return Buffer.concat([Buffer.from([1]), int32(size), id, ...bytes])
}

/** Byte by byte: Need (never asking past the frame) until exactly `size` bytes, then that Frame. */
export const checkByteByByte = <A>(bytes: Buffer, decode: (buf: Buffer) => Decoded<A>, size = bytes.length) => {
  const results = feedByteByByte(bytes.subarray(0, size), decode)
  const last = results.pop()
  for (const [i, result] of results.entries()) {
    if (result._tag !== "Need") throw new Error(`at ${i + 1} bytes: ${JSON.stringify(result)}`)
    if (result.bytes > size - (i + 1))
      throw new Error(`at ${i + 1} bytes asks for ${result.bytes}, frame ends at ${size}`)
  }
  if (last?._tag !== "Frame" || last.size !== size) throw new Error(`at ${size} bytes: ${JSON.stringify(last)}`)
  return last.value
}

/** The check every decoder result must pass whatever the input. */
export const wellFormed = <A>(result: Decoded<A>, inputLength: number): boolean => {
  switch (result._tag) {
    case "Need":
      return Number.isInteger(result.bytes) && result.bytes > 0
    case "Frame":
      return Number.isInteger(result.size) && result.size >= 0 && result.size <= inputLength
    case "Invalid":
      return typeof result.reason === "string" && result.reason.length > 0
  }
}

/** Random bytes, biased towards plausible headers so that decoders get past their first checks. */
export const plausibleBytes = fc.oneof(
  fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
  fc
    .tuple(
      fc.integer({ min: -5, max: 400 }),
      fc.constantFrom(1, 2004, 2012, 2013, 2002, 0, -1),
      fc.uint8Array({ maxLength: 300 })
    )
    .map(([length, opCode, rest]) => message(length, 1, opCode, rest))
)

/** A valid message with a suffix of random bytes chopped or garbled: decoders must stay calm on every mutation. */
export const mutated = (valid: Buffer) =>
  fc.tuple(fc.nat(valid.length), fc.uint8Array({ maxLength: 8 }), fc.nat(valid.length)).map(([at, junk, cut]) => {
    const copy = Buffer.from(valid)
    copy.set(junk.subarray(0, Math.max(0, copy.length - at)), Math.min(at, copy.length))
    return copy.subarray(0, Math.max(cut, 1))
  })
