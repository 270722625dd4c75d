// The real `mongodb` 7 driver → polyproxy's mongodb listener → two Mongo-wire servers.
//
// Locally the servers are CongoDB (see ../shared/design/BACKENDS.md): no real mongod can be had on this machine.
// What CongoDB cannot show, and these specs therefore do not test: authentication (its saslStart is fake, so SCRAM
// through the proxy needs a real mongod: the proxy routes saslStart by its $db and relays the conversation
// untouched), TLS on a backend itself (a TLS terminator in front of CongoDB stands in), unique indexes,
// aborted-transaction rollback, change streams, and `_id`s other than ObjectIds (CongoDB turns them into ObjectIds:
// the specs key documents by another field). With TEST_BACKENDS=containers the same specs run against a real
// standalone mongod:7, which has no transactions (that part is skipped there).
import * as net from "node:net"
import * as tls from "node:tls"
import { type Document, deserialize } from "bson"
import { type CommandStartedEvent, MongoClient, type MongoClientOptions, MongoServerError } from "mongodb"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  decodeOpMsg,
  decodeOpReply,
  encodeOpCompressed,
  encodeOpMsg,
  encodeOpQuery,
  OP_MSG
} from "../../src/codec/mongo/index.ts"
import { ResolveError } from "../../src/domain/ResolveError.ts"
import { keepRefusingMs } from "../../src/listeners/mongodb/refusing.ts"
import { Resolver } from "../../src/services/Resolver.ts"
import { backendProvider, type Certs, type MongoServer, makeCerts, startMongo } from "../support/backends/index.ts"
import { closedPort } from "../support/net.ts"
import { eventually, startTestProxy, type TestProxy } from "../support/proxy.ts"
import { expectShownOnlyInLog } from "../support/refusals.ts"

let congo1: MongoServer // tenant1 (and the defaultRoute of the routing-key proxies)
let congo2: MongoServer // tenant2
let proxy: TestProxy
let deadPort: number
let certs: Certs
/** CongoDB has no TLS: a TLS terminator in front of congo1 plays a backend that requires it. */
let tlsFront: tls.Server
let tlsFrontSessions = 0

/** timeouts.handshake: idle connections that name no database are closed at 3/4 of it (1.5 s here). */
const handshakeSeconds = 2

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

beforeAll(async () => {
  ;[congo1, congo2, certs] = await Promise.all([startMongo(), startMongo(), makeCerts()])
  deadPort = await closedPort()
  tlsFront = tls.createServer({ key: certs.server.key, cert: certs.server.cert }, (secure) => {
    tlsFrontSessions++
    const plain = net.connect(congo1.port, congo1.host)
    secure.pipe(plain).pipe(secure)
    secure.on("error", () => plain.destroy())
    plain.on("error", () => secure.destroy())
  })
  await new Promise<void>((r) => tlsFront.listen(0, "127.0.0.1", r))
  const table: Record<string, string> = {
    tenant1: `${congo1.host}:${congo1.port}`,
    tenant2: `${congo2.host}:${congo2.port}`,
    meta: "169.254.169.254:27017",
    deaddb: `127.0.0.1:${deadPort}`
  }
  // One entry per failure the driver must be able to show.
  const resolver = Resolver.layerAsync({
    resolve: async (id) => {
      if (id === "colddb") throw new ResolveError({ code: "UNAVAILABLE", message: "colddb is under maintenance" })
      if (id === "slowdb") return new Promise(() => {})
      if (id === "banned") throw new ResolveError({ code: "FORBIDDEN", message: "tenant banned is suspended" })
      if (id === "brokendb") throw new Error("route store unreachable")
      if (id === "tlsdb") {
        const port = (tlsFront.address() as net.AddressInfo).port
        return { endpoint: `127.0.0.1:${port}`, metadata: { tls: { ca: certs.ca.cert, servername: "localhost" } } }
      }
      const endpoint = table[id]
      return endpoint ? { endpoint } : null
    }
  })
  proxy = await startTestProxy(
    {
      listeners: { mongodb: { host: "127.0.0.1", port: 0 } },
      ssrf: { allow: ["127.0.0.0/8"] },
      timeouts: { handshake: handshakeSeconds, resolve: 0.5, connect: 2 },
      log: { level: "debug" }
    },
    resolver
  )
})

afterAll(async () => {
  await proxy?.stop()
  await new Promise((r) => (tlsFront ? tlsFront.close(r) : r(undefined)))
  await Promise.all([congo1?.stop(), congo2?.stop()])
})

