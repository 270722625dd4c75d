import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { decodeErrPacket, encodeErrPacket, encodePacket, parseErrPacket } from "../../../src/codec/mysql/index.ts"
import { asMysql2Packet, expectNeedThenFrame, frameOf, reasonOf } from "./support.ts"

describe("ErrPacket", () => {
  it("encodes code, '#', SQLSTATE and message so mysql2 surfaces each", () => {
    const bytes = encodePacket(encodeErrPacket({ code: 1049, sqlState: "42000", message: "Unknown database 'x'" }), 2)
    expect(bytes.subarray(4, 10).toString("latin1")).toBe("\xff\x19\x04#42")
    const err = asMysql2Packet(bytes).asError("utf8")
    expect(err).toMatchObject({ errno: 1049, code: "ER_BAD_DB_ERROR", sqlState: "42000" })
    expect(err.message).toBe("Unknown database 'x'")
  })

  it("decodes a MariaDB ERR, with or without a SQLSTATE", () => {
    const payload = Buffer.concat([
      Buffer.from("ff1504233238303030", "hex"),
      Buffer.from("Access denied for user 'app'@'localhost' (using password: YES)")
    ])
    expect(frameOf(decodeErrPacket(encodePacket(payload, 2)))).toEqual({
      sequenceId: 2,
      lastSequenceId: 2,
      message: {
        _tag: "ErrPacket",
        code: 1045,
        sqlState: "28000",
        message: "Access denied for user 'app'@'localhost' (using password: YES)"
      }
    })
    // Servers send greeting-time errors (e.g. 1040 Too many connections) without the '#' part.
    expect(parseErrPacket(Buffer.concat([Buffer.from("ff1004", "hex"), Buffer.from("Too many connections")]))).toEqual({
      _tag: "ErrPacket",
      code: 1040,
      sqlState: undefined,
      message: "Too many connections"
    })
  })

  it("round-trips any code, SQLSTATE and message (fast-check), and answers Need byte by byte", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffff }),
        fc.stringMatching(/^[0-9A-Z]{5}$/),
        fc.string({ maxLength: 200 }),
        (code, sqlState, message) => {
          expect(parseErrPacket(encodeErrPacket({ code, sqlState, message }))).toEqual({
            _tag: "ErrPacket",
            code,
            sqlState,
            message
          })
        }
      )
    )
    const bytes = encodePacket(encodeErrPacket({ code: 1105, sqlState: "HY000", message: "boom" }), 2)
    expect(expectNeedThenFrame(bytes, (b) => decodeErrPacket(b)).message.code).toBe(1105)
  })

  it("refuses other markers and a cut-short code; refuses to encode a bad SQLSTATE or code", () => {
    expect(reasonOf(parseErrPacket(Buffer.from([0x00])))).toBe("expected ERR (0xff), got 0x00")
    expect(reasonOf(parseErrPacket(Buffer.from([0xff, 0x01])))).toBe("ERR packet too short")
    expect(reasonOf(parseErrPacket(Buffer.alloc(0)))).toContain("empty")
    expect(() => encodeErrPacket({ code: 1045, sqlState: "2800", message: "" })).toThrow(RangeError)
    expect(() => encodeErrPacket({ code: 70_000, sqlState: "28000", message: "" })).toThrow(RangeError)
  })
})
