import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  decodeSslResponse,
  decodeStartup,
  encodeCancelRequest,
  SSL_ACCEPTED,
  SSL_REFUSED,
  SSL_REQUEST
} from "../../../src/codec/pg/index.ts"
import { wellFormed } from "./support.ts"

describe("SSL negotiation bytes", () => {
  it("are 'S', 'N' and the 8-byte SSLRequest", () => {
    expect(SSL_ACCEPTED.toString("latin1")).toBe("S")
    expect(SSL_REFUSED.toString("latin1")).toBe("N")
    expect(SSL_REQUEST.toString("hex")).toBe("0000000804d2162f")
  })
})

describe("decodeSslResponse", () => {
  it("reads 'S' and 'N', and needs one byte", () => {
    expect(decodeSslResponse(SSL_ACCEPTED)).toEqual({ _tag: "Frame", value: "S", size: 1 })
    expect(decodeSslResponse(SSL_REFUSED)).toEqual({ _tag: "Frame", value: "N", size: 1 })
    expect(decodeSslResponse(Buffer.alloc(0))).toEqual({ _tag: "Need", bytes: 1 })
  })

  it("explains an ErrorResponse from a server that predates SSL negotiation", () => {
    const result = decodeSslResponse(Buffer.from("EFATAL: unsupported frontend protocol\0"))
    expect(result).toMatchObject({ _tag: "Invalid" })
    if (result._tag === "Invalid") expect(result.reason).toMatch(/ErrorResponse \('E'\).*does not support SSL/)
  })

  it("refuses bytes after 'S': they would be plaintext read as if they came over TLS", () => {
    const result = decodeSslResponse(Buffer.from("SZ\0\0\0\x05I"))
    expect(result).toMatchObject({ _tag: "Invalid" })
    if (result._tag === "Invalid") expect(result.reason).toContain("6 unencrypted bytes after the SSL response 'S'")
  })

  it("names any other byte", () => {
    expect(decodeSslResponse(Buffer.from("HTTP/1.1 400"))).toEqual({
      _tag: "Invalid",
      reason: "unexpected answer to SSLRequest: 0x48 ('H') (expected 'S' or 'N')"
    })
    expect(decodeSslResponse(Buffer.from([0x15]))).toMatchObject({ reason: expect.stringContaining("0x15") })
  })

  it("never throws and returns well-formed results for arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 16 }), (bytes) => {
        expect(wellFormed(decodeSslResponse(bytes), bytes.length)).toBe(true)
      })
    )
  })
})

describe("encodeCancelRequest", () => {
  it("writes length 16, the cancel code, the process id and a 3.0 key", () => {
    expect(encodeCancelRequest(4242, Buffer.from("deadbeef", "hex")).toString("hex")).toBe(
      "0000001004d2162e00001092deadbeef"
    )
  })

  it("writes a longer 3.2 key with the length to match", () => {
    const bytes = encodeCancelRequest(1, Buffer.alloc(32, 1))
    expect(bytes.length).toBe(44)
    expect(bytes.readInt32BE(0)).toBe(44)
    expect(decodeStartup(bytes)).toMatchObject({ _tag: "Frame", size: 44, value: { _tag: "CancelRequest" } })
  })

  it("refuses a key outside 4 to 256 bytes and a process id outside int32", () => {
    expect(() => encodeCancelRequest(1, Buffer.alloc(3))).toThrow(RangeError)
    expect(() => encodeCancelRequest(1, Buffer.alloc(257))).toThrow(RangeError)
    expect(() => encodeCancelRequest(2 ** 31, Buffer.alloc(4))).toThrow(RangeError)
    expect(() => encodeCancelRequest(1.5, Buffer.alloc(4))).toThrow(RangeError)
  })
})
