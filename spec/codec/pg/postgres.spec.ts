// The codec against the bytes a real PostgreSQL server (the specs' 15) sends and accepts, recorded by a tap in between.
import * as net from "node:net"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  AuthenticationCode,
  type BackendMessage,
  decodeAuthenticationCode,
  decodeBackendKeyData,
  decodeBackendMessage,
  decodeErrorFields,
  decodeErrorResponse,
  decodeSslResponse,
  decodeStartup,
  encodeCancelRequest,
  encodeStartup,
  encodeStartupRefusal,
  SSL_REQUEST
} from "../../../src/codec/pg/index.ts"
import { type PostgresServer, startPostgres } from "../../support/backends/index.ts"
import { decodeAll, fieldsOf, listen, readFrame, type TestServer } from "./support.ts"

interface Recording {
  readonly fromClient: Buffer[]
  readonly fromServer: Buffer[]
}

let db: PostgresServer
let tap: TestServer
const recordings: Recording[] = []

beforeAll(async () => {
  db = await startPostgres({ tls: true, databases: ["appdb"] })
  // Relays to the server and keeps a copy of every byte each way.
  tap = await listen((client) => {
    const recording: Recording = { fromClient: [], fromServer: [] }
    recordings.push(recording)
    const server = net.connect(db.port, "127.0.0.1")
    server.on("error", () => client.destroy())
    client.on("data", (chunk: Buffer) => {
      recording.fromClient.push(chunk)
      server.write(chunk)
    })
    server.on("data", (chunk: Buffer) => {
      recording.fromServer.push(chunk)
      client.write(chunk)
    })
    client.on("close", () => server.destroy())
    server.on("close", () => client.destroy())
  })
})

afterAll(async () => {
  await tap?.close()
  await db?.stop()
})

const clientViaTap = () =>
  new pg.Client({
    host: "127.0.0.1",
    port: tap.port,
    user: db.user,
    password: db.userPassword,
    database: "appdb",
    ssl: false
  })

/** Sends `bytes` straight to the server; resolves with everything it answers until it hangs up or `ms` pass. */
const exchange = (bytes: Buffer, ms = 2_000): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const socket = net.connect(db.port, "127.0.0.1")
    const chunks: Buffer[] = []
    const timer = setTimeout(() => socket.destroy(), ms)
    socket.on("data", (chunk: Buffer) => chunks.push(chunk))
    socket.on("close", () => {
      clearTimeout(timer)
      resolve(Buffer.concat(chunks))
    })
    socket.on("error", reject)
    socket.write(bytes)
  })

const keyDataOf = (messages: readonly BackendMessage[]) => {
  const k = messages.find((m) => m.type === "K")
  if (k === undefined) throw new Error("no BackendKeyData")
  const result = decodeBackendKeyData(k.body)
  if (result._tag !== "Frame") throw new Error(result.reason)
  return result.value
}

