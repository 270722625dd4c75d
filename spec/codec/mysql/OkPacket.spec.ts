import { describe, expect, it } from "vitest"
import {
  decodeEofPacket,
  decodeOkPacket,
  encodeOkPacket,
  encodePacket,
  parseEofPacket,
  parseOkPacket,
  Status
} from "../../../src/codec/mysql/index.ts"
import { expectNeedThenFrame, frameOf, reasonOf } from "./support.ts"

describe("OkPacket and EofPacket", () => {
  it("decodes the OK MariaDB sends after a login", () => {
    const ok = frameOf(decodeOkPacket(Buffer.from("0700000200000002000000", "hex")))
    expect(ok).toEqual({
      sequenceId: 2,
      lastSequenceId: 2,
      message: {
        _tag: "OkPacket",
        affectedRows: 0,
        lastInsertId: 0,
        statusFlags: 2,
        warnings: 0,
        info: Buffer.alloc(0)
      }
    })
  })

  it("reads length-encoded row counts and ids, and keeps the info bytes", () => {
    const payload = Buffer.concat([
      Buffer.from("00fc1027fd40420f", "hex"),
      Buffer.from([Status.AUTOCOMMIT | Status.IN_TRANS, 0, 3, 0]),
      Buffer.from("Rows matched: 10000")
    ])
    expect(parseOkPacket(payload)).toEqual({
      _tag: "OkPacket",
      affectedRows: 10_000,
      lastInsertId: 1_000_000,
      statusFlags: 3,
      warnings: 3,
      info: Buffer.from("Rows matched: 10000")
    })
  })

  it("takes a long 0xFE packet as an OK (CLIENT_DEPRECATE_EOF) and a short one as an EOF", () => {
    expect(parseOkPacket(Buffer.from("fe000002000000000000", "hex"))).toMatchObject({
      _tag: "OkPacket",
      statusFlags: 2
    })
    expect(frameOf(decodeEofPacket(Buffer.from("05000005fe00000200", "hex")))).toEqual({
      sequenceId: 5,
      lastSequenceId: 5,
      message: { _tag: "EofPacket", warnings: 0, statusFlags: 2 }
    })
    expect(reasonOf(parseOkPacket(Buffer.from("fe00000200", "hex")))).toContain("expected OK")
    expect(reasonOf(parseEofPacket(Buffer.from("fe000002000000000000", "hex")))).toContain("under 9 bytes")
    expect(reasonOf(parseEofPacket(Buffer.from("fe00", "hex")))).toBe("EOF packet too short")
  })

  it("round-trips encodeOkPacket, answers Need byte by byte, refuses cut-short packets", () => {
    const bytes = encodePacket(encodeOkPacket({ statusFlags: Status.AUTOCOMMIT, warnings: 1 }), 4)
    expect(expectNeedThenFrame(bytes, (b) => decodeOkPacket(b)).message).toMatchObject({ statusFlags: 2, warnings: 1 })
    expect(reasonOf(parseOkPacket(Buffer.from("000000", "hex")))).toBe("OK packet too short")
    expect(reasonOf(parseOkPacket(Buffer.from("00fe01", "hex")))).toBe("OK packet too short")
    expect(reasonOf(parseOkPacket(Buffer.from([0xff])))).toContain("expected OK")
    expect(reasonOf(parseOkPacket(Buffer.alloc(0)))).toContain("empty")
  })
})
