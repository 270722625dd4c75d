// The bytes the real `pg` client sends and accepts, against the codec: a fake server on a free port plays the backend.
import type { Socket } from "node:net"
import pg from "pg"
import { describe, expect, it } from "vitest"
import {
  AuthenticationCode,
  type CancelRequest,
  decodeStartup,
  detectDirectTls,
  encodeErrorResponse,
  encodeStartup,
  SSL_REFUSED,
  SSL_REQUEST,
  type Startup,
  type StartupMessage
} from "../../../src/codec/pg/index.ts"
import { feedByteByByte, int32, listen, message, readFrame, type TestServer } from "./support.ts"

const clientConfig = (port: number, extra: pg.ClientConfig = {}): pg.ClientConfig => ({
  host: "127.0.0.1",
  port,
  user: "app",
  database: "appdb",
  ssl: false,
  connectionTimeoutMillis: 5_000,
  ...extra
})

/** Connects a pg client that is expected to fail; resolves with its error. */
const failedConnect = async (config: pg.ClientConfig): Promise<Error & Record<string, unknown>> => {
  const client = new pg.Client(config)
  client.on("error", () => {})
  try {
    await client.connect()
  } catch (error) {
    return error as Error & Record<string, unknown>
  } finally {
    await client.end().catch(() => {})
  }
  throw new Error("expected the connection to fail")
}

const withServer = async <A>(
  onConnection: (socket: Socket) => void,
  body: (server: TestServer) => Promise<A>
): Promise<A> => {
  const server = await listen(onConnection)
  try {
    return await body(server)
  } finally {
    await server.close()
  }
}

/** Captures the first packet of one pg connection, then hangs up. */
const capture = async (extra: pg.ClientConfig = {}) => {
  let first: Promise<{ result: ReturnType<typeof decodeStartup>; bytes: Buffer }> | undefined
  return withServer(
    (socket) => {
      first = readFrame(socket, (b) => decodeStartup(b))
      void first.finally(() => socket.destroy())
    },
    async ({ port }) => {
      await failedConnect(clientConfig(port, extra))
      if (first === undefined) throw new Error("pg never connected")
      return first
    }
  )
}

const startupValue = (result: ReturnType<typeof decodeStartup>): StartupMessage => {
  if (result._tag !== "Frame" || result.value._tag !== "StartupMessage") throw new Error(JSON.stringify(result))
  return result.value
}