const uri = (db: string, query = "directConnection=true", port = proxy.port("mongodb")) =>
  `mongodb://127.0.0.1:${port}/${db}${query ? `?${query}` : ""}`

const withClient = async <A>(
  db: string,
  f: (c: MongoClient) => Promise<A>,
  options: MongoClientOptions = {},
  query?: string
): Promise<A> => {
  const c = new MongoClient(uri(db, query), { serverSelectionTimeoutMS: 5_000, ...options })
  try {
    return await f(c)
  } finally {
    await c.close()
  }
}

/** A client straight to a backend, to see where the proxy put the data. */
const direct = <A>(server: MongoServer, f: (c: MongoClient) => Promise<A>) => {
  const c = new MongoClient(server.uri, { serverSelectionTimeoutMS: 5_000 })
  return f(c).finally(() => c.close())
}

describe("mongodb listener: the protocol through the proxy", () => {
  it("inserts, finds, updates, deletes and bulk-writes", async () => {
    await withClient("tenant1", async (c) => {
      const items = c.db().collection("crud")
      await items.deleteMany({})
      const inserted = await items.insertMany([
        { key: 1, name: "one", n: 1 },
        { key: 2, name: "two", n: 2 },
        { key: 3, name: "three", n: 3 }
      ])
      expect(inserted.insertedCount).toBe(3)
      const noId = { projection: { _id: 0 } }
      expect(await items.findOne({ key: 2 }, noId)).toEqual({ key: 2, name: "two", n: 2 })
      expect((await items.updateOne({ key: 1 }, { $inc: { n: 10 } })).modifiedCount).toBe(1)
      expect((await items.findOne({ key: 1 }))?.n).toBe(11)
      expect((await items.deleteOne({ key: 3 })).deletedCount).toBe(1)
      const bulk = await items.bulkWrite([
        { insertOne: { document: { key: 4, name: "four", n: 4 } } },
        { updateOne: { filter: { key: 2 }, update: { $set: { name: "deux" } } } },
        { deleteOne: { filter: { key: 1 } } }
      ])
      expect([bulk.insertedCount, bulk.modifiedCount, bulk.deletedCount]).toEqual([1, 1, 1])
      expect(await items.find({}, { sort: { key: 1 }, ...noId }).toArray()).toEqual([
        { key: 2, name: "deux", n: 2 },
        { key: 4, name: "four", n: 4 }
      ])
      expect(await items.countDocuments()).toBe(2)
    })
  })

  it("iterates a cursor over 10,000 documents with getMore", async () => {
    const getMores: Array<CommandStartedEvent> = []
    await withClient(
      "tenant1",
      async (c) => {
        c.on("commandStarted", (e) => {
          if (e.commandName === "getMore") getMores.push(e)
        })
        const many = c.db().collection("many")
        await many.deleteMany({})
        await many.insertMany(Array.from({ length: 10_000 }, (_, i) => ({ i, pad: "x".repeat(32) })))
        let count = 0
        let sum = 0
        for await (const doc of many.find({}, { batchSize: 500, sort: { i: 1 } })) {
          count++
          sum += doc.i
        }
        expect(count).toBe(10_000)
        expect(sum).toBe((9_999 * 10_000) / 2)
      },
      { monitorCommands: true }
    )
    expect(getMores.length).toBeGreaterThanOrEqual(19)
  })

  it("runs an aggregation pipeline", async () => {
    await withClient("tenant1", async (c) => {
      const sales = c.db().collection("sales")
      await sales.deleteMany({})
      await sales.insertMany([
        { shop: "a", amount: 5 },
        { shop: "b", amount: 7 },
        { shop: "a", amount: 10 },
        { shop: "c", amount: 1 }
      ])
      const totals = await sales
        .aggregate([
          { $match: { amount: { $gt: 2 } } },
          { $group: { _id: "$shop", total: { $sum: "$amount" } } },
          { $sort: { total: -1 } }
        ])
        .toArray()
      expect(totals).toEqual([
        { _id: "a", total: 15 },
        { _id: "b", total: 7 }
      ])
    })
  })

  it("routes two databases to two different backends", async () => {
    const marker = `m-${Date.now()}`
    await Promise.all([
      withClient("tenant1", (c) => c.db().collection("where").insertOne({ marker, tenant: 1 })),
      withClient("tenant2", (c) => c.db().collection("where").insertOne({ marker, tenant: 2 }))
    ])
    const [on1, on2] = await Promise.all([
      direct(congo1, async (c) => ({
        t1: await c.db("tenant1").collection("where").find({ marker }).toArray(),
        t2: await c.db("tenant2").collection("where").find({ marker }).toArray()
      })),
      direct(congo2, async (c) => ({
        t1: await c.db("tenant1").collection("where").find({ marker }).toArray(),
        t2: await c.db("tenant2").collection("where").find({ marker }).toArray()
      }))
    ])
    expect(on1.t1.map((d) => d.tenant)).toEqual([1])
    expect(on1.t2).toEqual([])
    expect(on2.t2.map((d) => d.tenant)).toEqual([2])
    expect(on2.t1).toEqual([])
  })

  it("carries a 10 MB document both ways once the connection is routed", async () => {
    const big = "y".repeat(10 * 1024 * 1024)
    let created = 0
    await withClient(
      "tenant1",
      async (c) => {
        c.on("connectionCreated", () => created++)
        const blobs = c.db().collection("blobs")
        // One pool connection: the small command routes it, the large ones follow on it, through the relay.
        await blobs.deleteMany({ key: "big" })
        await blobs.insertOne({ key: "big", big })
        const back = await blobs.findOne({ key: "big" })
        expect(back?.big.length).toBe(big.length)
        expect(back?.big === big).toBe(true)
        await blobs.deleteOne({ key: "big" })
      },
      { maxPoolSize: 1 }
    )
    expect(created).toBe(1)
  })

  it("accepts writes from a client with retryWrites on, and commits a transaction", async () => {
    const inserts: Array<Document> = []
    await withClient(
      "tenant1",
      async (c) => {
        c.on("commandStarted", (e) => {
          if (e.commandName === "insert") inserts.push(e.command)
        })
        const accounts = c.db().collection("accounts")
        await accounts.deleteMany({})
        await accounts.insertOne({ key: "alice", balance: 10 })
        // The proxy answers as a standalone server: the driver does not number its writes (a standalone mongod
        // backend would refuse txnNumber), so retryWrites=true (the default) is harmless and does nothing.
        expect(inserts[0]).toBeDefined()
        expect(inserts[0]?.txnNumber).toBeUndefined()
        // A real standalone mongod (TEST_BACKENDS=containers) has no transactions; CongoDB commits them.
        if ((await backendProvider()) !== "local") return
        await c.withSession((session) =>
          session.withTransaction(async () => {
            await accounts.insertOne({ key: "bob", balance: 5 }, { session })
            await accounts.updateOne({ key: "alice" }, { $inc: { balance: -5 } }, { session })
          })
        )
        expect(await accounts.find({}, { sort: { key: 1 }, projection: { _id: 0 } }).toArray()).toEqual([
          { key: "alice", balance: 5 },
          { key: "bob", balance: 5 }
        ])
      },
      { monitorCommands: true }
    )
  })

  it("works with the default topology discovery (one standalone server) and in load-balanced mode", async () => {
    const types: Array<string> = []
    const discovered = await withClient(
      "tenant2",
      (c) => {
        c.on("topologyDescriptionChanged", (e) => types.push(e.newDescription.type))
        return c.db().collection("modes").insertOne({ mode: "sharded" })
      },
      {},
      ""
    )
    expect(discovered.acknowledged).toBe(true)
    // Never a replica set: the driver cannot discover and bypass what is behind the proxy.
    expect(types).toContain("Single")
    expect(types.filter((t) => t.startsWith("ReplicaSet"))).toEqual([])
    const balanced = await withClient(
      "tenant2",
      (c) => c.db().collection("modes").countDocuments(),
      {},
      "loadBalanced=true"
    )
    expect(balanced).toBeGreaterThanOrEqual(1)
  })

  it("opens TLS to a backend whose route asks for it (metadata.tls)", async () => {
    const before = tlsFrontSessions
    await withClient("tlsdb", (c) => c.db().collection("secure").insertOne({ over: "tls" }))
    expect(tlsFrontSessions).toBe(before + 1)
    expect(await direct(congo1, (d) => d.db("tlsdb").collection("secure").countDocuments({ over: "tls" }))).toBe(1)
  })

  it("serves 50 concurrent clients on two backends", async () => {
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        withClient(i % 2 ? "tenant1" : "tenant2", async (c) => {
          const col = c.db().collection("concurrent")
          await col.insertOne({ i })
          return (await col.findOne({ i }))?.i
        })
      )
    )
    expect(results).toEqual(Array.from({ length: 50 }, (_, i) => i))
  })
})

