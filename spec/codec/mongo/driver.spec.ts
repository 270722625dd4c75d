// The bytes the real `mongodb` driver sends and accepts, against the codec: a fake server built from the codec plays
// the proxy, so these pass or fail on the codec alone.
import * as net from "node:net"
import { type Document, deserialize, Long } from "bson"
import { MongoClient, MongoServerError } from "mongodb"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  type ClientCommand,
  decodeOpMsg,
  encodeReply,
  errorDocument,
  HELLO_COMMANDS,
  helloReply,
  okDocument,
  peekClientMessage,
  readHello
} from "../../../src/codec/mongo/index.ts"

interface Seen {
  readonly command: ClientCommand
  readonly doc: Document
  readonly sequences: number
}

let server: net.Server
let port: number
const seen: Array<Seen> = []
const failures: Array<unknown> = []
const sockets = new Set<net.Socket>()

/** Answers hello with the proxy's reply, `find` on db "fail" with an error, anything else with a plausible ok. */
const answer = (command: ClientCommand, doc: Document): Document => {
  if (HELLO_COMMANDS.has(command.name)) {
    const hello = readHello(command.body)
    if (typeof hello === "string") throw new Error(hello)
    return helloReply({ command: hello.name, helloOk: hello.helloOk, connectionId: 1, now: new Date() })
  }
  if (command.db === "fail")
    return errorDocument({ errmsg: 'polyproxy: no route for "fail"', code: 70, codeName: "ShardNotFound" })
  if (command.name === "find")
    return okDocument({ cursor: { id: Long.ZERO, ns: `${command.db}.${doc.find}`, firstBatch: [{ a: 1 }] } })
  if (command.name === "insert") return okDocument({ n: 1 })
  return okDocument()
}

beforeAll(async () => {
  server = net.createServer((socket) => {
    sockets.add(socket)
    socket.once("close", () => sockets.delete(socket))
    let buf = Buffer.alloc(0)
    socket.on("error", () => {})
    // An exception here would vanish into the socket: keep it for the spec to see.
    socket.on("data", (chunk) => {
      try {
        onData(chunk)
      } catch (e) {
        failures.push(e)
        socket.destroy()
      }
    })
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk])
      for (;;) {
        const peek = peekClientMessage(buf)
        if (peek._tag === "Need") return
        if (peek._tag === "Invalid") throw new Error(peek.reason)
        const m = peek.value
        if (m._tag !== "Command") throw new Error("compressed")
        if (buf.length < m.header.messageLength) return
        let sequences = 0
        if (!m.legacy) {
          const whole = decodeOpMsg(buf)
          if (whole._tag !== "Frame") throw new Error(JSON.stringify(whole))
          sequences = whole.value.sequences.length
        }
        const doc = deserialize(m.body)
        seen.push({ command: { ...m, body: Buffer.from(m.body) }, doc, sequences })
        socket.write(
          encodeReply(answer(m, doc), { requestId: seen.length, responseTo: m.header.requestId, legacy: m.legacy })
        )
        buf = buf.subarray(m.header.messageLength)
      }
    }
  })
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  port = (server.address() as net.AddressInfo).port
})

afterAll(async () => {
  expect(failures).toEqual([])
  for (const socket of sockets) socket.destroy()
  await new Promise((r) => server.close(r))
})

describe("the mongodb driver against the codec", () => {
  it("opens with a legacy isMaster on admin.$cmd, takes our OP_REPLY, then speaks OP_MSG with $db", async () => {
    seen.length = 0
    const c = new MongoClient(`mongodb://127.0.0.1:${port}/tenant1?directConnection=true&appName=tenant1-app`, {
      serverSelectionTimeoutMS: 3_000,
      compressors: ["zlib"]
    })
    try {
      await c.db().collection("items").insertOne({ a: 1 })
      expect(await c.db().collection("items").find({}).toArray()).toEqual([{ a: 1 }])
    } finally {
      await c.close()
    }
    const first = seen[0]!
    // The driver spells it the legacy way until a hello reply says helloOk.
    expect(first.command).toMatchObject({ legacy: true, name: "ismaster", db: "admin" })
    expect(first.doc).toMatchObject({
      helloOk: true,
      compression: ["zlib"],
      client: { application: { name: "tenant1-app" } }
    })
    const modern = seen.filter((s) => !s.command.legacy)
    expect(modern.map((s) => s.command.name)).toEqual(expect.arrayContaining(["insert", "find"]))
    expect(modern.find((s) => s.command.name === "insert")?.command.db).toBe("tenant1")
    // Our hello offered no compressor: nothing came compressed (peekClientMessage would have said so).
  })

  it("raises our error document as a MongoServerError with its code, codeName and message", async () => {
    const c = new MongoClient(`mongodb://127.0.0.1:${port}/fail?directConnection=true`, {
      serverSelectionTimeoutMS: 3_000
    })
    try {
      const e = await c
        .db()
        .collection("x")
        .findOne({})
        .catch((x: unknown) => x)
      expect(e).toBeInstanceOf(MongoServerError)
      expect(e).toMatchObject({ code: 70, codeName: "ShardNotFound", message: 'polyproxy: no route for "fail"' })
    } finally {
      await c.close()
    }
  })

  it("in load-balanced mode sends hello in OP_MSG and requires the serviceId our reply can carry", async () => {
    seen.length = 0
    const c = new MongoClient(`mongodb://127.0.0.1:${port}/tenant1?loadBalanced=true`, {
      serverSelectionTimeoutMS: 3_000
    })
    try {
      const e = await c
        .db()
        .collection("x")
        .findOne({})
        .catch((x: unknown) => x)
      // This fake server leaves serviceId out, so the driver refuses it: the listener adds one.
      expect(String(e)).toContain("load balancing mode")
    } finally {
      await c.close()
    }
    const hello = seen.find((s) => s.doc.loadBalanced === true)
    expect(hello?.command).toMatchObject({ legacy: false, name: "hello", db: "admin" })
  })
})
