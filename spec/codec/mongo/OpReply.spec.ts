import { deserialize } from "bson"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { decodeOpReply, encodeOpReply } from "../../../src/codec/mongo/index.ts"
import { checkByteByByte, decodeAll, mutated, plausibleBytes, wellFormed } from "./support.ts"

describe("OP_REPLY", () => {
  it("encodes a command answer without a cursor, and decodes it back", () => {
    const bytes = encodeOpReply({ requestId: 5, responseTo: 41, documents: [{ ismaster: true, ok: 1 }] })
    const r = decodeOpReply(bytes)
    if (r._tag !== "Frame") throw new Error(JSON.stringify(r))
    expect(r.value.header).toEqual({ messageLength: bytes.length, requestId: 5, responseTo: 41, opCode: 1 })
    expect(r.value).toMatchObject({ responseFlags: 0, cursorId: 0n, startingFrom: 0, numberReturned: 1 })
    expect(r.value.documents.map((d) => deserialize(d))).toEqual([{ ismaster: true, ok: 1 }])
    checkByteByByte(bytes, (b) => decodeOpReply(b))
  })

  it("refuses a document count that does not match, and a negative one", () => {
    const bytes = encodeOpReply({ requestId: 1, responseTo: 1, documents: [{ a: 1 }, { b: 2 }] })
    bytes.writeInt32LE(3, 32)
    expect(decodeOpReply(bytes)).toEqual({ _tag: "Invalid", reason: "OP_REPLY says 3 documents but holds 2" })
    bytes.writeInt32LE(-1, 32)
    expect(decodeOpReply(bytes)._tag).toBe("Invalid")
  })

  it("decodes two replies in one buffer", () => {
    const a = encodeOpReply({ requestId: 1, responseTo: 10, documents: [{ ok: 1 }] })
    const b = encodeOpReply({ requestId: 2, responseTo: 11, documents: [] })
    expect(decodeAll(Buffer.concat([a, b]), (x) => decodeOpReply(x)).map((r) => r.header.responseTo)).toEqual([10, 11])
  })

  it("never throws on random or mutated input", () => {
    const valid = encodeOpReply({ requestId: 1, responseTo: 2, documents: [{ ok: 1, errmsg: "x" }] })
    fc.assert(
      fc.property(fc.oneof(plausibleBytes, mutated(valid)), (bytes) => {
        expect(wellFormed(decodeOpReply(bytes), bytes.length)).toBe(true)
      }),
      { numRuns: 2_000 }
    )
  })
})
