import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  AuthenticationCode,
  type BackendMessage,
  decodeAuthenticationCode,
  decodeBackendKeyData,
  decodeBackendMessage,
  decodeReadyForQuery,
  MAX_BACKEND_MESSAGE_LENGTH
} from "../../../src/codec/pg/index.ts"
import { decodeAll, feedByteByByte, int32, message, wellFormed } from "./support.ts"

const cstrings = (...strings: string[]): Buffer => Buffer.from(strings.map((s) => `${s}\0`).join(""), "utf8")

/** What a 3.0 server sends after a successful login. */
const loginTail = Buffer.concat([
  message("R", int32(AuthenticationCode.Ok)),
  message("S", cstrings("server_version", "15.18")),
  message("S", cstrings("client_encoding", "UTF8")),
  message("K", int32(4242, -559038737)),
  message("Z", Buffer.from("I"))
])

describe("decodeBackendMessage", () => {
  it("frames concatenated R, S, K, Z messages one after another", () => {
    const messages = decodeAll(loginTail, (b) => decodeBackendMessage(b))
    expect(messages.map((m) => m.type)).toEqual(["R", "S", "S", "K", "Z"])
    expect(messages.map((m) => m.body.length)).toEqual([4, 21, 21, 8, 1])
  })

  it("answers Need byte by byte until the message is whole", () => {
    const first = message("S", cstrings("server_version", "15.18"))
    const results = feedByteByByte(first, (b) => decodeBackendMessage(b))
    expect(results.pop()).toMatchObject({ _tag: "Frame", size: first.length, value: { type: "S" } })
    for (const [i, result] of results.entries()) {
      expect(result._tag).toBe("Need")
      if (result._tag === "Need") expect(result.bytes).toBeLessThanOrEqual(first.length - (i + 1))
    }
    expect(decodeBackendMessage(first.subarray(0, 7))).toEqual({ _tag: "Need", bytes: first.length - 7 })
  })

  it("frames an empty body (length 4)", () => {
    expect(decodeBackendMessage(message("I"))).toMatchObject({ _tag: "Frame", size: 5, value: { type: "I" } })
  })

  it("refuses a length below 4, negative, or above the cap (1 GiB by default)", () => {
    const header = (length: number) => {
      const b = Buffer.alloc(5)
      b.write("R")
      b.writeInt32BE(length, 1)
      return b
    }
    expect(decodeBackendMessage(header(3))).toEqual({
      _tag: "Invalid",
      reason: "invalid backend message length 3 (at least 4)"
    })
    expect(decodeBackendMessage(header(-1))._tag).toBe("Invalid")
    expect(decodeBackendMessage(header(MAX_BACKEND_MESSAGE_LENGTH))).toEqual({
      _tag: "Need",
      bytes: MAX_BACKEND_MESSAGE_LENGTH - 4
    })
    expect(decodeBackendMessage(header(MAX_BACKEND_MESSAGE_LENGTH + 1))).toEqual({
      _tag: "Invalid",
      reason: `backend message too long: ${MAX_BACKEND_MESSAGE_LENGTH + 1} bytes (at most ${MAX_BACKEND_MESSAGE_LENGTH})`
    })
    expect(decodeBackendMessage(header(100), 64)).toMatchObject({ _tag: "Invalid" })
  })

  it("refuses a type byte that no PostgreSQL message has", () => {
    // A TLS alert: what a TLS-only server answers to a plaintext startup.
    expect(decodeBackendMessage(Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46]))).toEqual({
      _tag: "Invalid",
      reason: "invalid backend message type 0x15"
    })
    expect(decodeBackendMessage(Buffer.from([0, 0, 0, 0, 8]))._tag).toBe("Invalid")
  })

  it("returns a view of the input, not a copy", () => {
    const bytes = message("S", cstrings("a", "b"))
    const result = decodeBackendMessage(bytes)
    if (result._tag !== "Frame") throw new Error("expected a frame")
    expect(result.value.body.buffer).toBe(bytes.buffer)
  })

  it("never throws and returns well-formed results for arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const buf = Buffer.from(bytes)
        expect(wellFormed(decodeBackendMessage(buf), buf.length)).toBe(true)
      }),
      { numRuns: 2000 }
    )
  })

  it("frames any sequence of messages back into the same types and bodies", () => {
    const anyMessage = fc.record({
      type: fc.constantFrom("R", "S", "K", "Z", "E", "N", "v", "1", "D"),
      body: fc.uint8Array({ maxLength: 64 })
    })
    fc.assert(
      fc.property(fc.array(anyMessage, { maxLength: 10 }), (messages) => {
        const bytes = Buffer.concat(messages.map((m) => message(m.type, m.body)))
        const framed: BackendMessage[] = decodeAll(bytes, (b) => decodeBackendMessage(b))
        expect(framed.map((m) => ({ type: m.type, body: new Uint8Array(m.body) }))).toEqual(messages)
      })
    )
  })

  it("answers Need for every proper prefix of a message", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat(), (body, cut) => {
        const bytes = message("D", body)
        expect(decodeBackendMessage(bytes.subarray(0, cut % bytes.length))._tag).toBe("Need")
      })
    )
  })
})

