// Helpers shared by the smtp codec specs.
import type { Decoded } from "../../../src/codec/smtp/index.ts"

/** Decodes frame after frame using `size`, as a listener does; throws on anything but whole frames. */
export const decodeAll = <A>(buf: Buffer, decode: (buf: Buffer) => Decoded<A>): A[] => {
  const values: A[] = []
  let rest = buf
  while (rest.length > 0) {
    const result = decode(rest)
    if (result._tag !== "Frame") {
      throw new Error(`expected a frame at byte ${buf.length - rest.length}: ${JSON.stringify(result)}`)
    }
    values.push(result.value)
    rest = rest.subarray(result.size)
  }
  return values
}

/** Feeds `buf` one byte more at a time and returns the first non-Need answer with the length it took. */
export const feedByteByByte = <A>(buf: Buffer, decode: (buf: Buffer) => Decoded<A>) => {
  for (let n = 1; n <= buf.length; n++) {
    const result = decode(buf.subarray(0, n))
    if (result._tag !== "Need") return { result, at: n }
    if (result.bytes < 1) throw new Error(`Need ${result.bytes} at ${n}`)
  }
  return { result: decode(buf), at: buf.length }
}
