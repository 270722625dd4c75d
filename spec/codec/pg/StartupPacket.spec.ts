import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  CANCEL_REQUEST_CODE,
  databaseOf,
  decodeStartup,
  detectDirectTls,
  encodeCancelRequest,
  encodeStartup,
  GSSENC_REQUEST_CODE,
  PROTOCOL_3_0,
  PROTOCOL_3_2,
  type RefusedStartup,
  SSL_REQUEST,
  SSL_REQUEST_CODE,
  type Startup,
  type StartupMessage
} from "../../../src/codec/pg/index.ts"
import { decodeAll, feedByteByByte, int32, packet, wellFormed } from "./support.ts"

const startupOf = (buf: Buffer): StartupMessage => {
  const result = decodeStartup(buf)
  if (result._tag !== "Frame" || result.value._tag !== "StartupMessage") {
    throw new Error(`expected a StartupMessage, got ${JSON.stringify(result)}`)
  }
  return result.value
}

/** Why the server closes without a word. */
const reasonOf = (buf: Buffer, maxLength?: number): string => {
  const result = decodeStartup(buf, maxLength)
  if (result._tag !== "Invalid") throw new Error(`expected Invalid, got ${JSON.stringify(result)}`)
  return result.reason
}

/** What the server reads whole and refuses with a FATAL error. */
const refusalOf = (buf: Buffer): RefusedStartup => {
  const result = decodeStartup(buf)
  if (result._tag !== "Frame" || result.value._tag !== "RefusedStartup") {
    throw new Error(`expected a RefusedStartup, got ${JSON.stringify(result)}`)
  }
  expect(result.size).toBe(buf.readInt32BE(0))
  return result.value
}

/** A StartupMessage body written by hand, so the layout under test is not the encoder's. */
const body = (...strings: string[]): Buffer => Buffer.from(strings.map((s) => `${s}\0`).join(""), "utf8")

