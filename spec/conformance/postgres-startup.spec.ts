// Odd first packets, sent straight to a real PostgreSQL 15 and through the postgres listener: the client must get the
// same class of answer both ways — silence where the server says nothing, else the same bytes ('S', 'N') and the same
// FATAL error (severity, SQLSTATE, words, detail). Both ends terminate TLS, so SSLRequest is 'S' on both.
import * as net from "node:net"
import * as tls from "node:tls"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  CANCEL_REQUEST_CODE,
  decodeErrorFields,
  encodeStartup,
  GSSENC_REQUEST_CODE,
  PROTOCOL_3_0,
  SSL_REQUEST_CODE
} from "../../src/codec/pg/index.ts"
import { type PostgresServer, startPostgres } from "../support/backends/index.ts"
import { type Certs, makeCerts } from "../support/certs.ts"
import { eventually, startTestProxy, type TestProxy } from "../support/proxy.ts"

let db: PostgresServer
let certs: Certs
let proxy: TestProxy

beforeAll(async () => {
  ;[db, certs] = await Promise.all([startPostgres({ tls: true, databases: ["appdb"] }), makeCerts()])
  proxy = await startTestProxy({
    listeners: {
      postgres: { host: "127.0.0.1", port: 0, tls: { cert: certs.server.certPath, key: certs.server.keyPath } }
    },
    routes: { appdb: `127.0.0.1:${db.port}` },
    ssrf: { allow: ["127.0.0.0/8"] },
    timeouts: { handshake: 2 }
  })
})

afterAll(async () => {
  await proxy?.stop()
  await db?.stop()
})

/** A write, a TLS handshake over the connection (after the 'S' it waits for), or the client's FIN. */
type Step = Buffer | "tls" | "end"

/** Runs `steps` against `port`; resolves with what came back, with "|tls|" where TLS began and "…open" on no close. */
const transcript = (port: number, steps: readonly Step[], waitMs = 2_500) =>
  new Promise<Buffer[]>((resolve, reject) => {
    const parts: Buffer[] = []
    let current: net.Socket = net.connect(port, "127.0.0.1")
    let received: (() => void) | undefined
    const onData = (d: Buffer) => {
      parts.push(d)
      received?.()
    }
    const finish = (open: boolean) => {
      clearTimeout(timer)
      current.destroy()
      resolve(open ? [...parts, Buffer.from("…open")] : parts)
    }
    const timer = setTimeout(() => finish(true), waitMs)
    const watch = (s: net.Socket) => {
      s.on("data", onData)
      s.once("close", () => finish(false))
      s.on("error", () => {})
    }
    watch(current)
    current.once("connect", async () => {
      try {
        for (const step of steps) {
          if (step === "end") current.end()
          else if (step === "tls") {
            if (parts.length === 0) await new Promise<void>((r) => (received = r))
            const raw = current
            raw.removeAllListeners("data")
            raw.removeAllListeners("close")
            current = tls.connect({ socket: raw, rejectUnauthorized: false })
            await new Promise((r) => current.once("secureConnect", r))
            parts.push(Buffer.from("|tls|"))
            watch(current)
          } else current.write(step)
          await new Promise((r) => setTimeout(r, 100))
        }
      } catch (e) {
        reject(e)
      }
    })
  })

/**
 * The answer as comparable values: single bytes as letters, an ErrorResponse as its S/V/C/M/D fields (F, L, R name
 * the server's source lines), a protocol 2.0 error as its text. The highest 3.x minor a server names is its own.
 */
