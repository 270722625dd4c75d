import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  decodeAuthentication,
  decodeFrontendMessage,
  decodePasswordMessage,
  decodeSaslInitialResponse,
  decodeSaslMechanisms,
  decodeSaslResponse,
  encodeAuthenticationCleartext,
  encodeAuthenticationMd5,
  encodeAuthenticationOk,
  encodeAuthenticationSasl,
  encodeAuthenticationSaslContinue,
  encodeAuthenticationSaslFinal,
  encodePasswordMessage,
  encodeSaslInitialResponse,
  encodeSaslResponse,
  type FrontendMessage,
  MAX_SASL_MESSAGE_LENGTH
} from "../../../src/codec/pg/Authentication.ts"
import { AuthenticationCode, decodeBackendMessage } from "../../../src/codec/pg/index.ts"
import { decodeAll, feedByteByByte, int32, message, wellFormed } from "./support.ts"

/** One whole message: its type and body, failing the spec otherwise. */
const framed = (bytes: Buffer, decode: typeof decodeBackendMessage = decodeBackendMessage) => {
  const result = decode(bytes)
  if (result._tag !== "Frame" || result.size !== bytes.length) throw new Error(JSON.stringify(result))
  return result.value
}

const request = (bytes: Buffer) => {
  const m = framed(bytes)
  expect(m.type).toBe("R")
  const result = decodeAuthentication(m.body)
  if (result._tag !== "Frame") throw new Error(result.reason)
  return { code: result.value.code, data: Buffer.from(result.value.data) }
}

describe("authentication requests ('R')", () => {
  it("encode and decode Ok, cleartext, MD5, SASL, SASLContinue and SASLFinal", () => {
    expect(encodeAuthenticationOk()).toEqual(message("R", int32(0)))
    expect(request(encodeAuthenticationOk())).toEqual({ code: AuthenticationCode.Ok, data: Buffer.alloc(0) })
    expect(request(encodeAuthenticationCleartext())).toEqual({ code: 3, data: Buffer.alloc(0) })
    expect(request(encodeAuthenticationMd5(Buffer.from("salt")))).toEqual({ code: 5, data: Buffer.from("salt") })
    const sasl = request(encodeAuthenticationSasl(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]))
    expect(sasl.code).toBe(AuthenticationCode.SASL)
    expect(sasl.data.toString("latin1")).toBe("SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0")
    expect(decodeSaslMechanisms(sasl.data)).toEqual({
      _tag: "Frame",
      value: ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"],
      size: sasl.data.length
    })
    expect(request(encodeAuthenticationSaslContinue(Buffer.from("r=abc,s=c2FsdA==,i=4096")))).toEqual({
      code: 11,
      data: Buffer.from("r=abc,s=c2FsdA==,i=4096")
    })
    expect(request(encodeAuthenticationSaslFinal(Buffer.from("v=xyz")))).toEqual({
      code: 12,
      data: Buffer.from("v=xyz")
    })
  })

  it("refuses a salt that is not 4 bytes when encoding (the caller's bug)", () => {
    expect(() => encodeAuthenticationMd5(Buffer.alloc(3))).toThrow(RangeError)
  })

  it("refuses requests whose data does not fit their code, and passes unknown codes through", () => {
    const body = (code: number, data: Buffer = Buffer.alloc(0)) => Buffer.concat([int32(code), data])
    expect(decodeAuthentication(Buffer.alloc(3))).toEqual({
      _tag: "Invalid",
      reason: "invalid authentication request: 3 bytes"
    })
    expect(decodeAuthentication(body(0, Buffer.of(1)))._tag).toBe("Invalid")
    expect(decodeAuthentication(body(3, Buffer.of(1)))._tag).toBe("Invalid")
    expect(decodeAuthentication(body(5, Buffer.alloc(3)))._tag).toBe("Invalid")
    expect(decodeAuthentication(body(5, Buffer.alloc(5)))._tag).toBe("Invalid")
    expect(decodeAuthentication(body(10, Buffer.from("SCRAM-SHA-256\0")))).toMatchObject({
      _tag: "Invalid",
      reason: "invalid SASL authentication request: mechanism list not terminated"
    })
    expect(decodeAuthentication(body(10, Buffer.from("SCRAM-SHA-256\0\0x")))._tag).toBe("Invalid")
    expect(decodeAuthentication(body(10))._tag).toBe("Invalid")
    // An empty list is well-formed: the caller finds nothing it can use.
    expect(decodeSaslMechanisms(Buffer.of(0))).toEqual({ _tag: "Frame", value: [], size: 1 })
    // GSS: not for the codec to judge.
    expect(decodeAuthentication(body(7, Buffer.from("anything")))).toMatchObject({
      _tag: "Frame",
      value: { code: 7 },
      size: 12
    })
  })

  it("never throws and returns well-formed results for arbitrary bodies", () => {
    fc.assert(
      fc.property(fc.constantFrom(0, 3, 5, 7, 10, 11, 12, -1), fc.uint8Array({ maxLength: 60 }), (code, data) => {
        const body = Buffer.concat([int32(code), data])
        expect(wellFormed(decodeAuthentication(body), body.length)).toBe(true)
        expect(wellFormed(decodeAuthentication(Buffer.from(data)), Math.max(data.length, 1))).toBe(true)
      }),
      { numRuns: 2000 }
    )
  })
})

