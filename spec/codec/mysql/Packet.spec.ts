import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  decodePacket,
  encodePacket,
  MAX_PACKET_PAYLOAD,
  nextSequenceId,
  PACKET_TOO_LARGE,
  type Packet
} from "../../../src/codec/mysql/index.ts"
import { decodeAll, expectNeedThenFrame, frameOf, rawPacket, reasonOf, wellFormed } from "./support.ts"

describe("decodePacket / encodePacket", () => {
  it("frames a payload with its 3-byte length and sequence id", () => {
    const bytes = encodePacket(Buffer.from("hello"), 7)
    expect(bytes.toString("hex")).toBe("0500000768656c6c6f")
    expect(decodePacket(bytes)).toEqual({
      _tag: "Frame",
      value: { sequenceId: 7, lastSequenceId: 7, payload: Buffer.from("hello") },
      size: 9
    })
  })

  it("accepts an empty payload (an empty password's auth response)", () => {
    expect(frameOf(decodePacket(Buffer.from([0, 0, 0, 3])))).toEqual({
      sequenceId: 3,
      lastSequenceId: 3,
      payload: Buffer.alloc(0)
    })
  })

  it("answers Need byte by byte, never asking past the packet", () => {
    const bytes = encodePacket(Buffer.from("select 1"), 0)
    expect(expectNeedThenFrame(bytes, (b) => decodePacket(b)).payload.toString()).toBe("select 1")
    expect(decodePacket(bytes.subarray(0, 2))).toEqual({ _tag: "Need", bytes: 2 })
    expect(decodePacket(bytes.subarray(0, 5))).toEqual({ _tag: "Need", bytes: bytes.length - 5 })
  })

  it("decodes two packets in one buffer, one after the other", () => {
    const both = Buffer.concat([encodePacket(Buffer.from("a"), 1), encodePacket(Buffer.from("bc"), 2)])
    const packets = decodeAll(both, (b) => decodePacket(b))
    expect(packets.map((p: Packet) => [p.sequenceId, p.payload.toString()])).toEqual([
      [1, "a"],
      [2, "bc"]
    ])
  })

  it("joins a 16 MB+ payload split at 2^24-1 bytes, numbering the parts on", () => {
    const payload = Buffer.alloc(MAX_PACKET_PAYLOAD * 2 + 10, 0x61)
    payload[0] = 1
    payload[payload.length - 1] = 2
    const bytes = encodePacket(payload, 255)
    expect(bytes.length).toBe(payload.length + 12)
    expect([bytes[3], bytes[4 + MAX_PACKET_PAYLOAD + 3], bytes[2 * (4 + MAX_PACKET_PAYLOAD) + 3]]).toEqual([255, 0, 1])
    const packet = frameOf(decodePacket(bytes))
    expect(packet.sequenceId).toBe(255)
    expect(packet.lastSequenceId).toBe(1)
    expect(nextSequenceId(packet)).toBe(2)
    expect(packet.payload.equals(payload)).toBe(true)
    // Need, not a frame, until the last part is in
    expect(decodePacket(bytes.subarray(0, bytes.length - 1))).toEqual({ _tag: "Need", bytes: 1 })
    expect(decodePacket(bytes.subarray(0, 4 + MAX_PACKET_PAYLOAD))).toEqual({ _tag: "Need", bytes: 4 })
  })

  it("ends a payload of exactly 2^24-1 bytes with an empty packet", () => {
    const payload = Buffer.alloc(MAX_PACKET_PAYLOAD, 0x62)
    const bytes = encodePacket(payload, 0)
    expect(bytes.length).toBe(MAX_PACKET_PAYLOAD + 8)
    expect(bytes.subarray(bytes.length - 4).toString("hex")).toBe("00000001")
    const packet = frameOf(decodePacket(bytes))
    expect(packet.payload.length).toBe(MAX_PACKET_PAYLOAD)
    expect(packet.lastSequenceId).toBe(1)
  })

  it("refuses a continuation whose sequence id does not follow on", () => {
    const first = rawPacket(Buffer.alloc(0), 4, MAX_PACKET_PAYLOAD)
    const bytes = Buffer.concat([
      first.subarray(0, 4),
      Buffer.alloc(MAX_PACKET_PAYLOAD),
      rawPacket(Buffer.from("x"), 9)
    ])
    expect(reasonOf(decodePacket(bytes))).toBe("packet continuation has sequence id 9, expected 5")
  })

  it("refuses a payload above the limit as soon as the header shows it", () => {
    const header = rawPacket(Buffer.alloc(0), 1, 70_000).subarray(0, 4)
    const reason = reasonOf(decodePacket(header, 16_380))
    expect(reason.startsWith(PACKET_TOO_LARGE)).toBe(true)
    expect(reason).toBe("packet too large: 70000 bytes, the limit is 16380")
    expect(decodePacket(rawPacket(Buffer.alloc(16_380), 1), 16_380)._tag).toBe("Frame")
    // several parts count together
    const parts = rawPacket(Buffer.alloc(0), 0, MAX_PACKET_PAYLOAD).subarray(0, 4)
    expect(reasonOf(decodePacket(parts, 1000))).toContain("or more")
  })

  it("round-trips any payload and sequence id (fast-check)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.integer({ min: 0, max: 255 }), (payload, seq) => {
        const bytes = encodePacket(payload, seq)
        expect(decodePacket(bytes)).toEqual({
          _tag: "Frame",
          value: { sequenceId: seq, lastSequenceId: seq, payload: Buffer.from(payload) },
          size: bytes.length
        })
      })
    )
  })

  it("never throws on arbitrary bytes and always answers a well-formed result (fast-check)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 0, max: 1 << 20 }), (bytes, max) => {
        expect(wellFormed(decodePacket(Buffer.from(bytes), max), bytes.length)).toBe(true)
      })
    )
  })
})
