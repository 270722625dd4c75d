// The relay against real sockets on loopback: a client <-> [proxy: relay()] <-> server chain.
import { createHash, randomBytes } from "node:crypto"
import * as net from "node:net"
import * as tls from "node:tls"
import { afterEach, describe, expect, it } from "vitest"
import {
  errorPlaceholder,
  type RelayTotals,
  readIntoShared,
  readIntoSharedFromNow,
  relay,
  relayReads
} from "../../src/relay/relay.ts"
import { makeCerts } from "../support/certs.ts"

interface Chain {
  readonly client: net.Socket
  /** The backend's accepted socket (the far end). */
  readonly server: net.Socket
  readonly closed: Promise<RelayTotals>
}

/** Which of the proxy's sockets read into the relay's shared buffer instead of a new Buffer per read. */
interface Reads {
  /** The backend socket, created as the listener dials it when nothing else reads it (`relayReads`). */
  readonly relayReads?: boolean
  /** The accepted client socket, accepted paused as the tcp listener does and switched over (`readIntoShared`). */
  readonly clientReads?: boolean
  /**
   * Both proxy sockets read a handshake with `data` events first (the client's hello, the backend's greeting, as a
   * protocol listener does), are paused, then switched to the shared buffer (`readIntoShared`).
   */
  readonly afterHandshake?: boolean
  /** The backend switches to the shared buffer from inside a `data` handler at its first relayed chunk. */
  readonly switchMidRelay?: boolean
  /**
   * The client's bytes go through a `clientData` handler (as the MySQL KILL tap's do), which gets them from the
   * shared buffer (`readIntoShared` with the handler).
   */
  readonly clientData?: boolean
}

const peers = new WeakMap<net.Socket, net.Socket>()
/** A `clientData` handler that forwards as the relay does (it keeps nothing, so it needs no copy). */
function forwardData(this: net.Socket, chunk: Buffer) {
  if (!peers.get(this)!.write(chunk)) this.pause()
}

const hello = Buffer.from("hello")
const greeting = Buffer.from("hi!!!")

/** Reads `n` bytes with `data` events, as readFrame does, then pauses the socket and stops listening. */
const readHandshake = (socket: net.Socket, n: number) =>
  new Promise<Buffer>((resolve, reject) => {
    let got = Buffer.alloc(0)
    const onData = (chunk: Buffer) => {
      got = Buffer.concat([got, chunk])
      if (got.length < n) return
      socket.pause()
      socket.off("data", onData)
      if (got.length > n) reject(new Error("more than the handshake arrived"))
      else resolve(got)
    }
    socket.on("data", onData)
    socket.resume()
  })

/** The first relayed chunk of the backend switches it to the shared buffer, as the Postgres key-data tap does. */
function switchAtFirstChunk(this: net.Socket) {
  this.off("data", switchAtFirstChunk)
  if (!readIntoSharedFromNow(this)) this.destroy(new Error("readIntoSharedFromNow refused"))
}

const cleanups: Array<() => void> = []
afterEach(() => {
  for (const c of cleanups.splice(0)) c()
})

const listen = (onSocket: (s: net.Socket) => void, pauseOnConnect = false) =>
  new Promise<net.Server>((resolve) => {
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect }, onSocket)
    server.listen(0, "127.0.0.1", () => resolve(server))
    cleanups.push(() => server.close())
  })

