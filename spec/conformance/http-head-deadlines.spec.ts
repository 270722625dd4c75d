// How long the HTTP listener waits for a request head, with raw sockets (and a real TLS client on the plain port):
// timeouts.handshake for a new connection and for any head once begun, keepAliveTimeout between requests, and no
// wait at all for bytes that can never become a request.
import { createConnection } from "node:net"
import * as tls from "node:tls"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Origin, rawExchange, startOrigin, statuses } from "../listeners/http/support.ts"
import { startTestProxy, type TestProxy } from "../support/proxy.ts"

const handshakeMs = 1_000
const keepAliveMs = 3_000

let origin: Origin
let proxy: TestProxy
let port: number

beforeAll(async () => {
  origin = await startOrigin("A")
  proxy = await startTestProxy({
    listeners: { http: { host: "127.0.0.1", port: 0, keepAliveTimeout: keepAliveMs / 1000 } },
    routes: { "a.test": `127.0.0.1:${origin.port}` },
    ssrf: { allow: ["127.0.0.0/8"] },
    timeouts: { handshake: handshakeMs / 1000 }
  })
  port = proxy.port("http")
})

afterAll(async () => {
  await proxy?.stop()
  await origin?.close()
})

/** A raw client connection that records what the proxy sent and when it closed, in ms since it connected. */
interface Watched {
  readonly write: (bytes: string | Buffer) => void
  readonly text: () => string
  /** Ms from connect to the first byte received, if any. */
  readonly firstByteAt: () => number | undefined
  /** Resolves with the ms from connect to the proxy's close. */
  readonly closed: Promise<number>
  readonly isClosed: () => boolean
  /** Ms since connect. */
  readonly now: () => number
  readonly destroy: () => void
}

const watch = (): Promise<Watched> =>
  new Promise((resolve, reject) => {
    const parts: Array<Buffer> = []
    let started = 0
    let first: number | undefined
    let isClosed = false
    const socket = createConnection(port, "127.0.0.1")
    const closed = new Promise<number>((r) =>
      socket.once("close", () => {
        isClosed = true
        r(performance.now() - started)
      })
    )
    socket.on("data", (d: Buffer) => {
      first ??= performance.now() - started
      parts.push(d)
    })
    socket.once("error", reject)
    socket.once("connect", () => {
      started = performance.now()
      resolve({
        write: (b) => void socket.write(b),
        text: () => Buffer.concat(parts).toString("latin1"),
        firstByteAt: () => first,
        closed,
        isClosed: () => isClosed,
        now: () => performance.now() - started,
        destroy: () => socket.destroy()
      })
    })
  })

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe("http listener: head deadlines", () => {
  it("closes a connection that sends nothing at timeouts.handshake, without an answer", async () => {
    const c = await watch()
    const at = await c.closed
    expect(c.text()).toBe("")
    // timeouts.handshake (1 s), not at once and not keepAliveTimeout (3 s).
    expect(at).toBeGreaterThanOrEqual(handshakeMs - 100)
    expect(at).toBeLessThan(keepAliveMs - 500)
  })

  it("answers 408 and closes when a begun head is not complete at timeouts.handshake, silent or trickling", async () => {
    const silent = await watch()
    silent.write("GET /echo HTTP/1.1\r\nHost: a.test\r\n")
    const trickling = await watch()
    trickling.write("GET /echo HTTP/1.1\r\n")
    const timer = setInterval(() => trickling.write("X-A: 1\r\n"), 200)
    const garbage = await watch()
    garbage.write("hello world")
    try {
      for (const c of [silent, trickling, garbage]) {
        const at = await c.closed
        expect(statuses(c.text())).toEqual([408])
        expect(c.text()).toContain('"reason":"HANDSHAKE_TIMEOUT"')
        expect(c.firstByteAt()).toBeGreaterThanOrEqual(handshakeMs - 100)
        expect(at).toBeLessThan(keepAliveMs - 500)
      }
    } finally {
      clearInterval(timer)
    }
  })

  it("keeps a connection between requests for keepAliveTimeout, then closes it without an answer", async () => {
    const c = await watch()
    c.write("GET /echo HTTP/1.1\r\nHost: a.test\r\n\r\n")
    // Longer than timeouts.handshake: an idle kept-alive connection is not a slow head.
    await sleep(handshakeMs + 500)
    expect(c.isClosed()).toBe(false)
    c.write("GET /echo?second HTTP/1.1\r\nHost: a.test\r\n\r\n")
    await sleep(200)
    expect(statuses(c.text())).toEqual([200, 200])
    const answered = c.now()
    const at = await c.closed
    expect(statuses(c.text())).toEqual([200, 200])
    // keepAliveTimeout after the last answer; "not before" is the point, the upper bound is loose.
    expect(at - answered).toBeGreaterThanOrEqual(keepAliveMs - 400)
    expect(at - answered).toBeLessThan(keepAliveMs + 2_000)
  })

  it("answers a head with bare LF line ends with 400 before timeouts.handshake", async () => {
    for (const bytes of ["GET /echo HTTP/1.1\nHost: a.test\n\n", "GET /echo HTTP/1.1\r\nHost: a.test\nX-A: 1\n"]) {
      const c = await watch()
      c.write(bytes)
      const at = await c.closed
      expect(statuses(c.text()), JSON.stringify(bytes)).toEqual([400])
      expect(c.text()).toContain("bare LF")
      expect(at).toBeLessThan(handshakeMs)
    }
  })

  it("answers bytes that cannot start a request (a TLS ClientHello on the plain port) with 400 at once", async () => {
    const started = performance.now()
    const err = await new Promise<Error>((resolve) => {
      const s = tls.connect({ host: "127.0.0.1", port, servername: "a.test", rejectUnauthorized: false })
      s.once("secureConnect", () => resolve(new Error("handshake succeeded")))
      s.once("error", resolve)
    })
    expect(err.message).not.toBe("handshake succeeded")
    expect(performance.now() - started).toBeLessThan(handshakeMs)
    const line = proxy.logs.find((l) => l.event === "request refused" && String(l.message).includes("0x16"))
    expect(line).toMatchObject({ status: 400, reason: "BAD_REQUEST" })
    // The same bytes from a raw socket read as the JSON 400.
    const r = await rawExchange(port, Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]))
    expect(statuses(r.text)).toEqual([400])
    expect(r.closed).toBe(true)
  })

  it("still reads an empty line before a request, even when its CR and LF arrive apart", async () => {
    const r = await rawExchange(port, ["\r", "\nGET /echo HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"], {
      gapMs: 100
    })
    expect(statuses(r.text)).toEqual([200])
  })
})