describe("decodeStartup", () => {
  it("decodes a StartupMessage's version, parameters in order, and keeps the raw bytes", () => {
    const bytes = encodeStartup({ user: "app", database: "appdb", application_name: "psql", options: "-c x=1" })
    const result = decodeStartup(bytes)
    expect(result).toMatchObject({ _tag: "Frame", size: bytes.length })
    const msg = startupOf(bytes)
    expect(msg).toMatchObject({ major: 3, minor: 0 })
    expect([...msg.parameters]).toEqual([
      ["user", "app"],
      ["database", "appdb"],
      ["application_name", "psql"],
      ["options", "-c x=1"]
    ])
    expect(msg.raw.equals(bytes)).toBe(true)
  })

  it("copies raw so it does not pin or alias the read buffer", () => {
    const bytes = encodeStartup({ user: "app" })
    const msg = startupOf(bytes)
    bytes.fill(0)
    expect(msg.raw.readInt32BE(0)).toBe(msg.raw.length)
  })

  it("accepts protocol 3.2 and a newer 3.x minor, which the backend will negotiate down", () => {
    expect(startupOf(encodeStartup({ user: "u" }, PROTOCOL_3_2))).toMatchObject({ major: 3, minor: 2 })
    expect(startupOf(encodeStartup({ user: "u" }, (3 << 16) | 9))).toMatchObject({ major: 3, minor: 9 })
  })

  it("keeps replication, _pq_ options and empty values as sent", () => {
    const b = body("user", "rep", "replication", "database", "_pq_.x", "", "database", "", "")
    expect(Object.fromEntries(startupOf(packet(8 + b.length, PROTOCOL_3_0, b)).parameters)).toEqual({
      user: "rep",
      replication: "database",
      "_pq_.x": "",
      database: ""
    })
  })

  it("decodes SSLRequest, GSSENCRequest and CancelRequest", () => {
    expect(decodeStartup(SSL_REQUEST)).toEqual({ _tag: "Frame", value: { _tag: "SSLRequest" }, size: 8 })
    expect(decodeStartup(packet(8, GSSENC_REQUEST_CODE))).toEqual({
      _tag: "Frame",
      value: { _tag: "GSSENCRequest" },
      size: 8
    })
    const cancel = decodeStartup(packet(16, CANCEL_REQUEST_CODE, int32(4242, -559038737)))
    expect(cancel).toMatchObject({ _tag: "Frame", size: 16, value: { _tag: "CancelRequest", processId: 4242 } })
    if (cancel._tag === "Frame" && cancel.value._tag === "CancelRequest") {
      expect(cancel.value.secretKey.toString("hex")).toBe("deadbeef")
    }
  })

  it("decodes a protocol 3.2 CancelRequest with a 32-byte key and the 256-byte maximum", () => {
    for (const keyLength of [32, 256]) {
      const key = Buffer.alloc(keyLength, 0xab)
      const result = decodeStartup(encodeCancelRequest(7, key))
      expect(result).toMatchObject({ _tag: "Frame", size: 12 + keyLength })
      if (result._tag === "Frame" && result.value._tag === "CancelRequest") expect(result.value.secretKey).toEqual(key)
    }
  })

  it("round-trips a CancelRequest through encodeCancelRequest", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -0x80000000, max: 0x7fffffff }),
        fc.uint8Array({ minLength: 4, maxLength: 256 }),
        (pid, key) => {
          const bytes = encodeCancelRequest(pid, key)
          expect(decodeStartup(bytes)).toEqual({
            _tag: "Frame",
            value: { _tag: "CancelRequest", processId: pid, secretKey: Buffer.from(key) },
            size: bytes.length
          })
        }
      )
    )
  })

  it("answers Need, byte by byte, until the packet is whole, then a Frame of its exact size", () => {
    for (const bytes of [
      SSL_REQUEST,
      encodeStartup({ user: "app", database: "appdb" }),
      encodeCancelRequest(1, int32(2))
    ]) {
      const results = feedByteByByte(bytes, (b) => decodeStartup(b))
      const last = results.pop()
      for (const [i, result] of results.entries()) {
        expect(result._tag).toBe("Need")
        // Never asks for more than the packet still lacks, so a caller reading exactly that never over-reads.
        if (result._tag === "Need") expect(result.bytes).toBeLessThanOrEqual(bytes.length - (i + 1))
      }
      expect(last).toMatchObject({ _tag: "Frame", size: bytes.length })
    }
  })

  it("asks for exactly the rest once the length is known", () => {
    const bytes = encodeStartup({ user: "app" })
    expect(decodeStartup(bytes.subarray(0, 2))).toEqual({ _tag: "Need", bytes: 6 })
    expect(decodeStartup(bytes.subarray(0, 9))).toEqual({ _tag: "Need", bytes: bytes.length - 9 })
  })

  it("decodes two packets in one buffer one after the other using size", () => {
    const startup = encodeStartup({ user: "app", database: "appdb" })
    const both = Buffer.concat([SSL_REQUEST, startup])
    const first = decodeStartup(both)
    expect(first).toEqual({ _tag: "Frame", value: { _tag: "SSLRequest" }, size: 8 })
    const second = decodeStartup(both.subarray(first._tag === "Frame" ? first.size : 0))
    expect(second).toMatchObject({ _tag: "Frame", size: startup.length, value: { _tag: "StartupMessage" } })
    expect(decodeAll(both, (b) => decodeStartup(b)).map((v: Startup) => v._tag)).toEqual([
      "SSLRequest",
      "StartupMessage"
    ])
  })

  it("reads a packet's parameters only up to its own length, not into the next packet", () => {
    // The value's NUL is missing; the next packet starts with NUL bytes that must not stand in for it.
    const first = packet(8 + 7, PROTOCOL_3_0, Buffer.from("user\0ap", "latin1"))
    expect(refusalOf(Buffer.concat([first, SSL_REQUEST]))).toMatchObject({
      code: "08P01",
      message: "invalid startup packet layout: expected terminator as last byte"
    })
  })

  it("closes on a length above maxLength (10,000 after the length word, as the server) before the bytes arrive", () => {
    expect(reasonOf(packet(10_005, PROTOCOL_3_0))).toBe("invalid length of startup packet: 10005 (8 to 10004)")
    expect(reasonOf(packet(10_005, PROTOCOL_3_0).subarray(0, 4))).toContain("8 to 10004")
    expect(decodeStartup(packet(10_004, PROTOCOL_3_0))).toEqual({ _tag: "Need", bytes: 10_004 - 8 })
    expect(reasonOf(encodeStartup({ user: "a".repeat(100) }), 64)).toContain("8 to 68")
  })

  it("closes on a length field smaller than 8, negative or huge, e.g. node-postgres's Terminate sent first", () => {
    for (const length of [0, 4, 7, -1, -0x80000000]) {
      expect(reasonOf(packet(length, PROTOCOL_3_0))).toBe(`invalid length of startup packet: ${length} (8 to 10004)`)
    }
    expect(reasonOf(packet(0x7fffffff, PROTOCOL_3_0))).toContain("8 to 10004")
    expect(reasonOf(Buffer.from([0x58, 0, 0, 0, 4]))).toBe("invalid length of startup packet: 1476395008 (8 to 10004)")
  })

  it("refuses protocol 2.0, 4.0 and unknown request codes naming the version, once the packet is whole", () => {
    const v2 = encodeStartup({ user: "app" }, 2 << 16)
    expect(decodeStartup(v2.subarray(0, 8))).toEqual({ _tag: "Need", bytes: v2.length - 8 })
    expect(refusalOf(v2)).toEqual({
      _tag: "RefusedStartup",
      code: "0A000",
      message: "unsupported frontend protocol 2.0: server supports 3.0 to 3.2",
      byServer: true,
      version: 2 << 16
    })
    expect(refusalOf(encodeStartup({ user: "app" }, 4 << 16)).message).toBe(
      "unsupported frontend protocol 4.0: server supports 3.0 to 3.2"
    )
    expect(refusalOf(packet(8, 0xffff0001)).message).toContain("unsupported frontend protocol 65535.1")
    expect(refusalOf(packet(300, (1234 << 16) | 5681, Buffer.alloc(292))).message).toContain("protocol 1234.5681")
  })

  it("takes an SSLRequest or GSSENCRequest of any length, as the server looks only at the code", () => {
    expect(decodeStartup(packet(12, SSL_REQUEST_CODE, int32(0)))).toEqual({
      _tag: "Frame",
      value: { _tag: "SSLRequest" },
      size: 12
    })
    expect(decodeStartup(packet(9, GSSENC_REQUEST_CODE, Buffer.from([0])))).toMatchObject({
      value: { _tag: "GSSENCRequest" },
      size: 9
    })
  })

  it("closes on a CancelRequest of the wrong length as soon as it is visible", () => {
    expect(reasonOf(packet(12, CANCEL_REQUEST_CODE, int32(1)))).toContain("invalid length of CancelRequest: 12")
    expect(reasonOf(packet(15, CANCEL_REQUEST_CODE, Buffer.alloc(7)))).toContain("CancelRequest")
    expect(reasonOf(packet(12 + 257, CANCEL_REQUEST_CODE))).toContain("CancelRequest: 269")
  })

  it("refuses a StartupMessage without user, or with an empty one, with 28000", () => {
    const cases: Array<Record<string, string>> = [{ database: "appdb" }, { user: "", database: "appdb" }, {}]
    for (const params of cases) {
      expect(refusalOf(encodeStartup(params))).toMatchObject({
        code: "28000",
        message: "no PostgreSQL user name specified in startup packet",
        byServer: true
      })
    }
  })

  it("refuses every malformed parameter list with the server's one message", () => {
    const raw = (text: string) => {
      const b = Buffer.from(text, "latin1")
      return packet(8 + b.length, PROTOCOL_3_0, b)
    }
    for (const text of ["user", "user\0app", "user\0app\0", "", "user\0app\0\0x", "user\0app\0\0\0"]) {
      expect(refusalOf(raw(text))).toMatchObject({
        code: "08P01",
        message: "invalid startup packet layout: expected terminator as last byte",
        byServer: true
      })
    }
  })

  it("refuses a duplicate parameter in its own words, which the server and the proxy could read differently", () => {
    const b = body("user", "tenant_a", "database", "x", "user", "tenant_b", "")
    expect(refusalOf(packet(8 + b.length, PROTOCOL_3_0, b))).toMatchObject({
      message: 'duplicate startup parameter "user"',
      byServer: false
    })
  })

  it("refuses invalid UTF-8 in its own words rather than merge different names into one routing key", () => {
    const b = Buffer.concat([Buffer.from("user\0caf", "latin1"), Buffer.from([0xe9, 0, 0])])
    expect(refusalOf(packet(8 + b.length, PROTOCOL_3_0, b))).toMatchObject({
      message: "startup parameter is not valid UTF-8",
      byServer: false
    })
  })

  it("keeps non-ASCII and a leading BOM exactly", () => {
    const params = { user: "\u{feff}jörg", database: "données_🐘" }
    expect(Object.fromEntries(startupOf(encodeStartup(params)).parameters)).toEqual(params)
  })

  it("closes on garbage: HTTP, a TLS record and zeroes", () => {
    expect(reasonOf(Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))).toContain("invalid length of startup packet")
    expect(reasonOf(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc]))).toContain("8 to 10004")
    expect(reasonOf(Buffer.alloc(16))).toContain("invalid length of startup packet: 0")
  })

  it("never throws and returns well-formed results for arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const buf = Buffer.from(bytes)
        expect(wellFormed(decodeStartup(buf), buf.length)).toBe(true)
      }),
      { numRuns: 2000 }
    )
  })

  it("never throws on arbitrary bytes behind a plausible header", () => {
    const header = fc.constantFrom(
      PROTOCOL_3_0,
      PROTOCOL_3_2,
      SSL_REQUEST_CODE,
      GSSENC_REQUEST_CODE,
      CANCEL_REQUEST_CODE
    )
    fc.assert(
      fc.property(header, fc.uint8Array({ maxLength: 300 }), fc.integer({ min: -2, max: 2 }), (code, rest, skew) => {
        const buf = packet(8 + rest.length + skew, code, rest)
        expect(wellFormed(decodeStartup(buf), buf.length)).toBe(true)
      }),
      { numRuns: 2000 }
    )
  })

  const parameterName = fc.string({ minLength: 1, maxLength: 20 }).filter((s) => !s.includes("\0"))
  const parameterValue = fc.string({ maxLength: 40 }).filter((s) => !s.includes("\0"))
  const parameterMaps = fc
    .dictionary(parameterName, parameterValue, { maxKeys: 8 })
    .chain((extra) =>
      fc.record({ user: parameterValue.filter((s) => s.length > 0) }).map((required) => ({ ...required, ...extra }))
    )
    .filter((params) => params.user.length > 0)

  it("round-trips arbitrary parameter maps through encodeStartup", () => {
    fc.assert(
      fc.property(parameterMaps, fc.constantFrom(PROTOCOL_3_0, PROTOCOL_3_2), (params, version) => {
        const bytes = encodeStartup(new Map(Object.entries(params)), version)
        const result = decodeStartup(bytes)
        expect(result).toMatchObject({ _tag: "Frame", size: bytes.length })
        const msg = startupOf(bytes)
        expect(msg.minor).toBe(version & 0xffff)
        expect([...msg.parameters]).toEqual(Object.entries(params))
        // The proxy rewrites by re-encoding what it decoded: that must give back the same bytes.
        expect(encodeStartup(msg.parameters, version).equals(bytes)).toBe(true)
      })
    )
  })

  it("round-trips arbitrary unicode too", () => {
    const text = fc.string({ unit: "grapheme", maxLength: 20 }).filter((s) => !s.includes("\0"))
    fc.assert(
      fc.property(
        text.filter((s) => s.length > 0),
        text,
        (user, database) => {
          expect(Object.fromEntries(startupOf(encodeStartup({ user, database })).parameters)).toEqual({
            user,
            database
          })
        }
      )
    )
  })

  it("answers Need for every proper prefix of a valid packet", () => {
    fc.assert(
      fc.property(parameterMaps, fc.nat(), (params, cut) => {
        const bytes = encodeStartup(params)
        const prefix = bytes.subarray(0, cut % bytes.length)
        const result = decodeStartup(prefix)
        expect(result._tag).toBe("Need")
        if (result._tag === "Need") expect(prefix.length + result.bytes).toBeLessThanOrEqual(bytes.length)
      })
    )
  })
})