describe("mongodb listener: connections that never name a database", () => {
  // 500 ms: the monitor's second hello comes before the idle deadline (1.5 s) and is answered, then the connection
  // closed. 2500 ms: the connection is closed idle at 1.5 s and the next heartbeat opens a new one.
  it.each([500, 2500])(
    "keeps a client healthy while its monitor (heartbeat %i ms) is served here",
    async (heartbeat) => {
      const trouble: Array<string> = []
      await withClient(
        "tenant1",
        async (c) => {
          c.on("serverDescriptionChanged", (e) => {
            if (e.newDescription.type === "Unknown") trouble.push(`unknown: ${e.newDescription.error?.message}`)
          })
          c.on("connectionPoolCleared", () => trouble.push("pool cleared"))
          c.on("serverHeartbeatFailed", (e) => trouble.push(`heartbeat failed: ${e.failure.message}`))
          const col = c.db().collection("heartbeat")
          const deadline = Date.now() + Math.max(handshakeSeconds * 2_000, heartbeat * 2 + 500)
          let ops = 0
          while (Date.now() < deadline) {
            await col.insertOne({ at: Date.now() })
            await sleep(100)
            ops++
          }
          expect(await col.countDocuments({})).toBeGreaterThanOrEqual(ops)
        },
        { heartbeatFrequencyMS: heartbeat }
      )
      expect(trouble).toEqual([])
      // Monitors were served here and closed quietly, never dialled to a backend.
      const closedBy =
        heartbeat < handshakeSeconds * 750 ? /after its heartbeat/ : /idle connection that named no database/
      expect(proxy.logs.some((l) => l.reason === "HANDSHAKE_TIMEOUT" && closedBy.test(String(l.message)))).toBe(true)
    }
  )

  it("replaces a pool connection left idle after connect() without an error", async () => {
    const trouble: Array<string> = []
    await withClient("tenant2", async (c) => {
      c.on("connectionPoolCleared", () => trouble.push("pool cleared"))
      c.on("connectionClosed", (e) => trouble.push(`closed: ${e.reason}`))
      await c.connect()
      // connect() checks out one pool connection (hello only) and returns it to the pool, idle and unrouted.
      await sleep(handshakeSeconds * 1_000)
      expect(await c.db().collection("idle").insertOne({ late: true })).toMatchObject({ acknowledged: true })
    })
    expect(trouble).not.toContain("pool cleared")
    // The idle connection was closed by the proxy and dropped by the pool on checkout ("error" = found closed).
    expect(trouble).toContain("closed: error")
  })

  it("answers ping on admin itself, and refuses other admin commands with the fix in the message", async () => {
    await withClient("tenant1", async (c) => {
      expect(await c.db("admin").command({ ping: 1 })).toMatchObject({ ok: 1 })
      const e = await c
        .db("admin")
        .command({ listDatabases: 1 })
        .catch((x: unknown) => x)
      expect(e).toBeInstanceOf(MongoServerError)
      expect(e).toMatchObject({ code: 13, codeName: "Unauthorized" })
      expect((e as Error).message).toMatch(/^polyproxy: listDatabases on admin names no tenant database.*authSource/)
    })
  })

  it("leaves no connection open once the clients are gone", async () => {
    await eventually(() => proxy.handle.listeners.every((l) => l.open() === 0), 10_000)
  })
})

