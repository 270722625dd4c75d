// The relay against real sockets on loopback: a client <-> [proxy: relay()] <-> server chain.
import { createHash, randomBytes } from "node:crypto"
import * as net from "node:net"
import { afterEach, describe, expect, it } from "vitest"
import { type RelayTotals, relay } from "../../src/relay/relay.ts"

interface Chain {
  readonly client: net.Socket
  /** The backend's accepted socket (the far end). */
  readonly server: net.Socket
  readonly closed: Promise<RelayTotals>
}

const cleanups: Array<() => void> = []
afterEach(() => {
  for (const c of cleanups.splice(0)) c()
})

const listen = (onSocket: (s: net.Socket) => void) =>
  new Promise<net.Server>((resolve) => {
    const server = net.createServer({ allowHalfOpen: true }, onSocket)
    server.listen(0, "127.0.0.1", () => resolve(server))
    cleanups.push(() => server.close())
  })

/** Builds the chain; the relay gets both proxy-side sockets once both are connected. */
const chain = async (options: { idleTimeoutMs?: number } = {}): Promise<Chain> => {
  let backendSide!: (s: net.Socket) => void
  const serverSocket = new Promise<net.Socket>((r) => (backendSide = r))
  const backend = await listen((s) => backendSide(s))
  let closed!: Promise<RelayTotals>
  const proxied = new Promise<void>((ready) => {
    void listen((accepted) => {
      const upstream = net.connect({
        port: (backend.address() as net.AddressInfo).port,
        host: "127.0.0.1",
        allowHalfOpen: true
      })
      upstream.once("connect", () => {
        closed = new Promise((r) => relay(accepted, upstream, r, options))
        ready()
      })
    }).then((proxy) => {
      const client = net.connect({
        port: (proxy.address() as net.AddressInfo).port,
        host: "127.0.0.1",
        allowHalfOpen: true
      })
      cleanups.push(() => client.destroy())
      clientSocket = client
    })
  })
  let clientSocket!: net.Socket
  await proxied
  const server = await serverSocket
  cleanups.push(() => server.destroy())
  return { client: clientSocket, server, closed }
}

const readAll = (s: net.Socket) =>
  new Promise<Buffer>((resolve, reject) => {
    const parts: Array<Buffer> = []
    s.on("data", (d: Buffer) => parts.push(d))
    s.once("end", () => resolve(Buffer.concat(parts)))
    s.once("error", reject)
  })

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex")

describe("relay", () => {
  it("carries 32 MiB each way intact and counts the bytes", async () => {
    const { client, server, closed } = await chain()
    const up = randomBytes(32 * 1024 * 1024)
    const down = randomBytes(32 * 1024 * 1024)
    const atServer = readAll(server)
    const atClient = readAll(client)
    client.end(up)
    server.end(down)
    expect(sha(await atServer)).toBe(sha(up))
    expect(sha(await atClient)).toBe(sha(down))
    const totals = await closed
    expect(totals.bytesFromClient).toBe(up.length)
    expect(totals.bytesFromBackend).toBe(down.length)
    expect(totals.error).toBeUndefined()
  })

  it("passes a half-close on: the other direction keeps flowing after the client's FIN", async () => {
    const { client, server, closed } = await chain()
    const request = await new Promise<Buffer>((resolve) => {
      const parts: Array<Buffer> = []
      server.on("data", (d: Buffer) => parts.push(d))
      server.once("end", () => resolve(Buffer.concat(parts)))
      client.end("request, then FIN")
    })
    expect(request.toString()).toBe("request, then FIN")
    // The server answers after it saw the FIN: a half-closing client (e.g. `nc -N`) must still get the reply.
    const atClient = readAll(client)
    server.write("late ")
    await new Promise((r) => setTimeout(r, 50))
    server.end("reply")
    expect((await atClient).toString()).toBe("late reply")
    expect((await closed).bytesFromBackend).toBe(10)
  })

  it("applies backpressure: a slow reader holds the sender instead of buffering everything in the proxy", async () => {
    const { client, server, closed } = await chain()
    server.pause() // the backend reads nothing for now
    const chunk = Buffer.alloc(64 * 1024, 7)
    let written = 0
    let stalled = false
    // Keep writing whenever the chain drains. A proxy that ignored backpressure would keep draining the client
    // (buffering in its own memory) until the cap; a correct one stalls once the socket buffers are full.
    while (written < 256 * 1024 * 1024) {
      written += chunk.length
      if (!client.write(chunk)) {
        const drained = await Promise.race([
          new Promise<boolean>((r) => client.once("drain", () => r(true))),
          new Promise<boolean>((r) => setTimeout(() => r(false), 500))
        ])
        if (!drained) {
          stalled = true
          break
        }
      }
    }
    expect(stalled).toBe(true)
    expect(written).toBeLessThan(32 * 1024 * 1024)
    // Now read slowly: everything still arrives, in order, with nothing lost.
    let received = 0
    const done = new Promise<void>((resolve) => {
      server.on("data", (d: Buffer) => {
        received += d.length
        server.pause()
        setTimeout(() => server.resume(), 1)
      })
      server.once("end", () => resolve())
    })
    server.resume()
    client.end()
    await done
    expect(received).toBe(written)
    server.end()
    expect((await closed).bytesFromClient).toBe(written)
  })

  it("closes both sides when one side is reset, and reports the error", async () => {
    const { client, server, closed } = await chain()
    // The proxy closes its side towards the client: the client sees the end of the stream (or a reset).
    const clientClosed = new Promise((r) => {
      client.once("end", r)
      client.once("error", r)
    })
    client.resume()
    server.resetAndDestroy()
    await clientClosed
    const totals = await closed
    expect(totals.error?.message ?? "").toMatch(/ECONNRESET|EPIPE/)
  })

  it("closes both sides when the client vanishes", async () => {
    const { client, server, closed } = await chain()
    const serverEnded = new Promise((r) => server.once("close", r))
    server.on("error", () => {})
    // A well-behaved backend closes its side once the client's FIN arrives.
    server.once("end", () => server.end())
    server.resume()
    client.destroy()
    await serverEnded
    await closed
  })

  it("closes an idle pair after the idle timeout", async () => {
    const { client, closed } = await chain({ idleTimeoutMs: 200 })
    const started = Date.now()
    client.on("error", () => {})
    client.resume()
    const clientClosed = new Promise((r) => client.once("end", r))
    await closed
    await clientClosed
    expect(Date.now() - started).toBeGreaterThanOrEqual(150)
  })
})