const frontend = (bytes: Buffer) => framed(bytes, (b) => decodeFrontendMessage(b))

describe("client answers ('p')", () => {
  it("encode and decode a SASLInitialResponse with data, with empty data, and without (-1)", () => {
    const withData = frontend(encodeSaslInitialResponse("SCRAM-SHA-256", Buffer.from("n,,n=,r=abc")))
    expect(withData.type).toBe("p")
    const decoded = decodeSaslInitialResponse(withData.body)
    expect(decoded).toMatchObject({ _tag: "Frame", value: { mechanism: "SCRAM-SHA-256" }, size: withData.body.length })
    if (decoded._tag !== "Frame") throw new Error(decoded.reason)
    expect(decoded.value.data?.toString()).toBe("n,,n=,r=abc")
    const empty = decodeSaslInitialResponse(frontend(encodeSaslInitialResponse("X", Buffer.alloc(0))).body)
    expect(empty).toMatchObject({ _tag: "Frame", value: { mechanism: "X", data: Buffer.alloc(0) } })
    const none = frontend(encodeSaslInitialResponse("SCRAM-SHA-256", undefined))
    expect(none.body.subarray(-4)).toEqual(int32(-1))
    expect(decodeSaslInitialResponse(none.body)).toEqual({
      _tag: "Frame",
      value: { mechanism: "SCRAM-SHA-256", data: undefined },
      size: none.body.length
    })
  })

  it("refuses a malformed SASLInitialResponse in PostgreSQL's words", () => {
    const body = (length: number, data = "", mechanism = "SCRAM-SHA-256\0") =>
      Buffer.concat([Buffer.from(mechanism, "latin1"), int32(length), Buffer.from(data)])
    const reason = (b: Buffer) => {
      const result = decodeSaslInitialResponse(b)
      return result._tag === "Invalid" ? result.reason : "accepted"
    }
    expect(reason(Buffer.from("SCRAM-SHA-256"))).toBe("invalid string in message")
    expect(reason(Buffer.from("SCRAM-SHA-256\0\0\0"))).toBe("insufficient data left in message")
    expect(reason(body(5, "abcd"))).toBe("insufficient data left in message")
    expect(reason(body(-2))).toBe("insufficient data left in message")
    expect(reason(body(3, "abcd"))).toBe("invalid message format")
    expect(reason(body(-1, "x"))).toBe("invalid message format")
    expect(reason(body(4, "abcd"))).toBe("accepted")
    expect(reason(Buffer.alloc(0))).toBe("invalid string in message")
  })

  it("encode and decode SASLResponse and PasswordMessage", () => {
    const response = frontend(encodeSaslResponse(Buffer.from("c=biws,r=abc,p=xyz")))
    expect(response.type).toBe("p")
    expect(decodeSaslResponse(response.body).toString()).toBe("c=biws,r=abc,p=xyz")
    const password = frontend(encodePasswordMessage("md5abc"))
    expect(decodePasswordMessage(password.body)).toEqual({ _tag: "Frame", value: "md5abc", size: 7 })
    expect(decodePasswordMessage(frontend(encodePasswordMessage("pässword")).body)).toMatchObject({ value: "pässword" })
    // PostgreSQL refuses an empty password itself (28P01); the codec only frames it.
    expect(decodePasswordMessage(Buffer.of(0))).toEqual({ _tag: "Frame", value: "", size: 1 })
    for (const bad of [Buffer.from("abc"), Buffer.from("a\0b\0"), Buffer.from("ab\0c"), Buffer.alloc(0)]) {
      expect(decodePasswordMessage(bad)).toEqual({ _tag: "Invalid", reason: "invalid password packet size" })
    }
  })

  it("never throws and returns well-formed results for arbitrary bodies", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
        const body = Buffer.from(bytes)
        expect(wellFormed(decodeSaslInitialResponse(body), Math.max(body.length, 1))).toBe(true)
        expect(wellFormed(decodePasswordMessage(body), Math.max(body.length, 1))).toBe(true)
        expect(wellFormed(decodeSaslMechanisms(body), Math.max(body.length, 1))).toBe(true)
      }),
      { numRuns: 2000 }
    )
  })
})

