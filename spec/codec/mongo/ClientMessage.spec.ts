import { serialize } from "bson"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  type ClientMessage,
  defaultClientLimits,
  encodeOpCompressed,
  encodeOpMsg,
  encodeOpQuery,
  MAX_COMMAND_BODY,
  MAX_HANDSHAKE_MESSAGE,
  peekClientMessage
} from "../../../src/codec/mongo/index.ts"
import {
  bodySection,
  checkByteByByte,
  message,
  mutated,
  plausibleBytes,
  rawOpMsg,
  sequenceSection,
  wellFormed
} from "./support.ts"

const reasonOf = (buf: Buffer) => {
  const r = peekClientMessage(buf)
  if (r._tag !== "Invalid") throw new Error(`expected Invalid, got ${JSON.stringify(r)}`)
  return r.reason
}

const commandOf = (m: ClientMessage) => {
  if (m._tag !== "Command") throw new Error(`expected a command, got ${m._tag}`)
  return m
}

/** The first 25 bytes of an OP_MSG announcing `length` bytes and a body of `bodySize`. */
const prefix = (length: number, bodySize: number) => {
  const out = message(length, 3, 2013, Buffer.alloc(9))
  out.writeInt32LE(bodySize, 21)
  return out
}

describe("peekClientMessage", () => {
  it("stops at the end of an OP_MSG body: the rest of the message is the relay's", () => {
    const bytes = encodeOpMsg({
      requestId: 8,
      body: { insert: "items", $db: "tenant1" },
      sequences: [{ identifier: "documents", documents: [{ big: "x".repeat(1000) }] }]
    })
    const bodyEnd = 21 + serialize({ insert: "items", $db: "tenant1" }).length
    const m = commandOf(checkByteByByte(bytes, (b) => peekClientMessage(b), bodyEnd))
    expect(m).toMatchObject({ legacy: false, flagBits: 0, name: "insert", db: "tenant1" })
    expect(m.header).toEqual({ messageLength: bytes.length, requestId: 8, responseTo: 0, opCode: 2013 })
    // Bytes beyond the body change nothing.
    expect(peekClientMessage(bytes)).toMatchObject({ _tag: "Frame", size: bodyEnd })
  })

  it("skips a document sequence sent before the body", () => {
    const bytes = rawOpMsg(1, 0, [sequenceSection("documents", [{ a: 1 }]), bodySection({ insert: "c", $db: "d" })])
    const r = peekClientMessage(bytes)
    expect(r).toMatchObject({ _tag: "Frame", size: bytes.length, value: { name: "insert", db: "d" } })
  })

  it("reads a legacy OP_QUERY handshake whole, its database from the collection name", () => {
    const bytes = encodeOpQuery({
      requestId: 4,
      fullCollectionName: "admin.$cmd",
      query: { isMaster: 1, helloOk: true }
    })
    const m = commandOf(checkByteByByte(bytes, (b) => peekClientMessage(b)))
    expect(m).toMatchObject({ legacy: true, name: "isMaster", db: "admin", flagBits: 0 })
  })

  it("refuses OP_QUERY that is not a command, or larger than a handshake", () => {
    expect(reasonOf(encodeOpQuery({ requestId: 1, fullCollectionName: "tenant1.items", query: { a: 1 } }))).toBe(
      'OP_QUERY on "tenant1.items": only commands (the handshake) may use OP_QUERY'
    )
    expect(reasonOf(encodeOpQuery({ requestId: 1, fullCollectionName: ".$cmd", query: { a: 1 } }))).toContain(
      "only commands"
    )
    expect(reasonOf(message(MAX_HANDSHAKE_MESSAGE + 1, 1, 2004))).toContain("only the handshake may use OP_QUERY")
  })

  it("names the compressor of an OP_COMPRESSED after 25 bytes", () => {
    const bytes = encodeOpCompressed({
      requestId: 2,
      originalOpcode: 2013,
      uncompressedSize: 50,
      compressorId: 1,
      payload: Buffer.alloc(30)
    })
    expect(checkByteByByte(bytes, (b) => peekClientMessage(b), 25)).toMatchObject({
      _tag: "Compressed",
      compressor: "snappy"
    })
  })

  it("refuses what no driver sends, as soon as the header shows it", () => {
    expect(reasonOf(message(16, 1, 2002))).toBe("OP_INSERT was removed in MongoDB 5.1: use a driver that speaks OP_MSG")
    expect(reasonOf(message(16, 1, 2005))).toContain("OP_GET_MORE was removed")
    expect(reasonOf(message(36, 1, 1))).toBe("OP_REPLY is a server's reply, not a request")
    expect(reasonOf(message(16, 1, 42))).toBe("unknown opcode 42: not a MongoDB request")
    expect(reasonOf(Buffer.from("GET / HTTP/1.1\r\n"))).toBe(
      "message of 542393671 bytes is larger than the limit of 48000000 bytes"
    )
    // A TLS ClientHello announces a plausible length: its "opcode" gives it away at 16 bytes.
    const clientHello = Buffer.from("160301020001000200030300000000000000", "hex")
    expect(peekClientMessage(clientHello.subarray(0, 15))._tag).toBe("Need")
    expect(reasonOf(clientHello)).toBe("a TLS handshake, but this listener does not terminate TLS")
  })

  it("tells a body past the limit apart as soon as its size is in, before buffering it", () => {
    const header = { messageLength: 40_000_000, requestId: 3, responseTo: 0, opCode: 2013 }
    expect(peekClientMessage(prefix(40_000_000, MAX_COMMAND_BODY))).toEqual({
      _tag: "Frame",
      value: { _tag: "Oversized", header, bodyEnd: 21 + MAX_COMMAND_BODY },
      size: 25
    })
    expect(peekClientMessage(prefix(40_000_000, MAX_COMMAND_BODY - 21))).toEqual({
      _tag: "Need",
      bytes: MAX_COMMAND_BODY - 25
    })
    // The limit is the caller's: the listener's is far below a server's (listeners.mongodb.maxRoutingCommand).
    const limits = { ...defaultClientLimits, maxBody: 65_536 }
    expect(peekClientMessage(prefix(16_000_000, 65_536 - 20), limits)).toMatchObject({
      value: { _tag: "Oversized", bodyEnd: 65_537 }
    })
    expect(peekClientMessage(prefix(16_000_000, 65_536 - 21), limits)).toEqual({ _tag: "Need", bytes: 65_536 - 25 })
    // A small body followed by large document sequences (insertMany) is read up to the body's end only.
    const many = encodeOpMsg({
      requestId: 4,
      body: { insert: "items", $db: "tenant1" },
      sequences: [{ identifier: "documents", documents: [{ big: "x".repeat(100_000) }] }]
    })
    expect(peekClientMessage(many, limits)).toMatchObject({ _tag: "Frame", value: { _tag: "Command", db: "tenant1" } })
    expect(reasonOf(prefix(100, 200))).toBe("OP_MSG section of 200 bytes runs past the end of the message")
  })

  it("refuses bad flags, bad sections and bad commands with a reason", () => {
    expect(reasonOf(rawOpMsg(1, 4, [bodySection({ ping: 1 })]))).toContain("unknown required flag bits")
    expect(reasonOf(rawOpMsg(1, 0, [Buffer.concat([Buffer.from([3]), serialize({ a: 1 })])]))).toContain(
      "unknown kind 3"
    )
    expect(reasonOf(rawOpMsg(1, 0, [sequenceSection("documents", [{ a: 1 }])]))).toBe(
      "OP_MSG has no body section (kind 0)"
    )
    expect(reasonOf(rawOpMsg(1, 0, [bodySection({})]))).toBe("empty command document")
    expect(reasonOf(rawOpMsg(1, 0, [bodySection({ find: "c", $db: 1 })]))).toBe("$db is not a string")
    expect(reasonOf(message(20, 1, 2013, Buffer.alloc(4)))).toContain("too short")
  })

  it("finds the second of two messages once the first is consumed by its length", () => {
    const a = encodeOpQuery({ requestId: 1, fullCollectionName: "admin.$cmd", query: { isMaster: 1 } })
    const b = encodeOpMsg({ requestId: 2, body: { find: "c", $db: "tenant2" } })
    const both = Buffer.concat([a, b])
    const first = peekClientMessage(both)
    expect(first).toMatchObject({ _tag: "Frame", size: a.length, value: { name: "isMaster" } })
    expect(peekClientMessage(both.subarray(a.length))).toMatchObject({ _tag: "Frame", value: { db: "tenant2" } })
  })

  it("routes any database name a driver can send", () => {
    const dbName = fc.string({ minLength: 1, maxLength: 64 }).filter((s) => !s.includes("\0"))
    fc.assert(
      fc.property(
        dbName,
        fc.string({ minLength: 1, maxLength: 20 }).filter((s) => !s.includes("\0") && !s.startsWith("$")),
        (db, name) => {
          const bytes = encodeOpMsg({ requestId: 1, body: { [name]: 1, $db: db } })
          expect(peekClientMessage(bytes)).toMatchObject({ _tag: "Frame", size: bytes.length, value: { name, db } })
        }
      )
    )
  })

  it("never throws on random or mutated input", () => {
    const valid = encodeOpMsg({ requestId: 1, body: { find: "c", filter: { a: 1 }, $db: "tenant1" } })
    const legacy = encodeOpQuery({ requestId: 1, fullCollectionName: "admin.$cmd", query: { isMaster: 1 } })
    fc.assert(
      fc.property(fc.oneof(plausibleBytes, mutated(valid), mutated(legacy)), (bytes) => {
        expect(wellFormed(peekClientMessage(bytes), bytes.length)).toBe(true)
      }),
      { numRuns: 3_000 }
    )
  })
})
