import { deserialize, serialize } from "bson"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { decodeOpMsg, encodeOpMsg, MAX_MESSAGE_SIZE, OpMsgFlags } from "../../../src/codec/mongo/index.ts"
import {
  bodySection,
  checkByteByByte,
  decodeAll,
  int32,
  int32u,
  mutated,
  plausibleBytes,
  rawOpMsg,
  sequenceSection,
  wellFormed
} from "./support.ts"

const reasonOf = (buf: Buffer, maxLength?: number) => {
  const r = decodeOpMsg(buf, maxLength)
  if (r._tag !== "Invalid") throw new Error(`expected Invalid, got ${JSON.stringify(r)}`)
  return r.reason
}

const frameOf = (buf: Buffer) => {
  const r = decodeOpMsg(buf)
  if (r._tag !== "Frame") throw new Error(`expected a Frame, got ${JSON.stringify(r)}`)
  return r
}

describe("decodeOpMsg", () => {
  it("decodes a body and document sequences written by hand", () => {
    const bytes = rawOpMsg(9, 0, [
      bodySection({ insert: "items", ordered: true, $db: "tenant1" }),
      sequenceSection("documents", [{ a: 1 }, { a: 2 }])
    ])
    const r = frameOf(bytes)
    expect(r.size).toBe(bytes.length)
    expect(r.value.header).toEqual({ messageLength: bytes.length, requestId: 9, responseTo: 0, opCode: 2013 })
    expect(r.value.flagBits).toBe(0)
    expect(deserialize(r.value.body)).toEqual({ insert: "items", ordered: true, $db: "tenant1" })
    expect(r.value.sequences.map((s) => [s.identifier, s.documents.map((d) => deserialize(d))])).toEqual([
      ["documents", [{ a: 1 }, { a: 2 }]]
    ])
    expect(r.value.checksum).toBeUndefined()
  })

  it("accepts a sequence before the body, and an empty sequence", () => {
    const r = frameOf(rawOpMsg(1, 0, [sequenceSection("updates", []), bodySection({ update: "c", $db: "d" })]))
    expect(r.value.sequences).toEqual([{ identifier: "updates", documents: [] }])
    expect(deserialize(r.value.body)).toEqual({ update: "c", $db: "d" })
  })

  it("reads the checksum from the last 4 bytes and keeps it out of the sections", () => {
    const bytes = rawOpMsg(1, OpMsgFlags.checksumPresent, [bodySection({ ping: 1, $db: "admin" }), int32u(0xdeadbeef)])
    const r = frameOf(bytes)
    expect(r.value.checksum).toBe(0xdeadbeef)
    expect(deserialize(r.value.body)).toEqual({ ping: 1, $db: "admin" })
  })

  it("accepts moreToCome, exhaustAllowed and unknown optional bits (16-31)", () => {
    const flags = OpMsgFlags.moreToCome | OpMsgFlags.exhaustAllowed | (1 << 30)
    expect(frameOf(rawOpMsg(1, flags, [bodySection({ ping: 1 })])).value.flagBits).toBe(flags >>> 0)
  })

  it("refuses unknown required flag bits (0-15), as the OP_MSG spec demands", () => {
    expect(reasonOf(rawOpMsg(1, 1 << 2, [bodySection({ ping: 1 })]))).toBe(
      "OP_MSG sets unknown required flag bits 0x0004"
    )
    expect(reasonOf(rawOpMsg(1, 0x8000, [bodySection({ ping: 1 })]))).toContain("0x8000")
  })

  it("refuses a message without exactly one body", () => {
    expect(reasonOf(rawOpMsg(1, 0, [sequenceSection("documents", [{ a: 1 }])]))).toBe(
      "OP_MSG has no body section (kind 0)"
    )
    expect(reasonOf(rawOpMsg(1, 0, [bodySection({ a: 1 }), bodySection({ b: 1 })]))).toBe(
      "OP_MSG has more than one body section (kind 0)"
    )
  })

  it("refuses unknown section kinds and sections that do not fit", () => {
    expect(reasonOf(rawOpMsg(1, 0, [Buffer.concat([Buffer.from([2]), serialize({ a: 1 })])]))).toBe(
      "OP_MSG has a section of unknown kind 2"
    )
    const doc = Buffer.from(serialize({ a: 1 }))
    const longer = Buffer.from(doc)
    longer.writeInt32LE(doc.length + 10, 0)
    expect(reasonOf(rawOpMsg(1, 0, [Buffer.concat([Buffer.from([0]), longer])]))).toContain("runs past the end")
    const unterminated = Buffer.from(doc)
    unterminated[unterminated.length - 1] = 1
    expect(reasonOf(rawOpMsg(1, 0, [Buffer.concat([Buffer.from([0]), unterminated])]))).toContain("NUL")
    expect(reasonOf(rawOpMsg(1, 0, [Buffer.from([0]), int32(3), Buffer.from([0, 0, 0, 0])]))).toContain(
      "invalid BSON document length 3"
    )
    const badSequence = Buffer.concat([Buffer.from([1]), int32(9), Buffer.from("abcde")])
    expect(reasonOf(rawOpMsg(1, 0, [bodySection({ a: 1 }), badSequence]))).toContain("identifier")
    expect(reasonOf(rawOpMsg(1, 0, [bodySection({ a: 1 }), Buffer.concat([Buffer.from([1]), int32(2)])]))).toContain(
      "invalid size 2"
    )
  })

  it("refuses a wrong opcode, a too short message and one over the limit", () => {
    const ok = rawOpMsg(1, 0, [bodySection({ ping: 1 })])
    const query = Buffer.from(ok)
    query.writeInt32LE(2004, 12)
    expect(reasonOf(query)).toBe("expected OP_MSG, got OP_QUERY")
    expect(reasonOf(rawOpMsg(1, 0, [Buffer.from([0])], 21))).toContain("too short")
    expect(reasonOf(rawOpMsg(1, 0, [], MAX_MESSAGE_SIZE + 1).subarray(0, 4))).toContain("larger than the limit")
    expect(reasonOf(ok, ok.length - 1)).toContain("larger than the limit")
  })

  it("answers Need byte by byte, then a Frame of exactly the message", () => {
    const bytes = encodeOpMsg({
      requestId: 3,
      body: { insert: "c", $db: "d" },
      sequences: [{ identifier: "documents", documents: [{ x: 1 }, { y: "two" }] }]
    })
    expect(checkByteByByte(bytes, (b) => decodeOpMsg(b)).sequences[0]?.documents).toHaveLength(2)
  })

  it("decodes two messages in one buffer, each bounded by its own length", () => {
    const a = encodeOpMsg({ requestId: 1, body: { hello: 1, $db: "admin" } })
    const b = encodeOpMsg({ requestId: 2, responseTo: 1, body: { ok: 1 } })
    expect(decodeAll(Buffer.concat([a, b]), (x) => decodeOpMsg(x)).map((m) => m.header.requestId)).toEqual([1, 2])
    // A body cut short by its message's length must not borrow bytes from the next message.
    const cut = rawOpMsg(5, 0, [bodySection({ a: "xyz" })], a.length - 2)
    expect(decodeOpMsg(Buffer.concat([cut.subarray(0, a.length - 2), b]))._tag).toBe("Invalid")
  })

  it("round-trips encodeOpMsg, and never writes the checksum bit", () => {
    const value = fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null), fc.double({ noNaN: true }))
    const doc = fc.dictionary(
      fc.string({ minLength: 1 }).filter((k) => !k.includes("\0") && !k.startsWith("$") && k !== "__proto__"),
      value
    )
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0x7fffffff }),
        doc,
        fc.array(doc, { maxLength: 3 }),
        fc.constantFrom(0, OpMsgFlags.moreToCome, OpMsgFlags.checksumPresent | OpMsgFlags.exhaustAllowed),
        (requestId, body, documents, flagBits) => {
          const bytes = encodeOpMsg({
            requestId,
            responseTo: 7,
            flagBits,
            body,
            sequences: [{ identifier: "d", documents }]
          })
          const r = frameOf(bytes)
          expect(r.value.flagBits).toBe(flagBits & ~OpMsgFlags.checksumPresent)
          expect(r.value.header).toMatchObject({ requestId, responseTo: 7 })
          expect(Buffer.from(r.value.body).equals(Buffer.from(serialize(body)))).toBe(true)
          expect(r.value.sequences[0]?.documents.length).toBe(documents.length)
        }
      )
    )
  })

  it("never throws on random or mutated input", () => {
    const valid = encodeOpMsg({
      requestId: 1,
      body: { find: "c", filter: { a: { $gt: 1 } }, $db: "d" },
      sequences: [{ identifier: "documents", documents: [{ a: 1 }] }]
    })
    fc.assert(
      fc.property(fc.oneof(plausibleBytes, mutated(valid)), (bytes) => {
        expect(wellFormed(decodeOpMsg(bytes), bytes.length)).toBe(true)
      }),
      { numRuns: 2_000 }
    )
  })
})