const shape = (parts: readonly Buffer[]): unknown[] => {
  const out: unknown[] = []
  for (const part of parts) {
    const text = part.toString("latin1")
    if (text === "|tls|" || text === "…open") {
      out.push(text)
      continue
    }
    let i = 0
    while (i < part.length) {
      const type = String.fromCharCode(part[i]!)
      if (type === "E" && part[i + 1] === 0) {
        const length = part.readInt32BE(i + 1)
        const fields = decodeErrorFields(part.subarray(i + 5, i + 1 + length))
        if (fields._tag !== "Frame") throw new Error(`bad ErrorResponse: ${fields.reason}`)
        const f = fields.value.fields
        out.push({ S: f.get("S"), V: f.get("V"), C: f.get("C"), M: normalise(f.get("M")), D: f.get("D") })
        i += 1 + length
      } else if (type === "E") {
        const end = part.indexOf(0, i)
        out.push({ legacy: normalise(part.toString("latin1", i, end < 0 ? part.length : end)) })
        i = end < 0 ? part.length : end + 1
      } else {
        out.push(type)
        i++
      }
    }
  }
  return out
}

const normalise = (text: string | undefined) =>
  text?.replace(/server supports 3\.0 to 3\.\d+/, "server supports 3.0 to 3.x")

const bothWays = async (steps: readonly Step[]) => {
  const [direct, proxied] = await Promise.all([transcript(db.port, steps), transcript(proxy.port("postgres"), steps)])
  return { direct: shape(direct), proxied: shape(proxied) }
}

const packet = (length: number, code: number, body: Buffer = Buffer.alloc(0)): Buffer => {
  const out = Buffer.alloc(8 + body.length)
  out.writeInt32BE(length, 0)
  out.writeInt32BE(code, 4)
  body.copy(out, 8)
  return out
}

const raw = (text: string, version = PROTOCOL_3_0) => {
  const body = Buffer.from(text, "latin1")
  return packet(8 + body.length, version, body)
}

/** A StartupMessage of exactly `length` bytes with no user: the server reads it whole, then answers 28000. */
const sizedWithoutUser = (length: number) => raw(`application_name\0${"x".repeat(length - 8 - 19)}\0\0`)

const SSL = packet(8, SSL_REQUEST_CODE)
const GSS = packet(8, GSSENC_REQUEST_CODE)
const noUser = encodeStartup({ database: "appdb" })

