import { deserialize, serialize } from "bson"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { decodeOpQuery, encodeOpQuery, MAX_HANDSHAKE_MESSAGE } from "../../../src/codec/mongo/index.ts"
import { checkByteByByte, decodeAll, int32, message, mutated, plausibleBytes, wellFormed } from "./support.ts"

const reasonOf = (buf: Buffer) => {
  const r = decodeOpQuery(buf)
  if (r._tag !== "Invalid") throw new Error(`expected Invalid, got ${JSON.stringify(r)}`)
  return r.reason
}

describe("decodeOpQuery", () => {
  it("decodes the legacy isMaster a driver opens with", () => {
    const bytes = encodeOpQuery({
      requestId: 11,
      fullCollectionName: "admin.$cmd",
      query: { isMaster: 1, helloOk: true, client: { driver: { name: "nodejs" } } }
    })
    const r = decodeOpQuery(bytes)
    if (r._tag !== "Frame") throw new Error(JSON.stringify(r))
    expect(r.size).toBe(bytes.length)
    expect(r.value).toMatchObject({ flags: 0, fullCollectionName: "admin.$cmd", numberToSkip: 0, numberToReturn: -1 })
    expect(r.value.header).toMatchObject({ requestId: 11, opCode: 2004 })
    expect(deserialize(r.value.query)).toEqual({ isMaster: 1, helloOk: true, client: { driver: { name: "nodejs" } } })
    expect(r.value.returnFieldsSelector).toBeUndefined()
    expect(checkByteByByte(bytes, (b) => decodeOpQuery(b)).fullCollectionName).toBe("admin.$cmd")
  })

  it("reads an optional returnFieldsSelector, and nothing after it", () => {
    const base = encodeOpQuery({ requestId: 1, fullCollectionName: "db.c", query: { a: 1 } })
    const selector = Buffer.from(serialize({ a: 1 }))
    const withSelector = Buffer.concat([base, selector])
    withSelector.writeInt32LE(withSelector.length, 0)
    const r = decodeOpQuery(withSelector)
    expect(r._tag === "Frame" && r.value.returnFieldsSelector && deserialize(r.value.returnFieldsSelector)).toEqual({
      a: 1
    })
    const trailing = Buffer.concat([withSelector, Buffer.from([0])])
    trailing.writeInt32LE(trailing.length, 0)
    expect(reasonOf(trailing)).toContain("after its returnFieldsSelector")
  })

  it("refuses what is not a whole, well-formed OP_QUERY", () => {
    const ok = encodeOpQuery({ requestId: 1, fullCollectionName: "admin.$cmd", query: { isMaster: 1 } })
    const msg = Buffer.from(ok)
    msg.writeInt32LE(2013, 12)
    expect(reasonOf(msg)).toBe("expected OP_QUERY, got OP_MSG")
    expect(reasonOf(message(30, 1, 2004, Buffer.alloc(14)))).toContain("too short")
    const noNul = Buffer.concat([int32(0), Buffer.from("admin.$cmd".repeat(3))])
    expect(reasonOf(message(16 + noNul.length, 1, 2004, noNul))).toContain("not NUL-terminated")
    const badUtf8 = Buffer.concat([int32(0), Buffer.from([0xff, 0xfe, 0]), int32(0), int32(-1), serialize({ a: 1 })])
    expect(reasonOf(message(16 + badUtf8.length, 1, 2004, badUtf8))).toContain("UTF-8")
    expect(reasonOf(message(MAX_HANDSHAKE_MESSAGE + 1, 1, 2004).subarray(0, 4))).toContain("larger than the limit")
  })

  it("decodes two queries in one buffer", () => {
    const a = encodeOpQuery({ requestId: 1, fullCollectionName: "admin.$cmd", query: { isMaster: 1 } })
    const b = encodeOpQuery({ requestId: 2, fullCollectionName: "admin.$cmd", query: { ismaster: 1 } })
    expect(decodeAll(Buffer.concat([a, b]), (x) => decodeOpQuery(x)).map((q) => q.header.requestId)).toEqual([1, 2])
  })

  it("never throws on random or mutated input", () => {
    const valid = encodeOpQuery({ requestId: 1, fullCollectionName: "admin.$cmd", query: { isMaster: 1, x: "y" } })
    fc.assert(
      fc.property(fc.oneof(plausibleBytes, mutated(valid)), (bytes) => {
        expect(wellFormed(decodeOpQuery(bytes), bytes.length)).toBe(true)
      }),
      { numRuns: 2_000 }
    )
  })
})