describe("decodeBackendKeyData", () => {
  it("reads a 3.0 key of 4 bytes and copies it", () => {
    const body = int32(4242, -559038737)
    const result = decodeBackendKeyData(body)
    expect(result).toMatchObject({ _tag: "Frame", value: { processId: 4242 } })
    if (result._tag !== "Frame") throw new Error("expected a frame")
    expect(result.value.secretKey.toString("hex")).toBe("deadbeef")
    body.fill(0)
    expect(result.value.secretKey.toString("hex")).toBe("deadbeef")
  })

  it("reads a 3.2 key of 32 and of 256 bytes", () => {
    for (const length of [32, 256]) {
      const key = Buffer.alloc(length, 7)
      const result = decodeBackendKeyData(Buffer.concat([int32(99), key]))
      expect(result).toEqual({ _tag: "Frame", value: { processId: 99, secretKey: key }, size: 4 + length })
    }
  })

  it("refuses keys shorter than 4 or longer than 256 bytes", () => {
    expect(decodeBackendKeyData(int32(1))).toMatchObject({ _tag: "Invalid" })
    expect(decodeBackendKeyData(Buffer.alloc(7))).toEqual({
      _tag: "Invalid",
      reason: "invalid BackendKeyData: secret key of 3 bytes (4 to 256 expected)"
    })
    expect(decodeBackendKeyData(Buffer.alloc(4 + 257))._tag).toBe("Invalid")
    expect(decodeBackendKeyData(Buffer.alloc(0))._tag).toBe("Invalid")
  })

  it("never throws", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        expect(wellFormed(decodeBackendKeyData(Buffer.from(bytes)), Math.max(bytes.length, 1))).toBe(true)
      })
    )
  })
})

describe("decodeAuthenticationCode and decodeReadyForQuery", () => {
  it("read the login sequence's R and Z bodies", () => {
    expect(decodeAuthenticationCode(int32(0))).toMatchObject({ _tag: "Frame", value: AuthenticationCode.Ok })
    expect(decodeAuthenticationCode(Buffer.concat([int32(10), cstrings("SCRAM-SHA-256", "")]))).toMatchObject({
      value: AuthenticationCode.SASL
    })
    expect(decodeAuthenticationCode(Buffer.alloc(3))._tag).toBe("Invalid")
    expect(decodeReadyForQuery(Buffer.from("I"))).toEqual({ _tag: "Frame", value: "I", size: 1 })
    expect(decodeReadyForQuery(Buffer.from("T"))).toMatchObject({ value: "T" })
    expect(decodeReadyForQuery(Buffer.from("E"))).toMatchObject({ value: "E" })
    expect(decodeReadyForQuery(Buffer.from("X"))._tag).toBe("Invalid")
    expect(decodeReadyForQuery(Buffer.from("II"))._tag).toBe("Invalid")
    expect(decodeReadyForQuery(Buffer.alloc(0))._tag).toBe("Invalid")
  })
})