describe("mongodb listener: every refusal is a server error the driver shows", () => {
  // The last column: what only the proxy's log line (the one with the message's ref) may say.
  it.each([
    ["nosuchdb", 70, "ShardNotFound", /^polyproxy: no route for "nosuchdb" \(ref [0-9a-f]{12}\)$/, []],
    ["banned", 13, "Unauthorized", /suspended/, []],
    ["meta", 13, "Unauthorized", /the backend of "meta" is refused by the proxy's policy/, ["169.254.169.254"]],
    ["colddb", 6, "HostUnreachable", /^polyproxy: "colddb" is unavailable \(ref /, ["under maintenance"]],
    [
      "slowdb",
      89,
      "NetworkTimeout",
      /the route lookup for "slowdb" did not answer in time/,
      ['resolver did not answer for "slowdb" within 0.5s']
    ],
    ["deaddb", 6, "HostUnreachable", /cannot connect to the backend of "deaddb"/, ["127.0.0.1:", "ECONNREFUSED"]],
    ["brokendb", 1, "InternalError", /^polyproxy: internal error \(ref /, ["route store unreachable"]]
  ])("database %s → %i %s", async (db, code, codeName, message, hidden) => {
    const trouble: Array<string> = []
    let finds = 0
    await withClient(
      db,
      async (c) => {
        c.on("commandStarted", (e) => {
          if (e.commandName === "find") finds++
        })
        c.on("connectionPoolCleared", () => trouble.push("pool cleared"))
        c.on("serverDescriptionChanged", (e) => {
          if (e.newDescription.type === "Unknown") trouble.push("server unknown")
        })
        const e = await c
          .db()
          .collection("x")
          .findOne({})
          .catch((x: unknown) => x)
        expect(e).toBeInstanceOf(MongoServerError)
        expect(e).toMatchObject({ code, codeName })
        expect((e as Error).message).toMatch(message)
        expectShownOnlyInLog((e as Error).message, proxy.logs, hidden)
        // Not a state-change error, and a retry (6, 89) got the same answer: the client's pool and server stay up, and
        // once the refused connection has been closed the client works on with another database.
        await sleep(keepRefusingMs + 200)
        expect(await c.db("tenant1").collection("x").countDocuments()).toBeGreaterThanOrEqual(0)
      },
      { monitorCommands: true }
    )
    expect(trouble).toEqual([])
    // 6 and 89 are retryable: the driver asked twice and showed the second, identical, answer.
    expect(finds).toBe(code === 6 || code === 89 ? 2 : 1)
  })

  it("a write to an unknown database fails with the same error", async () => {
    await withClient("nosuchdb", async (c) => {
      const e = await c
        .db()
        .collection("x")
        .insertOne({ a: 1 })
        .catch((x: unknown) => x)
      expect(e).toMatchObject({ code: 70, codeName: "ShardNotFound" })
    })
  })

  it("a large insertMany to an unknown database gets the error, not a network error", async () => {
    const trouble: Array<string> = []
    await withClient("nosuchdb", async (c) => {
      c.on("connectionPoolCleared", () => trouble.push("pool cleared"))
      // Its documents come after the command document, in a sequence the proxy did not read: it drops them unread.
      const docs = Array.from({ length: 4 }, (_, i) => ({ i, pad: "q".repeat(512 * 1024) }))
      const e = await c
        .db()
        .collection("x")
        .insertMany(docs)
        .catch((x: unknown) => x)
      expect(e).toMatchObject({ code: 70, codeName: "ShardNotFound" })
    })
    expect(trouble).toEqual([])
  })
})

describe("mongodb listener: what a connection may send before it is routed", () => {
  it("refuses a first command over 64 KiB with 17 ProtocolError the driver shows, then routes the next", async () => {
    const trouble: Array<string> = []
    const doc = { key: "first", pad: "z".repeat(1024 * 1024) }
    await withClient(
      "tenant1",
      async (c) => {
        c.on("connectionPoolCleared", () => trouble.push("pool cleared"))
        c.on("serverDescriptionChanged", (e) => {
          if (e.newDescription.type === "Unknown") trouble.push("server unknown")
        })
        const col = c.db().collection("unrouted")
        // The driver writes $db after the document: the proxy would have to hold all of it to read the routing key.
        const e = await col.insertOne(doc).catch((x: unknown) => x)
        expect(e).toBeInstanceOf(MongoServerError)
        expect(e).toMatchObject({ code: 17, codeName: "ProtocolError" })
        const message = (e as Error).message
        expect(message).toMatch(
          /^polyproxy: command of \d+ bytes before this connection is routed: polyproxy reads at /
        )
        expect(message).toMatch(
          /most 65536 bytes .*authSource=<db>.* raise listeners\.mongodb\.maxRoutingCommand \(ref [0-9a-f]{12}\)$/
        )
        // Once the refused connection is closed, a small command routes a new one, and the large one follows it.
        await sleep(keepRefusingMs + 200)
        await col.deleteMany({ key: "first" })
        expect((await col.insertOne(doc)).acknowledged).toBe(true)
        expect((await col.findOne({ key: "first" }))?.pad).toBe(doc.pad)
      },
      { maxPoolSize: 1 }
    )
    // Not a network error: the driver kept its server and its pool.
    expect(trouble).toEqual([])
    expect(
      proxy.logs.some(
        (l) =>
          l.event === "connection refused" &&
          l.reason === "BAD_REQUEST" &&
          /before this connection is routed/.test(String(l.message))
      )
    ).toBe(true)
  })

  it("routes a large insertMany as the first command: its documents follow the command document", async () => {
    const docs = Array.from({ length: 4 }, (_, i) => ({ key: "many", i, pad: "m".repeat(512 * 1024) }))
    let created = 0
    await withClient(
      "tenant1",
      async (c) => {
        c.on("connectionCreated", () => created++)
        const col = c.db().collection("unroutedMany")
        expect((await col.insertMany(docs)).insertedCount).toBe(4)
      },
      { maxPoolSize: 1 }
    )
    expect(created).toBe(1)
    expect(
      await direct(congo1, (d) => d.db("tenant1").collection("unroutedMany").countDocuments({ key: "many" }))
    ).toBe(4)
    await direct(congo1, (d) => d.db("tenant1").collection("unroutedMany").deleteMany({}))
  })

  it("routes a large first command when listeners.mongodb.maxRoutingCommand allows it", async () => {
    const roomy = await startTestProxy({
      listeners: { mongodb: { host: "127.0.0.1", port: 0, maxRoutingCommand: 16_793_600 } },
      routes: { tenant2: `127.0.0.1:${congo2.port}` },
      ssrf: { allow: ["127.0.0.0/8"] }
    })
    const big = "y".repeat(10 * 1024 * 1024)
    try {
      const c = new MongoClient(uri("tenant2", "directConnection=true", roomy.port("mongodb")), {
        serverSelectionTimeoutMS: 5_000
      })
      try {
        await c.db().collection("roomy").insertOne({ key: "big", big })
      } finally {
        await c.close()
      }
    } finally {
      await roomy.stop()
    }
    const back = await direct(congo2, (d) => d.db("tenant2").collection("roomy").findOne({ key: "big" }))
    expect(back?.big === big).toBe(true)
  })
})

/** Raw bytes in, every byte the proxy answers until it closes. */
const rawExchange = (bytes: Buffer | undefined, port = proxy.port("mongodb")) =>
  new Promise<Buffer>((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1", () => {
      if (bytes) s.write(bytes)
    })
    const parts: Array<Buffer> = []
    s.on("data", (d) => parts.push(d))
    s.once("close", () => resolve(Buffer.concat(parts)))
    s.once("error", reject)
  })

/** The first 25 bytes of an OP_MSG announcing `length` bytes and a body of `bodySize`. */
const opMsgPrefix = (length: number, bodySize: number) => {
  const out = Buffer.alloc(25)
  out.writeInt32LE(length, 0)
  out.writeInt32LE(7, 4)
  out.writeInt32LE(OP_MSG, 12)
  out.writeInt32LE(bodySize, 21)
  return out
}

/** The first reply in `answer`, as OP_MSG or OP_REPLY, with its responseTo. */
const replyOf = (answer: Buffer): { doc: Document; responseTo: number; opCode: number } => {
  const opCode = answer.readInt32LE(12)
  if (opCode === OP_MSG) {
    const m = decodeOpMsg(answer)
    if (m._tag !== "Frame") throw new Error(`expected an OP_MSG, got ${answer.toString("hex")}`)
    return { doc: deserialize(m.value.body), responseTo: m.value.header.responseTo, opCode }
  }
  const r = decodeOpReply(answer)
  if (r._tag !== "Frame") throw new Error(`expected an OP_REPLY, got ${answer.toString("hex")}`)
  return { doc: deserialize(r.value.documents[0]!), responseTo: r.value.header.responseTo, opCode }
}

describe("mongodb listener: the wire, byte by byte", () => {
  it("answers a legacy isMaster with OP_REPLY and an OP_MSG hello with OP_MSG, to the right requestId", async () => {
    const legacy = encodeOpQuery({
      requestId: 41,
      fullCollectionName: "admin.$cmd",
      query: { isMaster: 1, helloOk: true, client: { application: { name: "raw" } } }
    })
    const hello = encodeOpMsg({ requestId: 42, body: { hello: 1, $db: "admin" } })
    // Two hellos on one connection look like a monitor: the proxy answers the second and closes.
    const answer = await rawExchange(Buffer.concat([legacy, hello]))
    const first = replyOf(answer)
    expect(first.opCode).toBe(1)
    expect(first.responseTo).toBe(41)
    expect(first.doc).toMatchObject({ ismaster: true, helloOk: true, maxWireVersion: 21, ok: 1 })
    expect(first.doc).not.toHaveProperty("topologyVersion")
    expect(first.doc).not.toHaveProperty("compression")
    expect(first.doc).not.toHaveProperty("isWritablePrimary")
    const second = replyOf(answer.subarray(answer.readInt32LE(0)))
    expect(second.opCode).toBe(OP_MSG)
    expect(second.responseTo).toBe(42)
    expect(second.doc).toMatchObject({ isWritablePrimary: true, connectionId: first.doc.connectionId, ok: 1 })
    expect(answer.length).toBe(answer.readInt32LE(0) + answer.readInt32LE(answer.readInt32LE(0)))
  })

  it.each([
    ["garbage", Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), /larger than the limit/],
    [
      "an oversized message",
      Buffer.from([0, 0, 0, 4, 7, 0, 0, 0, 0, 0, 0, 0, 0xdd, 7, 0, 0]),
      /67108864 bytes is larger than the limit of 48000000/
    ],
    ["a removed opcode", Buffer.from([16, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0xd2, 7, 0, 0]), /OP_INSERT was removed/],
    [
      "a compressed message",
      encodeOpCompressed({
        requestId: 7,
        originalOpcode: OP_MSG,
        uncompressedSize: 10,
        compressorId: 3,
        payload: Buffer.alloc(10)
      }),
      /zstd-compressed message, but no compressor was negotiated/
    ],
    ["a body over 16 MB", opMsgPrefix(20_000_000, 17_000_000), /^polyproxy: command of 20000000 bytes before/],
    // Not read before routing: a command document ending past 64 KiB (bytes 21 to 25 give its size).
    ["a body over 64 KiB", opMsgPrefix(70_000, 65_516), /^polyproxy: command of 70000 bytes before .* at most 65536/]
  ])("%s gets 17 ProtocolError, then the connection closes", async (_, bytes, message) => {
    const reply = replyOf(await rawExchange(bytes))
    expect(reply.doc).toMatchObject({ ok: 0, code: 17, codeName: "ProtocolError" })
    expect(reply.doc.errmsg).toMatch(message)
    // The header was readable: the error answers its requestId.
    if (bytes.length >= 16 && !bytes.subarray(0, 4).equals(Buffer.from("GET "))) expect(reply.responseTo).toBe(7)
  })

  it("a client that stalls mid-message gets 89 NetworkTimeout at the handshake deadline", async () => {
    const started = Date.now()
    const hello = encodeOpMsg({ requestId: 9, body: { hello: 1, $db: "admin" } })
    const reply = replyOf(await rawExchange(hello.subarray(0, hello.length - 3)))
    expect(reply.doc).toMatchObject({ ok: 0, code: 89, codeName: "NetworkTimeout" })
    expect(reply.responseTo).toBe(9)
    expect(Date.now() - started).toBeGreaterThanOrEqual(handshakeSeconds * 1000 - 100)
  })

  it("a client that sends nothing is closed quietly before the deadline", async () => {
    const started = Date.now()
    expect((await rawExchange(undefined)).length).toBe(0)
    expect(Date.now() - started).toBeLessThan(handshakeSeconds * 1000)
  })

  it("logs and counts refusals by reason", async () => {
    const text = await fetch(`${proxy.adminUrl}/metrics`).then((r) => r.text())
    for (const reason of [
      "not_found",
      "forbidden",
      "unavailable",
      "timeout",
      "connect_failed",
      "internal",
      "bad_request"
    ]) {
      expect(text).toMatch(new RegExp(`polyproxy_errors_total\\{[^}]*reason="${reason}"[^}]*\\} [1-9]`))
    }
    expect(proxy.logs.some((l) => l.event === "connection refused" && l.reason === "NOT_FOUND")).toBe(true)
  })
})

