import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { decodeOpCompressed, encodeOpCompressed, OP_COMPRESSED_PREFIX } from "../../../src/codec/mongo/index.ts"
import { checkByteByByte, message, plausibleBytes, wellFormed } from "./support.ts"

describe("decodeOpCompressed", () => {
  it("names the compressor from the first 25 bytes, without reading the payload", () => {
    for (const [id, name] of [
      [0, "noop"],
      [1, "snappy"],
      [2, "zlib"],
      [3, "zstd"],
      [9, "unknown compressor id 9"]
    ] as const) {
      const bytes = encodeOpCompressed({
        requestId: 4,
        originalOpcode: 2013,
        uncompressedSize: 1000,
        compressorId: id,
        payload: Buffer.alloc(64)
      })
      const value = checkByteByByte(bytes, (b) => decodeOpCompressed(b), OP_COMPRESSED_PREFIX)
      expect(value).toMatchObject({ originalOpcode: 2013, uncompressedSize: 1000, compressorId: id, compressor: name })
      expect(value.header.messageLength).toBe(bytes.length)
    }
  })

  it("refuses a message too short to hold its prefix, or of another opcode", () => {
    expect(decodeOpCompressed(message(20, 1, 2012, Buffer.alloc(4)))._tag).toBe("Invalid")
    expect(decodeOpCompressed(message(40, 1, 2013, Buffer.alloc(24)))).toEqual({
      _tag: "Invalid",
      reason: "expected OP_COMPRESSED, got OP_MSG"
    })
  })

  it("never throws", () => {
    fc.assert(
      fc.property(plausibleBytes, (bytes) => {
        expect(wellFormed(decodeOpCompressed(bytes), bytes.length)).toBe(true)
      })
    )
  })
})
