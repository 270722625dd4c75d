// The BackendKeyData tap: remembers a session's cancel key from the backend's first messages, stops watching at
// ReadyForQuery, and forgets the key when told the relay closed. Driven over a real socket pair.
import * as net from "node:net"
import { afterEach, describe, expect, it } from "vitest"
import type { VettedEndpoint } from "../../../src/domain/Endpoint.ts"
import { CancelKeys, cancelKeyOf } from "../../../src/listeners/postgres/CancelKeys.ts"
import { watchBackendKeyData } from "../../../src/listeners/postgres/keyDataTap.ts"
import { relay } from "../../../src/relay/relay.ts"

const target: VettedEndpoint = { host: "db.internal", port: 5432, ip: "127.0.0.1", family: 4 }

const message = (type: string, body: Buffer) => {
  const head = Buffer.alloc(5)
  head.write(type, 0)
  head.writeInt32BE(body.length + 4, 1)
  return Buffer.concat([head, body])
}
const authOk = message("R", Buffer.from([0, 0, 0, 0]))
const keyData = (pid: number, secret: number) => {
  const b = Buffer.alloc(8)
  b.writeInt32BE(pid, 0)
  b.writeInt32BE(secret, 4)
  return message("K", b)
}
const ready = message("Z", Buffer.from("I"))

/** A connected pair: `backend` is what the proxy dialled, `server` is the backend's end that writes to it. */
const pair = async () => {
  const listener = net.createServer({ allowHalfOpen: true })
  await new Promise<void>((r) => listener.listen(0, "127.0.0.1", r))
  const accepted = new Promise<net.Socket>((r) => listener.once("connection", r))
  const backend = net.connect({
    port: (listener.address() as net.AddressInfo).port,
    host: "127.0.0.1",
    allowHalfOpen: true
  })
  await new Promise((r) => backend.once("connect", r))
  const server = await accepted
  listener.close()
  return { backend, server }
}

const sockets: Array<net.Socket> = []
afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy()
})

const readAll = (socket: net.Socket, bytes: number) =>
  new Promise<void>((resolve) => {
    let got = 0
    socket.on("data", (c: Buffer) => {
      got += c.length
      if (got >= bytes) resolve()
    })
  })

describe("postgres BackendKeyData tap", () => {
  it("remembers the key, detaches at ReadyForQuery and forgets the key when the relay closes", async () => {
    const { backend, server } = await pair()
    sockets.push(backend, server)
    const keys = new CancelKeys()
    const watch = watchBackendKeyData(backend, target, keys)
    const all = Buffer.concat([authOk, keyData(4242, 77), ready])
    const relayed = readAll(backend, all.length)
    // One byte at a time: every message arrives split across reads.
    for (const byte of all) {
      server.write(Buffer.from([byte]))
      await new Promise((r) => setImmediate(r))
    }
    await relayed
    const secret = Buffer.alloc(4)
    secret.writeInt32BE(77)
    // A relayed session's cancel goes to its backend with the key it came with.
    expect(await keys.find(4242, secret)).toEqual({ target, processId: 4242, secretKey: secret })
    // Only the relay's stand-in `data` listener is left: the tap is gone after ReadyForQuery.
    expect(backend.listenerCount("data")).toBe(1)
    watch?.closed()
    expect(keys.size).toBe(0)
    expect(await keys.find(4242, secret)).toBeUndefined()
    expect(cancelKeyOf(4242, secret)).toBe("000010920000004d")
  })

  it("stops watching at an ErrorResponse without remembering anything", async () => {
    const { backend, server } = await pair()
    sockets.push(backend, server)
    const keys = new CancelKeys()
    const error = message("E", Buffer.from("SFATAL\0C28P01\0Mpassword authentication failed\0\0"))
    const relayed = readAll(backend, error.length)
    watchBackendKeyData(backend, target, keys)
    server.write(error)
    await relayed
    expect(keys.size).toBe(0)
    expect(backend.listenerCount("data")).toBe(1)
  })

  it("hands the backend to the relay's shared buffer once done: later bytes reach the client intact, without data events", async () => {
    const { backend, server } = await pair()
    const { backend: client, server: peer } = await pair()
    sockets.push(backend, server, client, peer)
    const keys = new CancelKeys()
    const watch = watchBackendKeyData(backend, target, keys)
    relay(client, backend, () => watch?.closed())
    let chunksAfterReady = 0
    let readySeen = false
    backend.on("data", () => {
      if (readySeen) chunksAfterReady++
    })
    const first = Buffer.concat([authOk, keyData(7, 8), ready])
    const after = Buffer.alloc(256 * 1024)
    for (let i = 0; i < after.length; i++) after[i] = i % 251
    const received = new Promise<Buffer>((resolve) => {
      const parts: Array<Buffer> = []
      let got = 0
      peer.on("data", (c: Buffer) => {
        parts.push(c)
        got += c.length
        if (got >= first.length + after.length) resolve(Buffer.concat(parts))
      })
    })
    const firstArrived = readAll(peer, first.length)
    server.write(first)
    await firstArrived
    readySeen = true
    server.write(after)
    expect((await received).equals(Buffer.concat([first, after]))).toBe(true)
    expect(chunksAfterReady).toBe(0)
  })
})