describe("decodeFrontendMessage", () => {
  const login = Buffer.concat([
    encodeSaslInitialResponse("SCRAM-SHA-256", Buffer.from("n,,n=,r=abc")),
    encodeSaslResponse(Buffer.from("c=biws,r=abcdef,p=xyz")),
    message("Q", Buffer.from("SELECT 1\0")),
    message("X")
  ])

  it("frames concatenated client messages one after another", () => {
    const messages: FrontendMessage[] = decodeAll(login, (b) => decodeFrontendMessage(b))
    expect(messages.map((m) => m.type)).toEqual(["p", "p", "Q", "X"])
  })

  it("answers Need byte by byte until the message is whole", () => {
    const first = encodePasswordMessage("secret")
    const results = feedByteByByte(first, (b) => decodeFrontendMessage(b))
    expect(results.pop()).toMatchObject({ _tag: "Frame", size: first.length })
    for (const [i, result] of results.entries()) {
      expect(result._tag).toBe("Need")
      if (result._tag === "Need") expect(result.bytes).toBeLessThanOrEqual(first.length - (i + 1))
    }
  })

  it("refuses a type no client sends, a length below 4, and a SASL message over PostgreSQL's 1024 bytes", () => {
    expect(decodeFrontendMessage(Buffer.from([0x16, 3, 1, 0, 200, 1]))).toEqual({
      _tag: "Invalid",
      reason: "invalid frontend message type 0x16"
    })
    expect(decodeFrontendMessage(Buffer.from([0x70, 0, 0, 0, 3]))).toEqual({
      _tag: "Invalid",
      reason: "invalid frontend message length 3 (at least 4)"
    })
    const big = encodeSaslResponse(Buffer.alloc(1025, 0x61))
    expect(decodeFrontendMessage(big, MAX_SASL_MESSAGE_LENGTH)).toEqual({
      _tag: "Invalid",
      reason: "frontend message too long: 1029 bytes (at most 1028)"
    })
    expect(decodeFrontendMessage(encodeSaslResponse(Buffer.alloc(1024)), MAX_SASL_MESSAGE_LENGTH)._tag).toBe("Frame")
  })

  it("never throws and returns well-formed results for arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const buf = Buffer.from(bytes)
        expect(wellFormed(decodeFrontendMessage(buf), buf.length)).toBe(true)
      }),
      { numRuns: 2000 }
    )
  })

  it("answers Need for every proper prefix, and Frame for every whole message", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat(), (body, cut) => {
        const bytes = encodeSaslResponse(body)
        expect(decodeFrontendMessage(bytes.subarray(0, cut % bytes.length))._tag).toBe("Need")
        expect(decodeFrontendMessage(bytes)).toMatchObject({ _tag: "Frame", size: bytes.length })
      })
    )
  })
})