describe("encodeStartup", () => {
  it("writes the length, the version and a final NUL", () => {
    const bytes = encodeStartup(new Map([["user", "app"]]))
    expect(bytes.toString("latin1")).toBe("\0\0\0\x12\0\x03\0\0user\0app\0\0")
  })

  it("refuses a NUL or an empty name, which would change the packet's meaning", () => {
    expect(() => encodeStartup({ user: "a\0database" })).toThrow(RangeError)
    expect(() => encodeStartup({ "us\0er": "a" })).toThrow(RangeError)
    expect(() => encodeStartup({ "": "a" })).toThrow(RangeError)
  })
})

describe("databaseOf", () => {
  it("is the database, or the user when the database is absent or empty, as the server decides", () => {
    expect(databaseOf(startupOf(encodeStartup({ user: "u", database: "d" })))).toBe("d")
    expect(databaseOf(startupOf(encodeStartup({ user: "u" })))).toBe("u")
    expect(databaseOf(startupOf(encodeStartup({ user: "u", database: "" })))).toBe("u")
  })
})

describe("detectDirectTls", () => {
  it("sees a TLS handshake record in the first byte, a length otherwise, and needs one byte", () => {
    expect(detectDirectTls(Buffer.from([0x16, 0x03, 0x01]))).toBe(true)
    expect(detectDirectTls(Buffer.from([0x16]))).toBe(true)
    expect(detectDirectTls(SSL_REQUEST)).toBe(false)
    expect(detectDirectTls(encodeStartup({ user: "app" }))).toBe(false)
    expect(detectDirectTls(Buffer.alloc(0))).toBe("need")
  })
})
