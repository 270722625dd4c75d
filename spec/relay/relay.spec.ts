// The relay against real sockets on loopback: a client <-> [proxy: relay()] <-> server chain.
import { createHash, randomBytes } from "node:crypto"
import * as net from "node:net"
import { afterEach, describe, expect, it } from "vitest"
import { errorPlaceholder, type RelayTotals, relay, relayReads } from "../../src/relay/relay.ts"

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

/**
 * Builds the chain; the relay gets both proxy-side sockets once both are connected. `relayReads`: the proxy's backend
 * socket is created as the listener dials it when nothing else reads it (shared read buffer, paused until the relay).
 */
const chain = async (options: { idleTimeoutMs?: number; relayReads?: boolean } = {}): Promise<Chain> => {
  let backendSide!: (s: net.Socket) => void
  const serverSocket = new Promise<net.Socket>((r) => (backendSide = r))
  const backend = await listen((s) => backendSide(s))
  let closed!: Promise<RelayTotals>
  const proxied = new Promise<void>((ready) => {
    void listen((accepted) => {
      const to = { port: (backend.address() as net.AddressInfo).port, host: "127.0.0.1" }
      const upstream = options.relayReads
        ? new net.Socket({ allowHalfOpen: true, onread: relayReads }).pause().connect(to)
        : net.connect({ ...to, allowHalfOpen: true })
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

  it("keeps one listener per event: replaces placeholder error listeners, keeps any other", async () => {
    const placeholder = errorPlaceholder(() => {})
    function other() {}
    const { a, b } = await new Promise<{ a: net.Socket; b: net.Socket }>((resolve) => {
      void listen((accepted) => {
        accepted.on("error", placeholder)
        resolve({ a: accepted, b: dialled })
      }).then((server) => {
        dialled = net.connect({
          port: (server.address() as net.AddressInfo).port,
          host: "127.0.0.1",
          allowHalfOpen: true
        })
        dialled.on("error", placeholder)
        dialled.on("error", other)
        cleanups.push(() => dialled.destroy())
      })
      let dialled!: net.Socket
    })
    relay(a, b, () => {})
    expect(a.listenerCount("error")).toBe(1)
    expect(a.listenerCount("end")).toBe(1)
    expect(b.rawListeners("error")).toContain(other)
    expect(b.rawListeners("error")).not.toContain(placeholder)
    expect(b.listenerCount("end")).toBe(1)
    a.destroy()
  })
})

describe("relay, backend read into the shared buffer (relayReads)", () => {
  it("carries 32 MiB each way intact and counts the bytes", async () => {
    const { client, server, closed } = await chain({ relayReads: true })
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
  })

  it("keeps bytes whose write is left pending while other relays read into the same buffer", async () => {
    // One client reads slowly (the proxy's writes to it stay pending), one reads at once: a pending write must not
    // point at memory the next read overwrites.
    const runs = (await Promise.all([chain({ relayReads: true }), chain({ relayReads: true })])).map((c) => ({
      ...c,
      payload: randomBytes(8 * 1024 * 1024)
    }))
    const received = runs.map(({ client }, i) => {
      if (i === 0) {
        client.on("data", () => {
          client.pause()
          setTimeout(() => client.resume(), 1)
        })
      }
      return readAll(client)
    })
    for (const { client, server, payload } of runs) {
      server.end(payload)
      client.end()
    }
    expect((await Promise.all(received)).map(sha)).toEqual(runs.map((r) => sha(r.payload)))
    for (const { closed, payload } of runs) expect((await closed).bytesFromBackend).toBe(payload.length)
  })

  it("holds the backend while the client does not read, then delivers everything in order", async () => {
    const { client, server, closed } = await chain({ relayReads: true })
    client.pause()
    const down = randomBytes(64 * 1024 * 1024)
    let written = 0
    let stalled = false
    while (written < down.length) {
      const ok = server.write(down.subarray(written, written + 64 * 1024))
      written += 64 * 1024
      if (!ok) {
        const drained = await Promise.race([
          new Promise<boolean>((r) => server.once("drain", () => r(true))),
          new Promise<boolean>((r) => setTimeout(() => r(false), 500))
        ])
        if (!drained) {
          stalled = true
          break
        }
      }
    }
    expect(stalled).toBe(true)
    const atClient = readAll(client)
    client.resume()
    server.end(down.subarray(written))
    client.end()
    expect(sha(await atClient)).toBe(sha(down))
    expect((await closed).bytesFromBackend).toBe(down.length)
  })

  it("passes a half-close on both ways", async () => {
    const { client, server, closed } = await chain({ relayReads: true })
    const atServer = readAll(server)
    client.end("request, then FIN")
    expect((await atServer).toString()).toBe("request, then FIN")
    const atClient = readAll(client)
    server.write("late ")
    await new Promise((r) => setTimeout(r, 50))
    server.end("reply")
    expect((await atClient).toString()).toBe("late reply")
    expect((await closed).bytesFromBackend).toBe(10)
  })
})