describe("postgres listener: odd first packets get what PostgreSQL 15 answers", () => {
  it.each<[string, Step[]]>([
    // node-postgres's quick disconnect: Terminate before any startup, read as a length of 0x58000000.
    ["Terminate as the first bytes", [Buffer.from([0x58, 0, 0, 0, 4])]],
    ["a length of 4", [packet(4, PROTOCOL_3_0)]],
    ["a length of 7", [Buffer.from([0, 0, 0, 7, 0, 3, 0])]],
    ["a length of 10,005 (the server takes 10,004)", [packet(10_005, PROTOCOL_3_0)]],
    ["a 10,004-byte packet is read whole", [sizedWithoutUser(10_004)]],
    ["a negative length", [packet(-8, PROTOCOL_3_0)]],
    ["HTTP", [Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n")]],
    ["half a packet, then FIN", [Buffer.from([0, 0, 0, 40, 0, 3, 0, 0]), "end"]],
    ["half a length word, then FIN", [Buffer.from([0, 0]), "end"]],
    ["nothing, then FIN", ["end"]],
    ["protocol 2.0 (answered in the 2.0 format)", [encodeStartup({ user: "app" }, 2 << 16)]],
    ["protocol 4.0", [encodeStartup({ user: "app" }, 4 << 16)]],
    ["an unknown request code 1234.1", [packet(8, (1234 << 16) | 1)]],
    ["an unknown request code with a body", [packet(16, (1234 << 16) | 5681, Buffer.alloc(8))]],
    ["CancelRequest of 12 bytes", [packet(12, CANCEL_REQUEST_CODE, Buffer.alloc(4))]],
    ["CancelRequest of 20 bytes", [packet(20, CANCEL_REQUEST_CODE, Buffer.alloc(12))]],
    ["CancelRequest with an unknown key", [packet(16, CANCEL_REQUEST_CODE, Buffer.from("0000303900010932", "hex"))]],
    ["no user", [noUser]],
    ["an empty user", [encodeStartup({ user: "", database: "appdb" })]],
    ["no terminator", [raw("user\0app\0")]],
    ["bytes after the terminator", [raw("user\0app\0\0x")]],
    ["a name without a value", [raw("user\0app\0foo\0")]],
    ["a value without its NUL", [raw("user\0ap")]],
    ["SSLRequest twice, the second inside TLS", [SSL, "tls", SSL]],
    ["GSSENCRequest inside TLS", [SSL, "tls", GSS]],
    ["bytes behind an SSLRequest, before TLS", [Buffer.concat([SSL, noUser]), "tls"]],
    ["an SSLRequest of 12 bytes is an SSLRequest", [packet(12, SSL_REQUEST_CODE, Buffer.alloc(4)), "tls", noUser]]
  ])("%s", async (_, steps) => {
    const { direct, proxied } = await bothWays(steps)
    expect(proxied).toEqual(direct)
  })

  // On TCP the specs' server accepts GSSAPI encryption ('G'), which the proxy does not offer; these are what it
  // answers where it refuses it (its unix socket, recorded there): 'N', and the same refusals as for SSLRequest.
  it("answers GSSENCRequest 'N', a second one 0A000, and bytes behind it 08P01", async () => {
    const port = proxy.port("postgres")
    expect(shape(await transcript(port, [GSS, GSS]))).toEqual([
      "N",
      {
        S: "FATAL",
        V: "FATAL",
        C: "0A000",
        M: "unsupported frontend protocol 1234.5680: server supports 3.0 to 3.x",
        D: undefined
      }
    ])
    expect(shape(await transcript(port, [Buffer.concat([GSS, noUser])]))).toEqual([
      "N",
      {
        S: "FATAL",
        V: "FATAL",
        C: "08P01",
        M: "received unencrypted data after GSSAPI encryption request",
        D: "This could be either a client-software bug or evidence of an attempted man-in-the-middle attack."
      }
    ])
    // SSLRequest after a refused GSSENCRequest is still answered, then nothing more is.
    expect(shape(await transcript(port, [GSS, SSL, "tls", GSS]))).toEqual([
      "N",
      "S",
      "|tls|",
      expect.objectContaining({ C: "0A000", M: expect.stringContaining("1234.5680") })
    ])
  })

  it("closes silently when the startup packet does not come within the handshake timeout, logging it", async () => {
    const answer = await transcript(proxy.port("postgres"), [Buffer.from([0, 0, 0, 40])], 5_000)
    expect(shape(answer)).toEqual([])
    await eventually(() => proxy.logs.some((l) => l.reason === "HANDSHAKE_TIMEOUT"))
  })

  it("logs and counts the silent refusals", async () => {
    await transcript(proxy.port("postgres"), [Buffer.from([0x58, 0, 0, 0, 4])])
    await eventually(() =>
      proxy.logs.some((l) => l.level === "info" && String(l.message).includes("invalid length of startup packet"))
    )
    const text = await fetch(`${proxy.adminUrl}/metrics`).then((r) => r.text())
    expect(text).toMatch(/polyproxy_errors_total\{[^}]*reason="bad_request"[^}]*\} [1-9]/)
  })
})

describe("postgres listener: node-postgres's quick disconnect", () => {
  /** `client.connect(); client.end()` back to back: end() runs before the socket is connected. */
  const quickDisconnect = async (port: number) => {
    const client = new pg.Client({
      host: "127.0.0.1",
      port,
      user: db.user,
      password: db.userPassword,
      database: "appdb",
      ssl: false
    })
    const errors: string[] = []
    client.on("error", (e) => errors.push(e.message))
    const connected = client.connect().then(
      () => "connected",
      (e: Error) => `rejected: ${e.message}`
    )
    await client.end()
    const outcome = await Promise.race([connected, new Promise((r) => setTimeout(() => r("pending"), 1_000))])
    return { outcome, errors }
  }

  it("ends as it does against the server: no error reaches the client", async () => {
    const direct = await quickDisconnect(db.port)
    expect(direct.errors).toEqual([])
    expect(await quickDisconnect(proxy.port("postgres"))).toEqual(direct)
  })
})
