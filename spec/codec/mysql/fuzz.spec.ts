// No decoder throws, whatever arrives: arbitrary bytes, and arbitrary payloads behind a valid header.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  classifyAuthReply,
  type Decoded,
  decodeAttributes,
  decodeAuthMoreData,
  decodeAuthSwitchRequest,
  decodeClientHandshake,
  decodeEofPacket,
  decodeErrPacket,
  decodeHandshakeV10,
  decodeOkPacket,
  decodePacket,
  encodePacket,
  parseSslRequest
} from "../../../src/codec/mysql/index.ts"
import { wellFormed } from "./support.ts"

const decoders: ReadonlyArray<readonly [string, (buf: Buffer) => Decoded<unknown>]> = [
  ["decodePacket", (b) => decodePacket(b, 1 << 16)],
  ["decodeHandshakeV10", (b) => decodeHandshakeV10(b)],
  ["decodeClientHandshake", (b) => decodeClientHandshake(b, 16_380)],
  ["decodeAuthSwitchRequest", (b) => decodeAuthSwitchRequest(b)],
  ["decodeAuthMoreData", (b) => decodeAuthMoreData(b)],
  ["decodeErrPacket", (b) => decodeErrPacket(b)],
  ["decodeOkPacket", (b) => decodeOkPacket(b)],
  ["decodeEofPacket", (b) => decodeEofPacket(b)]
]

// Payloads that look like the real thing often enough to get past the first checks.
const payloads = fc.oneof(
  fc.uint8Array({ maxLength: 200 }),
  fc
    .tuple(fc.constantFrom(0x0a, 0xfe, 0xff, 0x00, 0x01), fc.uint8Array({ maxLength: 120 }))
    .map(([m, rest]) => Uint8Array.from([m, ...rest])),
  // a HandshakeResponse41 head with every capability, then noise
  fc.uint8Array({ minLength: 28, maxLength: 150 }).map((rest) => Uint8Array.from([0xff, 0xff, 0xff, 0xff, ...rest]))
)

describe("mysql codec under arbitrary input (fast-check)", () => {
  it.each(decoders)("%s never throws on raw bytes and answers a well-formed result", (_, decode) => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        expect(wellFormed(decode(Buffer.from(bytes)), bytes.length)).toBe(true)
      }),
      { numRuns: 500 }
    )
  })

  it.each(decoders)("%s never throws on arbitrary payloads in a valid frame", (_, decode) => {
    fc.assert(
      fc.property(payloads, fc.integer({ min: 0, max: 255 }), (payload, seq) => {
        const bytes = encodePacket(payload, seq)
        expect(wellFormed(decode(bytes), bytes.length)).toBe(true)
      }),
      { numRuns: 500 }
    )
  })

  it("the payload-level helpers never throw either", () => {
    fc.assert(
      fc.property(payloads, (payload) => {
        const buf = Buffer.from(payload)
        for (const result of [classifyAuthReply(buf), decodeAttributes(buf), parseSslRequest(buf)]) {
          expect(typeof result === "string" || typeof result._tag === "string").toBe(true)
        }
      }),
      { numRuns: 1000 }
    )
  })
})
