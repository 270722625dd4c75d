// writeDirect (src/relay/directWrite.ts): writes to the socket's handle, past Node's Writable. Real loopback sockets:
// every byte arrives once and in order (also mixed with socket.write and across a full kernel buffer), a write the
// kernel could not take returns false and `drain` follows once everything queued is written, `bytesWritten` counts
// them, and a TLS socket keeps Node's own path.
import { createHash, randomBytes } from "node:crypto"
import * as net from "node:net"
import * as tls from "node:tls"
import { afterEach, describe, expect, it } from "vitest"
import { writeDirect } from "../../src/relay/directWrite.ts"
import { makeCerts } from "../support/certs.ts"

const cleanups: Array<() => void> = []
afterEach(() => {
  for (const c of cleanups.splice(0)) c()
})

/** A server whose first accepted socket is handed out paused; resolves with the client side and it. */
const pair = async (): Promise<{ client: net.Socket; accepted: net.Socket }> => {
  let accepted!: (s: net.Socket) => void
  const got = new Promise<net.Socket>((r) => (accepted = r))
  const server = net.createServer({ pauseOnConnect: true }, (s) => accepted(s))
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  const port = (server.address() as net.AddressInfo).port
  const client = net.connect(port, "127.0.0.1")
  await new Promise<void>((r, j) => client.once("connect", r).once("error", j))
  const s = await got
  cleanups.push(() => {
    client.destroy()
    s.destroy()
    server.close()
  })
  return { client, accepted: s }
}

/** Everything `s` reads until `n` bytes came. */
const readAll = (s: net.Socket, n: number): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const parts: Buffer[] = []
    let got = 0
    s.on("data", (d: Buffer) => {
      parts.push(d)
      got += d.length
      if (got >= n) resolve(Buffer.concat(parts))
    })
    s.once("error", reject)
    s.once("close", () => reject(new Error(`closed after ${got} of ${n} bytes`)))
    s.resume()
  })

const digest = (b: Buffer) => createHash("sha256").update(b).digest("hex")

describe("writeDirect", () => {
  it("writes small messages at once, in order, and counts them", async () => {
    const { client, accepted } = await pair()
    const messages = Array.from({ length: 500 }, (_, i) => Buffer.from(`message ${i};`))
    const total = messages.reduce((n, m) => n + m.length, 0)
    const reading = readAll(accepted, total)
    const results = messages.map((m) => writeDirect(client, m))
    expect(results.every((r) => r)).toBe(true)
    expect((await reading).toString()).toBe(messages.join(""))
    expect(client.bytesWritten).toBe(total) // Node reads its count from the handle: these writes are in it
  })

  it("queues what the kernel cannot take, returns false, emits drain once all of it is written; nothing reordered", async () => {
    const { client, accepted } = await pair()
    let drains = 0
    client.on("drain", () => drains++)
    // The reader is paused: the kernel's buffers fill, then writeDirect queues (Node's own buffer stays empty).
    const chunks: Buffer[] = []
    let queued = false
    while (!queued && chunks.length < 400) {
      const c = randomBytes(64 * 1024)
      chunks.push(c)
      queued = !writeDirect(client, c)
      expect(client.writableLength).toBe(0)
    }
    expect(queued).toBe(true)
    // More behind it: through writeDirect (queued each), then through Node's own write path, which must queue behind
    // it too, and writeDirect again (behind Node's buffer now).
    for (let i = 0; i < 8; i++) {
      const c = randomBytes(100_000)
      chunks.push(c)
      if (i < 3) expect(writeDirect(client, c)).toBe(false)
      else if (i % 2 === 1) client.write(c)
      else writeDirect(client, c)
    }
    const total = chunks.reduce((n, c) => n + c.length, 0)
    const got = await readAll(accepted, total)
    expect(got.length).toBe(total)
    expect(digest(got)).toBe(digest(Buffer.concat(chunks)))
    await new Promise((r) => setTimeout(r, 20))
    expect(drains).toBeGreaterThan(0)
    expect(client.writableLength).toBe(0)
    expect(client.bytesWritten).toBe(total)
  })

  it("writes through a TLS socket intact (Node's own path)", async () => {
    const certs = await makeCerts()
    let accepted!: (s: tls.TLSSocket) => void
    const got = new Promise<tls.TLSSocket>((r) => (accepted = r))
    const server = tls.createServer({ key: certs.server.key, cert: certs.server.cert }, (s) => accepted(s))
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
    const port = (server.address() as net.AddressInfo).port
    const client = tls.connect({ port, host: "127.0.0.1", ca: certs.ca.cert, servername: "localhost" })
    cleanups.push(() => {
      client.destroy()
      server.close()
    })
    await new Promise<void>((r, j) => client.once("secureConnect", r).once("error", j))
    const s = await got
    const body = randomBytes(64 * 1024)
    const reading = readAll(s, body.length)
    writeDirect(client, body)
    expect(digest(await reading)).toBe(digest(body))
    s.destroy()
  })
})
