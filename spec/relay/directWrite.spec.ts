// writeDirect (src/relay/directWrite.ts): writes to the socket's handle, past Node's Writable. Real loopback sockets:
// every byte arrives once and in order (also mixed with socket.write and across a full kernel buffer), a write the
// kernel could not take returns false and `drain` follows once everything queued is written, `bytesWritten` counts
// them, and a TLS socket keeps Node's own path. writeDirectLatin1 and writeDirectJoined (the http listener's): latin1
// strings and a head joined to body bytes arrive intact, past socket.write, with the socket's idle timeout kept
// refreshed by the writes as socket.write would.
import { createHash, randomBytes } from "node:crypto"
import * as net from "node:net"
import * as tls from "node:tls"
import { afterEach, describe, expect, it } from "vitest"
import { writeDirect, writeDirectJoined, writeDirectLatin1 } from "../../src/relay/directWrite.ts"
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

/** The same over TLS (a certificate for localhost from the test CA). */
const tlsPair = async (): Promise<{ client: tls.TLSSocket; accepted: tls.TLSSocket }> => {
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
  return { client, accepted: await got }
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
    const { client, accepted: s } = await tlsPair()
    const body = randomBytes(64 * 1024)
    const reading = readAll(s, body.length)
    writeDirect(client, body)
    expect(digest(await reading)).toBe(digest(body))
    s.destroy()
  })
})

/** Every string or buffer `s.write` is given from now on (the path a direct write must not take). */
const countNodeWrites = (s: net.Socket): { calls: number } => {
  const seen = { calls: 0 }
  const write = s.write.bind(s) as (...args: unknown[]) => boolean
  s.write = ((...args: unknown[]) => {
    seen.calls++
    return write(...args)
  }) as typeof s.write
  return seen
}

/** latin1 text with every byte value, as an HTTP head may carry (obs-text). */
const latin1Text = (i: number): string =>
  `HTTP/1.1 200 OK\r\nx-n: ${i}\r\nx-bytes: ${String.fromCharCode(...Array.from({ length: 256 }, (_, c) => c))}\r\n\r\n`

describe("writeDirectLatin1 and writeDirectJoined", () => {
  it("write latin1 heads and joined bodies past socket.write, intact and in order, also across a full kernel buffer", async () => {
    const { client, accepted } = await pair()
    const nodeWrites = countNodeWrites(client)
    const expected: Buffer[] = []
    // One body buffer, overwritten after every call: writeDirectJoined must have copied what it needed.
    const body = Buffer.alloc(1024)
    const results: boolean[] = []
    const write = (i: number): void => {
      const head = latin1Text(i)
      body.fill(i % 251)
      const end = 100 + ((i * 7) % 900)
      results.push(i % 3 === 0 ? writeDirectLatin1(client, head) : writeDirectJoined(client, head, body, 100, end))
      expected.push(Buffer.from(head, "latin1"))
      if (i % 3 !== 0) expected.push(Buffer.from(body.subarray(100, end)))
    }
    for (let i = 0; i < 100; i++) write(i)
    expect(results.every((r) => r)).toBe(true) // the kernel took each at once
    // The reader is paused: fill the kernel's buffers until libuv queues, then write behind that queue.
    let queued = false
    while (!queued && expected.length < 2000) {
      const c = randomBytes(64 * 1024)
      expected.push(c)
      queued = !writeDirect(client, c)
    }
    expect(queued).toBe(true)
    results.length = 0
    for (let i = 100; i < 200; i++) write(i)
    expect(results.every((r) => !r)).toBe(true) // each queued behind the rest, its bytes kept by the request
    const total = expected.reduce((n, b) => n + b.length, 0)
    const got = await readAll(accepted, total)
    expect(got.length).toBe(total)
    expect(digest(got)).toBe(digest(Buffer.concat(expected)))
    expect(client.bytesWritten).toBe(total)
    expect(nodeWrites.calls).toBe(0)
  })

  it("refresh the socket's idle timeout as socket.write does, and leave it to fire once the writes stop", async () => {
    const { client, accepted } = await pair()
    accepted.resume()
    const nodeWrites = countNodeWrites(client)
    let timeouts = 0
    client.on("timeout", () => timeouts++)
    client.setTimeout(1_000)
    const body = Buffer.from("body")
    // 2.5 s of writes every 100 ms, nothing read from the peer: only the writes keep the 1 s timeout from firing.
    for (let i = 0; i < 25; i++) {
      await new Promise((r) => setTimeout(r, 100))
      if (i % 2 === 0) writeDirectLatin1(client, "HTTP/1.1 204 No Content\r\n\r\n")
      else writeDirectJoined(client, "HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n", body, 0, 4)
    }
    expect(timeouts).toBe(0)
    expect(nodeWrites.calls).toBe(0)
    await new Promise<void>((r) => client.once("timeout", r))
    expect(timeouts).toBe(1)
  })

  it("keep Node's own path on a TLS socket: latin1 bytes intact", async () => {
    const { client, accepted: s } = await tlsPair()
    const nodeWrites = countNodeWrites(client)
    const body = randomBytes(4096)
    const want = Buffer.concat([
      Buffer.from(latin1Text(1), "latin1"),
      Buffer.from(latin1Text(2), "latin1"),
      body.subarray(10, 3000)
    ])
    const reading = readAll(s, want.length)
    writeDirectLatin1(client, latin1Text(1))
    writeDirectJoined(client, latin1Text(2), body, 10, 3000)
    expect(digest(await reading)).toBe(digest(want))
    expect(nodeWrites.calls).toBe(2)
    s.destroy()
  })
})
