import { serialize } from "bson"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { peekCommand, readHello } from "../../../src/codec/mongo/index.ts"

const bytes = (doc: Record<string, unknown>) => Buffer.from(serialize(doc))

/** A document written by hand: int32 length, the given element bytes, NUL. */
const rawDoc = (...elements: Array<Buffer>) => {
  const body = Buffer.concat(elements)
  const out = Buffer.alloc(4 + body.length + 1)
  out.writeInt32LE(out.length, 0)
  body.copy(out, 4)
  return out
}
const stringElement = (name: Buffer, value: Buffer) => {
  const len = Buffer.alloc(4)
  len.writeInt32LE(value.length + 1, 0)
  return Buffer.concat([Buffer.from([2]), name, Buffer.from([0]), len, value, Buffer.from([0])])
}

describe("peekCommand", () => {
  it("takes the first field as the command and $db wherever it is", () => {
    expect(peekCommand(bytes({ insert: "items", documents: [{ a: 1 }], ordered: true, $db: "tenant1" }))).toEqual({
      name: "insert",
      db: "tenant1"
    })
    expect(peekCommand(bytes({ $db: "first", find: "c" }))).toEqual({ name: "$db", db: "first" })
    expect(peekCommand(bytes({ isMaster: 1 }))).toEqual({ name: "isMaster", db: undefined })
  })

  it("keeps a database name byte for byte, Unicode included", () => {
    expect(peekCommand(bytes({ find: "c", $db: "tenänt-ü_1" }))).toEqual({ name: "find", db: "tenänt-ü_1" })
  })

  it("refuses two $db, a $db that is not a string, and names that are not UTF-8", () => {
    const twice = rawDoc(
      stringElement(Buffer.from("find"), Buffer.from("c")),
      stringElement(Buffer.from("$db"), Buffer.from("a")),
      stringElement(Buffer.from("$db"), Buffer.from("b"))
    )
    expect(peekCommand(twice)).toBe("command has two $db fields")
    expect(peekCommand(bytes({ find: "c", $db: 5 }))).toBe("$db is not a string")
    const badName = rawDoc(stringElement(Buffer.from([0xff, 0x41]), Buffer.from("x")))
    expect(peekCommand(badName)).toBe("command field name is not valid UTF-8")
    const badDb = rawDoc(
      stringElement(Buffer.from("find"), Buffer.from("c")),
      stringElement(Buffer.from("$db"), Buffer.from([0xc3, 0x28]))
    )
    expect(peekCommand(badDb)).toBe("$db is not valid UTF-8")
  })

  it("refuses an empty or malformed document", () => {
    expect(peekCommand(bytes({}))).toBe("empty command document")
    expect(peekCommand(Buffer.from([5, 0, 0, 0, 1]))).toMatch(/^malformed BSON command/)
    expect(peekCommand(Buffer.from([9, 0, 0, 0, 2, 0x61, 0, 0xff, 0]))).toMatch(/^malformed BSON command|well-formed/)
  })

  it("does not decode values: a 10 MB command is peeked in well under a millisecond per MB", () => {
    const doc = bytes({ insert: "c", documents: [{ big: "z".repeat(10 * 1024 * 1024) }], $db: "tenant1" })
    const started = performance.now()
    expect(peekCommand(doc)).toEqual({ name: "insert", db: "tenant1" })
    expect(performance.now() - started).toBeLessThan(50)
  })

  it("never throws on random bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (raw) => {
        const doc = Buffer.from(raw)
        if (doc.length >= 4) doc.writeInt32LE(doc.length, 0)
        const r = peekCommand(doc)
        expect(typeof r === "string" || typeof r.name === "string").toBe(true)
      }),
      { numRuns: 3_000 }
    )
  })
})

describe("readHello", () => {
  it("reads what the proxy acts on from a driver's handshake", () => {
    const hello = readHello(
      bytes({
        isMaster: 1,
        helloOk: true,
        client: { driver: { name: "nodejs", version: "7.0" }, application: { name: "tenant2" } },
        compression: ["zstd", "zlib", 3]
      })
    )
    expect(hello).toEqual({
      name: "isMaster",
      helloOk: true,
      loadBalanced: false,
      client: { driver: { name: "nodejs", version: "7.0" }, application: { name: "tenant2" } },
      appName: "tenant2",
      compression: ["zstd", "zlib"]
    })
    expect(readHello(bytes({ hello: 1, loadBalanced: true, $db: "admin" }))).toMatchObject({
      name: "hello",
      helloOk: false,
      loadBalanced: true,
      client: undefined,
      appName: undefined
    })
  })

  it("refuses what is not a hello", () => {
    expect(readHello(bytes({ ping: 1 }))).toBe('expected hello, got "ping"')
    expect(readHello(bytes({ hello: 1, client: "me" }))).toBe("hello: client metadata is not a document")
    expect(readHello(Buffer.from([5, 0, 0, 0, 1]))).toMatch(/^malformed hello/)
  })

  it("never throws on random bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), (raw) => {
        const doc = Buffer.from(raw)
        if (doc.length >= 4) doc.writeInt32LE(doc.length, 0)
        const r = readHello(doc)
        expect(typeof r === "string" || typeof r.name === "string").toBe(true)
      }),
      { numRuns: 3_000 }
    )
  })
})