describe("pg client → codec", () => {
  it("decodes pg's StartupMessage, and re-encodes it byte for byte", async () => {
    const { result, bytes } = await capture({ application_name: "codec-spec", options: "-c search_path=tenant" })
    expect(result).toMatchObject({ _tag: "Frame", size: bytes.length })
    const msg = startupValue(result)
    expect(msg).toMatchObject({ major: 3, minor: 0 })
    expect(Object.fromEntries(msg.parameters)).toMatchObject({
      user: "app",
      database: "appdb",
      application_name: "codec-spec",
      options: "-c search_path=tenant",
      client_encoding: "UTF8"
    })
    expect(msg.raw.equals(bytes)).toBe(true)
    expect(encodeStartup(msg.parameters).equals(bytes)).toBe(true)
  })

  it("answers Need for pg's StartupMessage fed one byte at a time, until the last byte", async () => {
    const { bytes } = await capture()
    const results = feedByteByByte(bytes, (b) => decodeStartup(b))
    expect(results.pop()).toMatchObject({ _tag: "Frame", size: bytes.length })
    expect(results.map((r) => r._tag)).toEqual(results.map(() => "Need"))
  })

  it("decodes pg's SSLRequest, and pg understands SSL_REFUSED", async () => {
    let first: Buffer | undefined
    const error = await withServer(
      (socket) => {
        void readFrame(socket, (b) => decodeStartup(b)).then(({ result, bytes }) => {
          first = bytes
          expect(result).toEqual({ _tag: "Frame", value: { _tag: "SSLRequest" }, size: 8 })
          socket.write(SSL_REFUSED)
        })
      },
      ({ port }) => failedConnect(clientConfig(port, { ssl: { rejectUnauthorized: false } }))
    )
    expect(first?.equals(SSL_REQUEST)).toBe(true)
    expect(error.message).toBe("The server does not support SSL connections")
  })

  it("spots pg's direct TLS (sslnegotiation=direct) from the first byte", async () => {
    let first: Buffer | undefined
    await withServer(
      (socket) =>
        socket.once("data", (chunk: Buffer) => {
          first = chunk
          socket.destroy()
        }),
      ({ port }) => failedConnect(clientConfig(port, { ssl: { rejectUnauthorized: false }, sslnegotiation: "direct" }))
    )
    if (first === undefined) throw new Error("pg sent nothing")
    expect(detectDirectTls(first)).toBe(true)
    // A listener that skipped the check would still refuse it rather than wait for 0x16... bytes.
    expect(decodeStartup(first)._tag).toBe("Invalid")
  })

  it("pg surfaces our ErrorResponse: message, SQLSTATE, severity, detail and hint", async () => {
    const error = await withServer(
      (socket) => {
        void readFrame(socket, (b) => decodeStartup(b)).then(() => {
          socket.end(
            encodeErrorResponse({
              severity: "FATAL",
              code: "3D000",
              message: 'database "appdb" does not exist',
              detail: "no route for tenant appdb",
              hint: "check the database name"
            })
          )
        })
      },
      ({ port }) => failedConnect(clientConfig(port))
    )
    expect(error).toMatchObject({
      message: 'database "appdb" does not exist',
      code: "3D000",
      severity: "FATAL",
      detail: "no route for tenant appdb",
      hint: "check the database name"
    })
  })

  it("pg logs in on our R, S, K, Z messages, then sends a CancelRequest carrying our key", async () => {
    const processId = 4242
    const secretKey = Buffer.from("deadbeef", "hex")
    let cancelled: (request: CancelRequest) => void = () => {}
    const cancel = new Promise<CancelRequest>((resolve) => (cancelled = resolve))
    let queryArrived: () => void = () => {}
    const queryReceived = new Promise<void>((resolve) => (queryArrived = resolve))
    let session: Socket | undefined

    await withServer(
      (socket) => {
        void readFrame(socket, (b) => decodeStartup(b)).then(({ result }) => {
          const value: Startup | undefined = result._tag === "Frame" ? result.value : undefined
          if (value?._tag === "CancelRequest") {
            cancelled(value)
            socket.destroy()
            return
          }
          session = socket
          socket.write(
            Buffer.concat([
              message("R", int32(AuthenticationCode.Ok)),
              message("S", Buffer.from("server_version\u000015.18\u0000")),
              message("K", Buffer.concat([int32(processId), secretKey])),
              message("Z", Buffer.from("I"))
            ])
          )
          socket.once("data", () => queryArrived())
          socket.resume()
        })
      },
      async ({ port }) => {
        const client = new pg.Client(clientConfig(port))
        client.on("error", () => {})
        await client.connect()
        try {
          const query = client.query("SELECT pg_sleep(30)")
          await queryReceived
          const con = new pg.Connection() as pg.Connection & {
            connect(port: number, host: string): void
            cancel(processId: number, secretKey: number): void
          }
          const live = client as unknown as { processID: number; secretKey: number }
          expect(live.processID).toBe(processId)
          con.on("connect", () => con.cancel(live.processID, live.secretKey))
          con.connect(port, "127.0.0.1")
          const request = await cancel
          expect(request.processId).toBe(processId)
          expect(request.secretKey.equals(secretKey)).toBe(true)
          con.stream.destroy()
          // The backend's answer to a cancelled query: an ERROR, after which the session goes on.
          session?.write(
            Buffer.concat([
              encodeErrorResponse({
                severity: "ERROR",
                code: "57014",
                message: "canceling statement due to user request"
              }),
              message("Z", Buffer.from("I"))
            ])
          )
          await expect(query).rejects.toMatchObject({ code: "57014", severity: "ERROR" })
        } finally {
          await client.end().catch(() => {})
        }
      }
    )
  })
})
