import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { decodeHeader, MAX_MESSAGE_SIZE, writeHeader } from "../../../src/codec/mongo/index.ts"
import { checkByteByByte, message, wellFormed } from "./support.ts"

describe("decodeHeader", () => {
  it("reads the four little-endian int32s and takes 16 bytes", () => {
    const bytes = message(1234, 77, 2013)
    bytes.writeInt32LE(-5, 8)
    expect(decodeHeader(bytes)).toEqual({
      _tag: "Frame",
      value: { messageLength: 1234, requestId: 77, responseTo: -5, opCode: 2013 },
      size: 16
    })
    expect(checkByteByByte(bytes, (b) => decodeHeader(b))).toMatchObject({ requestId: 77 })
  })

  it("refuses a length below 16 or above the limit as soon as the length is in", () => {
    for (const length of [0, 15, -1, -0x80000000]) {
      expect(decodeHeader(message(length, 1, 2013).subarray(0, 4))).toEqual({
        _tag: "Invalid",
        reason: `invalid message length ${length} (at least 16)`
      })
    }
    expect(decodeHeader(message(MAX_MESSAGE_SIZE + 1, 1, 2013).subarray(0, 4))).toEqual({
      _tag: "Invalid",
      reason: `message of ${MAX_MESSAGE_SIZE + 1} bytes is larger than the limit of 48000000 bytes`
    })
    expect(decodeHeader(message(MAX_MESSAGE_SIZE, 1, 2013))._tag).toBe("Frame")
    expect(decodeHeader(message(1000, 1, 2013), 999)._tag).toBe("Invalid")
  })

  it("round-trips through writeHeader", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 16, max: MAX_MESSAGE_SIZE }),
        fc.integer({ min: -0x80000000, max: 0x7fffffff }),
        fc.integer({ min: -0x80000000, max: 0x7fffffff }),
        fc.integer({ min: -0x80000000, max: 0x7fffffff }),
        (messageLength, requestId, responseTo, opCode) => {
          const out = Buffer.alloc(16)
          writeHeader(out, { messageLength, requestId, responseTo, opCode })
          expect(decodeHeader(out)).toEqual({
            _tag: "Frame",
            value: { messageLength, requestId, responseTo, opCode },
            size: 16
          })
        }
      )
    )
  })

  it("never throws and always answers a well-formed result", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
        expect(wellFormed(decodeHeader(Buffer.from(bytes)), bytes.length)).toBe(true)
      })
    )
  })
})