/** Builds the chain; the relay gets both proxy-side sockets once both are connected. */
const chain = async (options: { idleTimeoutMs?: number; halfCloseMs?: number } & Reads = {}): Promise<Chain> => {
  let backendSide!: (s: net.Socket) => void
  const serverSocket = new Promise<net.Socket>((r) => (backendSide = r))
  const backend = await listen((s) => {
    if (options.afterHandshake) s.write(greeting)
    backendSide(s)
  })
  let closed!: Promise<RelayTotals>
  const proxied = new Promise<void>((ready, failed) => {
    void listen(
      (accepted) => {
        const to = { port: (backend.address() as net.AddressInfo).port, host: "127.0.0.1" }
        const upstream = options.relayReads
          ? new net.Socket({ allowHalfOpen: true, onread: relayReads }).pause().connect(to)
          : net.connect({ ...to, allowHalfOpen: true })
        upstream.once("connect", async () => {
          // The totals count the handshake's bytes too: take them off so that each test's own figures still hold.
          const handshake = options.afterHandshake ? hello.length : 0
          if (options.afterHandshake) {
            expect(await readHandshake(upstream, greeting.length)).toEqual(greeting)
            expect(await readHandshake(accepted, hello.length)).toEqual(hello)
            if (!readIntoShared(upstream)) failed(new Error("readIntoShared refused the backend"))
          }
          if (options.clientReads && !readIntoShared(accepted)) failed(new Error("readIntoShared refused"))
          if (options.switchMidRelay) upstream.on("data", switchAtFirstChunk)
          peers.set(accepted, upstream)
          if (options.clientData && !readIntoShared(accepted, forwardData)) failed(new Error("readIntoShared refused"))
          closed = new Promise((r) =>
            relay(
              accepted,
              upstream,
              (t) =>
                r({
                  ...t,
                  bytesFromClient: t.bytesFromClient - handshake,
                  bytesFromBackend: t.bytesFromBackend - handshake
                }),
              options,
              undefined,
              options.clientData ? forwardData : undefined
            )
          )
          ready()
        })
      },
      options.clientReads === true || options.afterHandshake === true || options.clientData === true
    ).then((proxy) => {
      const client = net.connect({
        port: (proxy.address() as net.AddressInfo).port,
        host: "127.0.0.1",
        allowHalfOpen: true
      })
      cleanups.push(() => client.destroy())
      if (options.afterHandshake) client.write(hello)
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

const modes: ReadonlyArray<readonly [string, Reads]> = [
  ["Node's reads", {}],
  ["backend read into the shared buffer (relayReads)", { relayReads: true }],
  ["both sides read into the shared buffer (relayReads, readIntoShared)", { relayReads: true, clientReads: true }],
  [
    "both sides read a handshake with data events, then into the shared buffer (readIntoShared)",
    { afterHandshake: true, clientReads: true }
  ],
  [
    "backend switched to the shared buffer at its first relayed chunk (readIntoSharedFromNow)",
    { switchMidRelay: true }
  ],
  [
    "client read into the shared buffer through a clientData handler (readIntoShared)",
    { relayReads: true, clientData: true }
  ]
]

/** Writes `chunk`s to `to` until its writes stall for 500 ms; returns how many bytes were written. */
const writeUntilStalled = async (to: net.Socket, limit: number, chunk = Buffer.alloc(64 * 1024, 7)) => {
  let written = 0
  // Keep writing whenever the chain drains. A proxy that ignored backpressure would keep draining the writer
  // (buffering in its own memory) until the cap; a correct one stalls once the socket buffers are full.
  while (written < limit) {
    written += chunk.length
    if (!to.write(chunk)) {
      const drained = await Promise.race([
        new Promise<boolean>((r) => to.once("drain", () => r(true))),
        new Promise<boolean>((r) => setTimeout(() => r(false), 500))
      ])
      if (!drained) return { written, stalled: true }
    }
  }
  return { written, stalled: false }
}

describe.each(modes)("relay, %s", (_, reads) => {
  it("carries 32 MiB each way intact and counts the bytes", async () => {
    const { client, server, closed } = await chain(reads)
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
    const { client, server, closed } = await chain(reads)
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
    const totals = await closed
    expect(totals.bytesFromClient).toBe(17)
    expect(totals.bytesFromBackend).toBe(10)
  })

  it("passes the backend's FIN on while the client keeps sending", async () => {
    const { client, server, closed } = await chain(reads)
    const atClient = readAll(client)
    server.end("greeting, then FIN")
    expect((await atClient).toString()).toBe("greeting, then FIN")
    const atServer = readAll(server)
    client.write("still ")
    await new Promise((r) => setTimeout(r, 50))
    client.end("talking")
    expect((await atServer).toString()).toBe("still talking")
    expect((await closed).bytesFromClient).toBe(13)
  })

  it("applies backpressure: a slow reader holds the sender instead of buffering everything in the proxy", async () => {
    const { client, server, closed } = await chain(reads)
    server.pause() // the backend reads nothing for now
    const { written, stalled } = await writeUntilStalled(client, 256 * 1024 * 1024)
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

  it("holds the backend while the client does not read, then delivers everything in order", async () => {
    const { client, server, closed } = await chain(reads)
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

  it("closes both sides when the backend resets, and reports the error", async () => {
    const { client, server, closed } = await chain(reads)
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

  it("closes both sides when the client resets, and reports the error", async () => {
    const { client, server, closed } = await chain(reads)
    const serverClosed = new Promise((r) => {
      server.once("end", r)
      server.once("error", r)
    })
    server.resume()
    client.write("some bytes first")
    await new Promise((r) => setTimeout(r, 20))
    client.resetAndDestroy()
    await serverClosed
    const totals = await closed
    expect(totals.error?.message ?? "").toMatch(/ECONNRESET|EPIPE/)
    expect(totals.bytesFromClient).toBe(16)
  })

  it("closes both sides when the client vanishes", async () => {
    const { client, server, closed } = await chain(reads)
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
    const { client, closed } = await chain({ ...reads, idleTimeoutMs: 200 })
    const started = Date.now()
    client.on("error", () => {})
    client.resume()
    const clientClosed = new Promise((r) => client.once("end", r))
    await closed
    await clientClosed
    expect(Date.now() - started).toBeGreaterThanOrEqual(150)
    expect((await closed).timedOut).toBe("idle")
  })

  it("closes a half-closed pair once nothing flows the other way for halfCloseMs", async () => {
    const { client, server, closed } = await chain({ ...reads, halfCloseMs: 300 })
    // The client sends its FIN and the backend keeps its side open without a word (a backend that never answers).
    const clientGone = new Promise((r) => client.once("close", r))
    server.on("error", () => {})
    client.on("error", () => {})
    server.resume()
    client.resume()
    client.end("last words")
    const totals = await closed
    expect(totals.timedOut).toBe("halfClose")
    expect(totals.error).toBeUndefined()
    expect(totals.bytesFromClient).toBe(10)
    // The client, which waited for an answer, gets the proxy's FIN. (The backend already had one: both proxy sockets
    // are gone, which is what `closed` says.)
    await clientGone
  })

  it("keeps a half-closed pair while bytes still flow the other way, however long", async () => {
    const { client, server, closed } = await chain({ ...reads, halfCloseMs: 300 })
    let relayClosed = false
    void closed.then(() => (relayClosed = true))
    const atClient = readAll(client)
    server.resume()
    client.end()
    // Ten writes 100 ms apart: 1 s in all, three times halfCloseMs, never 300 ms without a byte.
    for (let i = 0; i < 10; i++) {
      await new Promise((r) => setTimeout(r, 100))
      expect(relayClosed).toBe(false)
      server.write(`${i}`)
    }
    server.end()
    expect((await atClient).toString()).toBe("0123456789")
    const totals = await closed
    expect(totals.timedOut).toBeUndefined()
    expect(totals.bytesFromBackend).toBe(10)
  })

  it("never times a pair that is open both ways, however idle, by the half-close timeout", async () => {
    const { client, server, closed } = await chain({ ...reads, halfCloseMs: 100 })
    let relayClosed = false
    void closed.then(() => (relayClosed = true))
    await new Promise((r) => setTimeout(r, 600))
    expect(relayClosed).toBe(false)
    const atServer = readAll(server)
    const atClient = readAll(client)
    client.end("still here")
    server.end("me too")
    expect((await atServer).toString()).toBe("still here")
    expect((await atClient).toString()).toBe("me too")
    expect((await closed).timedOut).toBeUndefined()
  })

  it("keeps bytes whose write is left pending while other relays read into the same buffer", async () => {
    // In each direction one reader is slow (the proxy's writes to it stay pending) and one reads at once: a pending
    // write must not point at memory the next read, of any socket, overwrites.
    const runs = (await Promise.all([chain(reads), chain(reads), chain(reads), chain(reads)])).map((c) => ({
      ...c,
      payload: randomBytes(8 * 1024 * 1024)
    }))
    const slowly = (s: net.Socket) =>
      s.on("data", () => {
        s.pause()
        setTimeout(() => s.resume(), 1)
      })
    // Runs 0 and 1 carry the payload to the client, 2 and 3 to the server; 0 and 2 read slowly.
    const received = runs.map(({ client, server }, i) => {
      const reader = i < 2 ? client : server
      if (i % 2 === 0) slowly(reader)
      return readAll(reader)
    })
    for (const [i, { client, server, payload }] of runs.entries()) {
      const [writer, other] = i < 2 ? [server, client] : [client, server]
      writer.end(payload)
      other.end()
      if (i >= 2) readAll(client).catch(() => {})
      else readAll(server).catch(() => {})
    }
    expect((await Promise.all(received)).map(sha)).toEqual(runs.map((r) => sha(r.payload)))
    for (const [i, { closed, payload }] of runs.entries()) {
      const totals = await closed
      expect(i < 2 ? totals.bytesFromBackend : totals.bytesFromClient).toBe(payload.length)
    }
  })

  it("keeps the bytes of a write the kernel did not take while another relay reads into the same buffer", async () => {
    // The loopback buffers can hold the whole payload of the test above: here the proxy's write to a client that
    // reads nothing is left queued for sure (the backend's writes stall), then a second relay carries 8 MiB each way
    // through the shared read buffer and slab before the first client reads.
    const [held, busy] = await Promise.all([chain(reads), chain(reads)])
    held.client.pause()
    const sent: Array<Buffer> = []
    for (let stalled = false; !stalled && sent.length < 4096; ) {
      const chunk = randomBytes(64 * 1024)
      sent.push(chunk)
      if (!held.server.write(chunk)) {
        stalled = !(await Promise.race([
          new Promise<boolean>((r) => held.server.once("drain", () => r(true))),
          new Promise<boolean>((r) => setTimeout(() => r(false), 500))
        ]))
      }
    }
    const up = randomBytes(8 * 1024 * 1024)
    const down = randomBytes(8 * 1024 * 1024)
    const atServer = readAll(busy.server)
    const atClient = readAll(busy.client)
    busy.client.end(up)
    busy.server.end(down)
    expect(sha(await atServer)).toBe(sha(up))
    expect(sha(await atClient)).toBe(sha(down))
    const received = readAll(held.client)
    held.client.resume()
    held.server.end()
    held.client.end()
    expect(sha(await received)).toBe(sha(Buffer.concat(sent)))
    expect((await held.closed).bytesFromBackend).toBe(sent.length * 64 * 1024)
  })
})

describe("relay's listeners", () => {
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
    expect(a.listenerCount("data")).toBe(1)
    expect(b.rawListeners("error")).toContain(other)
    expect(b.rawListeners("error")).not.toContain(placeholder)
    expect(b.listenerCount("end")).toBe(1)
    a.destroy()
  })

  it("adds no data listener to a socket that reads into the shared buffer", async () => {
    const { client, server } = await new Promise<{ client: net.Socket; server: net.Socket }>((resolve) => {
      void listen((accepted) => {
        const dialled = new net.Socket({ allowHalfOpen: true, onread: relayReads }).pause()
        dialled.connect({ port: (proxy.address() as net.AddressInfo).port, host: "127.0.0.1" })
        cleanups.push(() => dialled.destroy())
        dialled.once("connect", () => resolve({ client: accepted, server: dialled }))
      }, true).then((p) => {
        proxy = p
        const c = net.connect({ port: (p.address() as net.AddressInfo).port, host: "127.0.0.1" })
        cleanups.push(() => c.destroy())
      })
      let proxy!: net.Server
    })
    expect(readIntoShared(client)).toBe(true)
    relay(client, server, () => {})
    expect(client.listenerCount("data")).toBe(0)
    expect(server.listenerCount("data")).toBe(0)
    client.destroy()
  })
})

/** The proxy side of one accepted connection, accepted as `pauseOnConnect` says. */
const accept = async (pauseOnConnect: boolean) => {
  let accepted!: (s: net.Socket) => void
  const socket = new Promise<net.Socket>((r) => (accepted = r))
  const server = await listen((s) => {
    cleanups.push(() => s.destroy())
    accepted(s)
  }, pauseOnConnect)
  const peer = net.connect({ port: (server.address() as net.AddressInfo).port, host: "127.0.0.1" })
  peer.on("error", () => {})
  cleanups.push(() => peer.destroy())
  return { socket: await socket, peer }
}

describe("readIntoShared", () => {
  it("switches a socket accepted paused, once", async () => {
    const { socket } = await accept(true)
    expect(readIntoShared(socket)).toBe(true)
    expect(readIntoShared(socket)).toBe(false)
  })

  it("leaves a socket that reads already as it is", async () => {
    const { socket } = await accept(false)
    expect(readIntoShared(socket)).toBe(false)
  })

  it("switches a socket that has read with data events and is paused with nothing buffered", async () => {
    const { socket, peer } = await accept(true)
    peer.write("hello")
    expect((await readHandshake(socket, 5)).toString()).toBe("hello")
    expect(readIntoShared(socket)).toBe(true)
  })

  it("leaves a socket that has read as it is while bytes wait in its buffer", async () => {
    const { socket, peer } = await accept(true)
    peer.write("hello")
    const first = await readHandshake(socket, 5)
    socket.unshift(first.subarray(3))
    expect(readIntoShared(socket)).toBe(false)
  })

  it("leaves a socket that has read and still flows as it is", async () => {
    const { socket, peer } = await accept(true)
    peer.write("hello")
    await new Promise((r) => socket.once("data", r).resume())
    expect(readIntoShared(socket)).toBe(false)
  })

  it("switches a relayed socket from now on only while it is relayed", async () => {
    const { socket } = await accept(true)
    expect(readIntoSharedFromNow(socket)).toBe(false)
  })

  it("never switches a TLS-terminated client: neither the TLSSocket nor the socket under it", async () => {
    const certs = await makeCerts()
    const { socket, peer } = await accept(true)
    const secure = new tls.TLSSocket(socket, {
      isServer: true,
      key: certs.server.key,
      cert: certs.server.cert
    })
    cleanups.push(() => secure.destroy())
    const client = tls.connect({ socket: peer, ca: certs.ca.cert, servername: "localhost" })
    client.on("error", () => {})
    cleanups.push(() => client.destroy())
    await new Promise((r) => secure.once("secure", r))
    expect(readIntoShared(secure)).toBe(false)
    expect(readIntoShared(socket)).toBe(false)
    // Paused, the socket under it still belongs to the TLS layer.
    secure.pause()
    expect(readIntoShared(socket)).toBe(false)
    secure.resume()
    // And the TLS stream still works both ways.
    client.write("ping")
    expect((await new Promise<Buffer>((r) => secure.once("data", r))).toString()).toBe("ping")
    secure.write("pong")
    expect((await new Promise<Buffer>((r) => client.once("data", r))).toString()).toBe("pong")
  })
})
