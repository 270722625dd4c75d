import { deserialize, ObjectId } from "bson"
import { describe, expect, it } from "vitest"
import {
  backendHello,
  decodeBackendHelloReply,
  decodeOpMsg,
  decodeOpReply,
  encodeOpMsg,
  encodeReply,
  errorDocument,
  helloReply,
  MAX_WIRE_VERSION,
  okDocument
} from "../../../src/codec/mongo/index.ts"

const now = new Date("2026-01-02T03:04:05Z")

describe("helloReply", () => {
  it("looks like a standalone server, with the primary field of the request's spelling", () => {
    const hello = helloReply({ command: "hello", helloOk: false, connectionId: 7, now })
    expect(hello).toMatchObject({
      isWritablePrimary: true,
      maxBsonObjectSize: 16 * 1024 * 1024,
      maxMessageSizeBytes: 48_000_000,
      maxWriteBatchSize: 100_000,
      localTime: now,
      logicalSessionTimeoutMinutes: 30,
      connectionId: 7,
      minWireVersion: 0,
      maxWireVersion: MAX_WIRE_VERSION,
      readOnly: false
    })
    expect(Number(hello.ok)).toBe(1)
    for (const absent of [
      "ismaster",
      "helloOk",
      "topologyVersion",
      "compression",
      "setName",
      "hosts",
      "serviceId",
      "saslSupportedMechs",
      "msg"
    ]) {
      expect(hello).not.toHaveProperty(absent)
    }
    const legacy = helloReply({ command: "isMaster", helloOk: true, connectionId: 1, now })
    expect(legacy).toMatchObject({ ismaster: true, helloOk: true })
    expect(legacy).not.toHaveProperty("isWritablePrimary")
    const id = new ObjectId()
    expect(helloReply({ command: "hello", helloOk: true, connectionId: 1, serviceId: id, now }).serviceId).toBe(id)
  })
})

describe("encodeReply and errorDocument", () => {
  it("answers an OP_QUERY with OP_REPLY and anything else with OP_MSG, to the client's requestId", () => {
    const legacy = decodeOpReply(encodeReply(okDocument({ x: 1 }), { requestId: 3, responseTo: 99, legacy: true }))
    expect(legacy._tag === "Frame" && legacy.value.header.responseTo).toBe(99)
    expect(legacy._tag === "Frame" && deserialize(legacy.value.documents[0]!)).toEqual({ x: 1, ok: 1 })
    const modern = decodeOpMsg(encodeReply(okDocument(), { requestId: 4, responseTo: 100, legacy: false }))
    expect(modern._tag === "Frame" && [modern.value.header.requestId, modern.value.header.responseTo]).toEqual([4, 100])
  })

  it("writes the error fields drivers read, ok as a double", () => {
    const doc = errorDocument({ errmsg: "polyproxy: no", code: 70, codeName: "ShardNotFound" })
    expect(doc).toMatchObject({ errmsg: "polyproxy: no", code: 70, codeName: "ShardNotFound" })
    expect(doc).not.toHaveProperty("errorLabels")
    const bytes = encodeReply(doc, { requestId: 1, responseTo: 2, legacy: false })
    const m = decodeOpMsg(bytes)
    if (m._tag !== "Frame") throw new Error("expected OP_MSG")
    // ok is the double 0.0 (type 0x01), as servers write it.
    const okAt = m.value.body.indexOf(Buffer.from("ok\0")) - 1
    expect(m.value.body[okAt]).toBe(1)
    expect(
      errorDocument({ errmsg: "x", code: 1, codeName: "InternalError", errorLabels: ["RetryableWriteError"] })
    ).toMatchObject({
      errorLabels: ["RetryableWriteError"]
    })
  })
})

describe("backendHello and its reply", () => {
  it("carries only the client's metadata to the backend", () => {
    expect(backendHello({ driver: { name: "nodejs" } })).toEqual({
      hello: 1,
      client: { driver: { name: "nodejs" } },
      $db: "admin"
    })
    expect(backendHello(undefined)).toEqual({ hello: 1, $db: "admin" })
  })

  it("checks the answer replies to our request and reads ok/errmsg/maxWireVersion", () => {
    const reply = encodeOpMsg({
      requestId: 50,
      responseTo: 12,
      body: { isWritablePrimary: true, maxWireVersion: 25, ok: 1 }
    })
    expect(decodeBackendHelloReply(reply, 12, 1024)).toEqual({
      _tag: "Frame",
      value: { ok: true, errmsg: undefined, maxWireVersion: 25 },
      size: reply.length
    })
    expect(decodeBackendHelloReply(reply, 13, 1024)).toEqual({
      _tag: "Invalid",
      reason: "reply to request 12, expected 13"
    })
    expect(decodeBackendHelloReply(reply.subarray(0, 10), 12, 1024)._tag).toBe("Need")
    const refused = encodeOpMsg({ requestId: 1, responseTo: 12, body: { ok: 0, errmsg: "no" } })
    expect(decodeBackendHelloReply(refused, 12, 1024)).toMatchObject({ value: { ok: false, errmsg: "no" } })
    expect(decodeBackendHelloReply(Buffer.from("HTTP/1.1 400 Bad Request\r\n"), 12, 1024)._tag).toBe("Invalid")
  })
})
