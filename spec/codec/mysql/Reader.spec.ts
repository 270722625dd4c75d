import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { lenencIntSize, Reader, utf8OrUndefined, writeLenencInt } from "../../../src/codec/mysql/Reader.ts"

const encoded = (n: number): Buffer => {
  const out = Buffer.alloc(lenencIntSize(n))
  writeLenencInt(out, n, 0)
  return out
}

describe("Reader: the protocol's basic types", () => {
  it("writes int<lenenc> in 1, 3, 4 or 9 bytes at the documented boundaries", () => {
    expect(encoded(250).toString("hex")).toBe("fa")
    expect(encoded(251).toString("hex")).toBe("fcfb00")
    expect(encoded(0xffff).toString("hex")).toBe("fcffff")
    expect(encoded(0x10000).toString("hex")).toBe("fd000001")
    expect(encoded(0xffffff).toString("hex")).toBe("fdffffff")
    expect(encoded(0x1000000).toString("hex")).toBe("fe0000000100000000")
  })

  it("reads back every safe integer (fast-check)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (n) => {
        const r = new Reader(encoded(n))
        expect(r.lenencInt()).toBe(n)
        expect(r.remaining).toBe(0)
      })
    )
  })

  it("answers undefined for NULL (0xFB), 0xFF, values past 2^53 and anything cut short", () => {
    expect(new Reader(Buffer.from([0xfb])).lenencInt()).toBeUndefined()
    expect(new Reader(Buffer.from([0xff])).lenencInt()).toBeUndefined()
    expect(new Reader(Buffer.from("feffffffffffffffff", "hex")).lenencInt()).toBeUndefined()
    for (const cut of ["fc01", "fd0102", "fe01020304050607", ""]) {
      expect(new Reader(Buffer.from(cut, "hex")).lenencInt()).toBeUndefined()
    }
    const r = new Reader(Buffer.from("0561626364", "hex"))
    expect(r.lenencBytes()).toBeUndefined()
  })

  it("reads NUL-terminated strings, tolerating a missing last NUL only where asked", () => {
    const r = new Reader(Buffer.from("ab\0cd"))
    expect(r.nulTerminated()?.toString()).toBe("ab")
    expect(r.nulTerminated()).toBeUndefined()
    expect(r.nulTerminatedOrRest().toString()).toBe("cd")
    expect(r.remaining).toBe(0)
    expect([r.u8(), r.u16(), r.u24(), r.u32(), r.bytes(1)]).toEqual([
      undefined,
      undefined,
      undefined,
      undefined,
      undefined
    ])
  })

  it("decodes strict UTF-8 for routing keys: invalid bytes are refused, not replaced", () => {
    expect(utf8OrUndefined(Buffer.from("tenant_ü"))).toBe("tenant_ü")
    expect(utf8OrUndefined(Buffer.from([0x74, 0xff]))).toBeUndefined()
    expect(utf8OrUndefined(Buffer.from([0xef, 0xbb, 0xbf, 0x61]))).toBe("\ufeffa")
  })
})
