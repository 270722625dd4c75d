// The mongodb listener as its own process (so that its memory is read apart from the test's), flooded by 40 clients
// that never route: each sends the header of a 16 MB OP_MSG and then streams the rest of it. Before a connection is
// routed the proxy reads at most 64 KiB of a command (listeners.mongodb.maxRoutingCommand): it answers each with
// 17 ProtocolError as soon as the size of its command document is in, drops what still comes without keeping it,
// and closes. The proxy's RSS stays flat, and real drivers keep working through it. The backend is CongoDB.
import * as net from "node:net"
import { deserialize } from "bson"
import { MongoClient, MongoServerError } from "mongodb"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { decodeOpMsg, OP_MSG } from "../../src/codec/mongo/index.ts"
import { keepRefusingMs } from "../../src/listeners/mongodb/refusing.ts"
import { type MongoServer, startMongo } from "../support/backends/index.ts"
import { type CliProxy, startCliProxy } from "../support/cliProxy.ts"

const MB = 1 << 20

let congo: MongoServer
let proxy: CliProxy
let port: number

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

beforeAll(async () => {
  congo = await startMongo()
  proxy = await startCliProxy(
    JSON.stringify({
      workers: 1,
      admin: { host: "127.0.0.1", port: 0 },
      log: { level: "info", format: "json", connections: false },
      listeners: { mongodb: { host: "127.0.0.1", port: 0 } },
      routes: { tenant1: `${congo.host}:${congo.port}` },
      ssrf: { allow: ["127.0.0.0/8"] }
    })
  )
  port = proxy.port("mongodb")
})

afterAll(async () => {
  proxy?.stop()
  await congo?.stop()
})

/** polyproxy_errors_total for reason bad_request, all series summed. */
const badRequests = async (): Promise<number> => {
  const text = await fetch(`${proxy.adminUrl}/metrics`).then((r) => r.text())
  let sum = 0
  for (const m of text.matchAll(/^polyproxy_errors_total\{[^}]*reason="bad_request"[^}]*\} (\d+)$/gm))
    sum += Number(m[1])
  return sum
}

const withClient = async <A>(f: (c: MongoClient) => Promise<A>): Promise<A> => {
  const c = new MongoClient(`mongodb://127.0.0.1:${port}/tenant1?directConnection=true`, {
    serverSelectionTimeoutMS: 5_000,
    maxPoolSize: 1
  })
  try {
    return await f(c)
  } finally {
    await c.close()
  }
}

/** CRUD through the proxy, a 1 MB document included once the connection is routed. */
const crud = () =>
  withClient(async (c) => {
    const col = c.db().collection("flood")
    await col.deleteMany({})
    await col.insertMany([{ k: 1 }, { k: 2 }])
    expect((await col.updateOne({ k: 1 }, { $set: { big: "b".repeat(MB) } })).modifiedCount).toBe(1)
    expect((await col.findOne({ k: 1 }))?.big.length).toBe(MB)
    expect((await col.deleteOne({ k: 2 })).deletedCount).toBe(1)
    expect(await col.countDocuments()).toBe(1)
  })

interface Flooded {
  /** The first reply, decoded. */
  readonly reply: { readonly responseTo: number; readonly doc: Record<string, unknown> } | undefined
  /** Bytes written before the proxy closed the connection. */
  readonly sent: number
}

const size = 16 * MB
const chunk = Buffer.alloc(64 * 1024, 0x61)

/** Sends the header of a 16 MB OP_MSG whose command document takes all of it, then streams the rest. */
const flood = (requestId: number) =>
  new Promise<Flooded>((resolve) => {
    const parts: Array<Buffer> = []
    let sent = 0
    const s = net.connect(port, "127.0.0.1", async () => {
      const head = Buffer.alloc(25)
      head.writeInt32LE(size, 0)
      head.writeInt32LE(requestId, 4)
      head.writeInt32LE(OP_MSG, 12)
      head[20] = 0 // a kind-0 section: the command document, 16 MB less the 21 bytes before it
      head.writeInt32LE(size - 21, 21)
      s.write(head)
      sent = head.length
      while (sent < size && !s.destroyed) {
        const n = Math.min(chunk.length, size - sent)
        const more = s.write(chunk.subarray(0, n))
        sent += n
        if (!more) await new Promise((r) => s.once("drain", r))
      }
    })
    s.on("data", (d: Buffer) => parts.push(d))
    s.on("error", () => {})
    s.once("close", () => {
      const answer = Buffer.concat(parts)
      const m = answer.length > 0 ? decodeOpMsg(answer) : undefined
      resolve({
        reply:
          m?._tag === "Frame" ? { responseTo: m.value.header.responseTo, doc: deserialize(m.value.body) } : undefined,
        sent
      })
    })
  })

describe("mongodb listener: 40 unrouted clients streaming 16 MB first messages", () => {
  it("answers each with 17 ProtocolError, keeps RSS flat, and serves drivers before and after", async () => {
    // Warm up: CRUD, and a driver whose first command is too large to read before routing gets our error.
    await crud()
    await withClient(async (c) => {
      const e = await c
        .db()
        .collection("flood")
        .insertOne({ big: "f".repeat(MB) })
        .catch((x: unknown) => x)
      expect(e).toBeInstanceOf(MongoServerError)
      expect(e).toMatchObject({ code: 17, codeName: "ProtocolError" })
      expect((e as Error).message).toMatch(/^polyproxy: command of \d+ bytes before this connection is routed/)
    })
    await sleep(keepRefusingMs + 200)

    const refusedBefore = await badRequests()
    const before = proxy.rss()
    let peak = before
    const timer = setInterval(() => {
      peak = Math.max(peak, proxy.rss())
    }, 25)
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => flood(1000 + i))).finally(() =>
      clearInterval(timer)
    )
    const after = proxy.rss()
    console.log(
      `mongodb flood: proxy RSS before ${(before / MB).toFixed(1)} MB, peak +${((peak - before) / MB).toFixed(1)} MB, ` +
        `after +${((after - before) / MB).toFixed(1)} MB`
    )

    results.forEach((r, i) => {
      expect(r.reply?.responseTo).toBe(1000 + i)
      expect(r.reply?.doc).toMatchObject({ ok: 0, code: 17, codeName: "ProtocolError" })
      expect(String(r.reply?.doc.errmsg)).toMatch(
        /^polyproxy: command of 16777216 bytes before this connection is routed: polyproxy reads at most 65536 bytes/
      )
    })
    // Nothing of the 640 MB was kept: what the issue saw was RSS +589 MB, still +509 MB 8 minutes later.
    expect(peak - before).toBeLessThan(20 * MB)
    expect(after - before).toBeLessThan(20 * MB)

    // Logged and counted as bad requests.
    expect((await badRequests()) - refusedBefore).toBe(40)
    await crud()
  })
})