describe("real PostgreSQL → codec", () => {
  it("frames a whole SCRAM login and reads the BackendKeyData of the session", async () => {
    const client = clientViaTap()
    await client.connect()
    const { rows } = await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")
    await client.end()
    const recording = recordings.at(-1)!

    const sent = Buffer.concat(recording.fromClient)
    const startup = decodeStartup(sent)
    expect(startup).toMatchObject({ _tag: "Frame", value: { _tag: "StartupMessage", major: 3, minor: 0 } })
    if (startup._tag === "Frame" && startup.value._tag === "StartupMessage") {
      expect(startup.value.parameters.get("user")).toBe(db.user)
      expect(startup.value.parameters.get("database")).toBe("appdb")
    }

    const messages = decodeAll(Buffer.concat(recording.fromServer), (b) => decodeBackendMessage(b))
    const login = messages.slice(0, messages.findIndex((m) => m.type === "Z") + 1)
    const authCodes = login
      .filter((m) => m.type === "R")
      .map((m) => {
        const code = decodeAuthenticationCode(m.body)
        return code._tag === "Frame" ? code.value : code.reason
      })
    expect(authCodes).toEqual([
      AuthenticationCode.SASL,
      AuthenticationCode.SASLContinue,
      AuthenticationCode.SASLFinal,
      AuthenticationCode.Ok
    ])
    expect(new Set(login.map((m) => m.type))).toEqual(new Set(["R", "S", "K", "Z"]))
    expect(login.at(-2)?.type).toBe("K")
    const key = keyDataOf(login)
    expect(key.processId).toBe(rows[0]?.pid)
    expect(key.secretKey.length).toBe(4)
  })

  it("cancels a running query with encodeCancelRequest and the recorded key, and decodes the server's error", async () => {
    const client = clientViaTap()
    client.on("error", () => {})
    await client.connect()
    const recording = recordings.at(-1)!
    const key = keyDataOf(decodeAll(Buffer.concat(recording.fromServer), (b) => decodeBackendMessage(b)))
    const sleeping = client.query("SELECT pg_sleep(30)")
    const outcome = sleeping.then(
      () => undefined,
      (error: unknown) => error
    )
    const watcher = clientViaTap()
    await watcher.connect()
    try {
      // A cancel that arrives before the query runs cancels nothing, so wait until the server is in it.
      for (let i = 0; i < 100; i++) {
        const { rows } = await watcher.query<{ state: string }>("SELECT state FROM pg_stat_activity WHERE pid = $1", [
          key.processId
        ])
        if (rows[0]?.state === "active") break
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      await exchange(encodeCancelRequest(key.processId, key.secretKey), 5_000)
      expect(await outcome).toMatchObject({ code: "57014" })
    } finally {
      await watcher.end()
      await client.end()
    }
    const errors = decodeAll(Buffer.concat(recording.fromServer), (b) => decodeBackendMessage(b)).filter(
      (m) => m.type === "E"
    )
    const fields = decodeErrorFields(errors[0]!.body)
    expect(fields._tag === "Frame" && Object.fromEntries(fields.value.fields)).toMatchObject({
      S: "ERROR",
      V: "ERROR",
      C: "57014",
      M: "canceling statement due to user request"
    })
  })

  it("answers SSL_REQUEST with a lone 'S'", async () => {
    const socket = net.connect(db.port, "127.0.0.1")
    socket.on("error", () => {})
    try {
      socket.write(SSL_REQUEST)
      const { result, bytes } = await readFrame(socket, decodeSslResponse)
      expect(result).toEqual({ _tag: "Frame", value: "S", size: 1 })
      expect(bytes.length).toBe(1)
    } finally {
      socket.destroy()
    }
  })

  /** The decoder's RefusedStartup for `bytes`, which must be one the server words itself. */
  const refusalOf = (bytes: Buffer) => {
    const local = decodeStartup(bytes)
    if (local._tag !== "Frame" || local.value._tag !== "RefusedStartup" || !local.value.byServer) {
      throw new Error(`expected the server's refusal, got ${JSON.stringify(local)}`)
    }
    return local.value
  }

  /** The fields a client reads (F, L and R name the server's source lines). */
  const readable = (fields: Record<string, string>) => {
    const { F: _f, L: _l, R: _r, ...rest } = fields
    return rest
  }

  it("refuses a startup without user, or with a bad layout, with the very error the codec encodes", async () => {
    for (const bytes of [
      encodeStartup({ database: "appdb" }),
      encodeStartup({ user: "", database: "appdb" }),
      Buffer.concat([Buffer.from([0, 0, 0, 17, 0, 3, 0, 0]), Buffer.from("user\0app\0", "latin1")])
    ]) {
      const ours = fieldsOf(encodeStartupRefusal(refusalOf(bytes)))
      expect(readable(fieldsOf(await exchange(bytes)))).toEqual(ours)
    }
  })

  it("refuses protocol 4.0 as the codec does, naming the version", async () => {
    const bytes = encodeStartup({ user: "app" }, 4 << 16)
    const ours = fieldsOf(encodeStartupRefusal(refusalOf(bytes)))
    expect(ours.M).toBe("unsupported frontend protocol 4.0: server supports 3.0 to 3.2")
    const fields = readable(fieldsOf(await exchange(bytes)))
    // The highest minor named is each server's own.
    expect({ ...fields, M: fields.M?.replace(/3\.\d+$/, "3.2") }).toEqual(ours)
  })

  it("refuses protocol 2.0 in the old unframed format, which the framer does not mistake for a message", async () => {
    const bytes = encodeStartup({ user: "app" }, 2 << 16)
    const ours = encodeStartupRefusal(refusalOf(bytes))
    const answer = await exchange(bytes)
    expect(answer.toString("latin1")).toMatch(/^EFATAL: {2}unsupported frontend protocol 2\.0/)
    expect(answer.toString("latin1").replace(/3\.\d+\n/, "3.2\n")).toBe(ours.toString("latin1"))
    expect(decodeErrorResponse(answer)._tag).toBe("Invalid")
    // The same unframed 'E' is what a server too old for SSL answers to SSLRequest.
    expect(decodeSslResponse(answer)).toMatchObject({
      _tag: "Invalid",
      reason: expect.stringContaining("ErrorResponse")
    })
  })

  it("closes without a word on a length the codec refuses, e.g. node-postgres's Terminate sent first", async () => {
    const bytes = Buffer.from([0x58, 0, 0, 0, 4])
    expect(decodeStartup(bytes)._tag).toBe("Invalid")
    expect((await exchange(bytes)).length).toBe(0)
  })

  it("answers a newer 3.x minor with NegotiateProtocolVersion, so relaying it is right", async () => {
    const bytes = encodeStartup({ user: "app", database: "appdb" }, (3 << 16) | 9)
    expect(decodeStartup(bytes)).toMatchObject({ _tag: "Frame", value: { minor: 9 } })
    const socket = net.connect(db.port, "127.0.0.1")
    socket.on("error", () => {})
    try {
      socket.write(bytes)
      const { result } = await readFrame(socket, (b) => decodeBackendMessage(b))
      expect(result).toMatchObject({ _tag: "Frame", value: { type: "v" } })
    } finally {
      socket.destroy()
    }
  })
})