describe("mongodb listener: TLS and routing keys", () => {
  let tlsProxy: TestProxy
  beforeAll(async () => {
    tlsProxy = await startTestProxy({
      listeners: {
        mongodb: {
          host: "127.0.0.1",
          port: 0,
          routeBy: "sni",
          tls: { cert: certs.server.certPath, key: certs.server.keyPath }
        }
      },
      routes: { localhost: `127.0.0.1:${congo2.port}` },
      ssrf: { allow: ["127.0.0.0/8"] }
    })
  })
  afterAll(async () => tlsProxy?.stop())

  it("terminates TLS and routes by the server name", async () => {
    const c = new MongoClient(uri("anydb", "directConnection=true&tls=true", tlsProxy.port("mongodb")), {
      ca: certs.ca.cert,
      servername: "localhost",
      serverSelectionTimeoutMS: 5_000
    })
    try {
      await c.db().collection("sni").insertOne({ via: "tls" })
    } finally {
      await c.close()
    }
    expect(await direct(congo2, (d) => d.db("anydb").collection("sni").countDocuments({ via: "tls" }))).toBe(1)
  })

  it("over TLS too, refuses a first command over 64 KiB with an error the driver shows", async () => {
    const tlsByDb = await startTestProxy({
      listeners: {
        mongodb: { host: "127.0.0.1", port: 0, tls: { cert: certs.server.certPath, key: certs.server.keyPath } }
      },
      routes: { tenant1: `127.0.0.1:${congo1.port}` },
      ssrf: { allow: ["127.0.0.0/8"] }
    })
    const trouble: Array<string> = []
    const c = new MongoClient(uri("tenant1", "directConnection=true&tls=true", tlsByDb.port("mongodb")), {
      ca: certs.ca.cert,
      servername: "localhost",
      serverSelectionTimeoutMS: 5_000
    })
    try {
      c.on("connectionPoolCleared", () => trouble.push("pool cleared"))
      // The rest of the 1 MB message is read and dropped (decrypted into the scratch buffer) so the driver can read.
      const e = await c
        .db()
        .collection("tls")
        .insertOne({ pad: "t".repeat(1024 * 1024) })
        .catch((x: unknown) => x)
      expect(e).toMatchObject({ code: 17, codeName: "ProtocolError" })
      expect((e as Error).message).toMatch(/before this connection is routed/)
    } finally {
      await c.close()
      await tlsByDb.stop()
    }
    expect(trouble).toEqual([])
  })

  it("answers a plaintext client on a TLS listener with an error it can read", async () => {
    const hello = encodeOpQuery({ requestId: 5, fullCollectionName: "admin.$cmd", query: { isMaster: 1 } })
    const reply = replyOf(await rawExchange(hello, tlsProxy.port("mongodb")))
    expect(reply.responseTo).toBe(5)
    expect(reply.doc).toMatchObject({ ok: 0, code: 17 })
    expect(reply.doc.errmsg).toContain("requires TLS")
  })

  it("with routeBy database, sends admin commands that need a backend to defaultRoute", async () => {
    const withDefault = await startTestProxy({
      listeners: { mongodb: { host: "127.0.0.1", port: 0, defaultRoute: "tenant2" } },
      routes: { tenant2: `127.0.0.1:${congo2.port}` },
      ssrf: { allow: ["127.0.0.0/8"] }
    })
    try {
      await direct(congo2, (d) => d.db("marker2").collection("m").insertOne({ here: true }))
      // A fresh client whose first command is on admin: nothing names a tenant, so defaultRoute decides.
      const c = new MongoClient(uri("tenant2", "directConnection=true", withDefault.port("mongodb")), {
        serverSelectionTimeoutMS: 5_000
      })
      try {
        const listed = await c.db("admin").command({ listDatabases: 1 })
        expect(listed.databases.map((d: { name: string }) => d.name)).toContain("marker2")
      } finally {
        await c.close()
      }
    } finally {
      await withDefault.stop()
    }
  })

  it("routes by appName, with defaultRoute for clients that set none", async () => {
    const byApp = await startTestProxy({
      listeners: { mongodb: { host: "127.0.0.1", port: 0, routeBy: "appName", defaultRoute: "tenant1" } },
      routes: { tenant1: `127.0.0.1:${congo1.port}`, tenant2: `127.0.0.1:${congo2.port}` },
      ssrf: { allow: ["127.0.0.0/8"] }
    })
    try {
      const port = byApp.port("mongodb")
      // Each insert is its connection's first command, over 64 KiB: the routing key is not in it, so it routes the
      // connection without being read (with routeBy database it would be refused).
      const pad = "p".repeat(1024 * 1024)
      for (const [query, value] of [
        ["directConnection=true&appName=tenant2", "app"],
        ["directConnection=true", "default"]
      ] as const) {
        const c = new MongoClient(uri("shared", query, port), { serverSelectionTimeoutMS: 5_000 })
        await c.db().collection("byapp").insertOne({ value, pad })
        await c.close()
      }
      expect(await direct(congo2, (d) => d.db("shared").collection("byapp").distinct("value"))).toEqual(["app"])
      expect(await direct(congo1, (d) => d.db("shared").collection("byapp").distinct("value"))).toEqual(["default"])
    } finally {
      await byApp.stop()
    }
  })
})
