// Helpers shared by the smtp codec specs.
import type { Decoded } from "../../../src/codec/smtp/index.ts"

import { decodeAll } from "../support.ts"

export { decodeAll }

/** Feeds `buf` one byte more at a time and returns the first non-Need answer with the length it took. */
export const feedByteByByte = <A>(buf: Buffer, decode: (buf: Buffer) => Decoded<A>) => {
  for (let n = 1; n <= buf.length; n++) {
    const result = decode(buf.subarray(0, n))
    if (result._tag !== "Need") return { result, at: n }
    if (result.bytes < 1) throw new Error(`Need ${result.bytes} at ${n}`)
  }
  return { result: decode(buf), at: buf.length }
}
