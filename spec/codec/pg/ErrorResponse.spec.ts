import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  decodeErrorFields,
  decodeErrorResponse,
  type ErrorResponseInput,
  encodeErrorResponse,
  shiftPosition
} from "../../../src/codec/pg/index.ts"
import { feedByteByByte, fieldsOf, message, wellFormed } from "./support.ts"

describe("encodeErrorResponse", () => {
  it("writes S, V, C, M then a NUL, byte for byte", () => {
    const bytes = encodeErrorResponse({ severity: "FATAL", code: "3D000", message: 'database "x" does not exist' })
    expect(bytes.toString("latin1")).toBe('E\0\0\0\x37SFATAL\0VFATAL\0C3D000\0Mdatabase "x" does not exist\0\0')
  })

  it("round-trips S V C M D H", () => {
    const bytes = encodeErrorResponse({
      severity: "ERROR",
      code: "57P03",
      message: "the database system is starting up",
      detail: "tenant acme is waking",
      hint: "retry in a few seconds"
    })
    expect(fieldsOf(bytes)).toEqual({
      S: "ERROR",
      V: "ERROR",
      C: "57P03",
      M: "the database system is starting up",
      D: "tenant acme is waking",
      H: "retry in a few seconds"
    })
  })

  it("keeps the fields in the order S V C M D H", () => {
    const result = decodeErrorResponse(
      encodeErrorResponse({ severity: "FATAL", code: "28000", message: "m", hint: "h" })
    )
    if (result._tag !== "Frame") throw new Error("expected a frame")
    expect([...result.value.fields.keys()]).toEqual(["S", "V", "C", "M", "H"])
  })

  it("turns a NUL inside a text into U+FFFD so it cannot forge further fields", () => {
    const fields = fieldsOf(encodeErrorResponse({ severity: "FATAL", code: "3D000", message: "db\0Cxx" }))
    expect(fields).toEqual({ S: "FATAL", V: "FATAL", C: "3D000", M: "db\uFFFDCxx" })
  })

  it("refuses a malformed SQLSTATE", () => {
    for (const code of ["3d000", "3D00", "3D0000", "", "3D 00"]) {
      expect(() => encodeErrorResponse({ severity: "FATAL", code, message: "m" })).toThrow(RangeError)
    }
  })

  it("round-trips arbitrary texts", () => {
    const text = fc.string({ unit: "grapheme", maxLength: 80 }).filter((s) => !s.includes("\0"))
    const input: fc.Arbitrary<ErrorResponseInput> = fc.record(
      {
        severity: fc.constantFrom("FATAL" as const, "ERROR" as const),
        code: fc.stringMatching(/^[0-9A-Z]{5}$/),
        message: text,
        detail: text,
        hint: text
      },
      { requiredKeys: ["severity", "code", "message"] }
    )
    fc.assert(
      fc.property(input, (error) => {
        const expected: Record<string, string> = {
          S: error.severity,
          V: error.severity,
          C: error.code,
          M: error.message
        }
        if (error.detail !== undefined) expected.D = error.detail
        if (error.hint !== undefined) expected.H = error.hint
        expect(fieldsOf(encodeErrorResponse(error))).toEqual(expected)
      })
    )
  })
})

describe("decodeErrorResponse", () => {
  const error = encodeErrorResponse({ severity: "FATAL", code: "28000", message: "no" })

  it("answers Need byte by byte, then a Frame of the message's size, leaving what follows", () => {
    const results = feedByteByByte(error, (b) => decodeErrorResponse(b))
    expect(results.pop()).toMatchObject({ _tag: "Frame", size: error.length })
    expect(results.every((r) => r._tag === "Need")).toBe(true)
    const withNext = Buffer.concat([error, message("Z", Buffer.from("I"))])
    expect(decodeErrorResponse(withNext)).toMatchObject({ _tag: "Frame", size: error.length })
  })

  it("refuses another message type", () => {
    expect(decodeErrorResponse(message("N", Buffer.from("SNOTICE\0\0")))).toEqual({
      _tag: "Invalid",
      reason: "expected ErrorResponse ('E'), got 0x4e ('N')"
    })
  })

  it("refuses a missing terminator, an unterminated field, bytes after the end and a repeated field", () => {
    const reason = (body: string) => {
      const result = decodeErrorResponse(message("E", Buffer.from(body, "latin1")))
      return result._tag === "Invalid" ? result.reason : `not Invalid: ${result._tag}`
    }
    expect(reason("SFATAL\0")).toBe("invalid ErrorResponse: missing terminator")
    expect(reason("")).toBe("invalid ErrorResponse: missing terminator")
    expect(reason("SFATAL")).toBe("invalid ErrorResponse: field 0x53 ('S') not NUL-terminated")
    expect(reason("SFATAL\0\0M")).toBe("invalid ErrorResponse: bytes after the terminator")
    expect(reason("C1\0C2\0\0")).toBe("invalid ErrorResponse: duplicate field 0x43 ('C')")
  })

  it("reads a NoticeResponse body through decodeErrorFields", () => {
    const result = decodeErrorFields(Buffer.from("SWARNING\0VWARNING\0C01000\0Mcareful\0\0"))
    expect(result._tag === "Frame" && Object.fromEntries(result.value.fields)).toEqual({
      S: "WARNING",
      V: "WARNING",
      C: "01000",
      M: "careful"
    })
  })

  it("keeps fields it does not know, as the protocol asks", () => {
    expect(fieldsOf(message("E", Buffer.from("SFATAL\0Fpostmaster.c\0L2200\0RProcessStartupPacket\0\0")))).toEqual({
      S: "FATAL",
      F: "postmaster.c",
      L: "2200",
      R: "ProcessStartupPacket"
    })
  })

  it("never throws and returns well-formed results for arbitrary bytes, with or without an E header", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), (bytes, framed) => {
        const buf = framed ? message("E", bytes) : Buffer.from(bytes)
        expect(wellFormed(decodeErrorResponse(buf), buf.length)).toBe(true)
      }),
      { numRuns: 2000 }
    )
  })
})

describe("shiftPosition", () => {
  const body = (fields: string): Buffer => Buffer.from(`${fields}\0`, "latin1")

  it("moves the cursor position back and leaves every other field as it was", () => {
    const before = body('SERROR\0C42703\0Mcolumn "x" does not exist\0P14\0Fparse_relation.c\0')
    const after = shiftPosition(before, 6)
    expect(after.toString("latin1")).toBe(
      body('SERROR\0C42703\0Mcolumn "x" does not exist\0P8\0Fparse_relation.c\0').toString("latin1")
    )
    expect(decodeErrorFields(after)._tag).toBe("Frame")
  })

  it.each([
    ["no position", "SERROR\0C22012\0Mdivision by zero\0"],
    ["only an internal position (p)", "SERROR\0C42601\0p3\0qselect\0"],
    ["a position inside what was put in front", "SERROR\0C42601\0P6\0"],
    ["a position that is no number", "SERROR\0P1x\0"],
    ["no terminator", "SERROR\0P9"]
  ])("returns the body itself for %s", (_, fields) => {
    const b = Buffer.from(fields, "latin1")
    expect(shiftPosition(b, 6)).toBe(b)
  })
})
