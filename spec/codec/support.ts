// Helpers every codec spec uses, whatever the protocol: the decoders share one result shape (src/codec/Decode.ts).
import type { Decoded } from "../../src/codec/Decode.ts"

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

/** Feeds `bytes` one at a time, as the slowest network would; returns every result along the way. */
export const feedByteByByte = <A>(bytes: Buffer, decode: (buf: Buffer) => Decoded<A>): Decoded<A>[] =>
  Array.from({ length: bytes.length }, (_, i) => decode(bytes.subarray(0, i + 1)))
