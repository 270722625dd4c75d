// The one dialer (src/listeners/dial.ts) against real servers: plain and TLS dials, the words of each failure, the
// deadline over the TLS handshake, source addresses, and cancelling a dial under way.
import * as net from "node:net"
import type * as tls from "node:tls"
import { createServer as createTlsServer } from "node:tls"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { VettedEndpoint } from "../../src/domain/Endpoint.ts"
import type { ProxyError } from "../../src/domain/ProxyError.ts"
import { cancelDial, type DialWaiter, dialProfile, dialWith } from "../../src/listeners/dial.ts"
import { setSourceAddresses } from "../../src/listeners/sourceAddress.ts"
import { type Certs, makeCerts } from "../support/certs.ts"
import { closedPort, type SilentServer, silentServer } from "../support/net.ts"
import { eventually } from "../support/proxy.ts"

interface Outcome {
  readonly socket: net.Socket | undefined
  readonly error: ProxyError | undefined
  readonly timedOut: boolean
}

const target = (port: number, host = "127.0.0.1"): VettedEndpoint => ({ host, port, ip: "127.0.0.1", family: 4 })

/** Dials `t` with `profile`; resolves with what the waiter was told. */
const dialOnce = (
  t: VettedEndpoint,
  timeoutMs: number,
  profile = dialProfile({ allowHalfOpen: false, keepAlive: true })
) =>
  new Promise<Outcome & { returned: net.Socket }>((resolve) => {
    const waiter: DialWaiter = {
      target: t,
      dialed: (socket, error, timedOut) => resolve({ socket, error, timedOut: timedOut === true, returned })
    }
    const returned = dialWith(waiter, timeoutMs, profile)
  })

let certs: Certs
let tlsServer: tls.Server
let tlsPort: number
let silent: SilentServer
const seenFrom: Array<string> = []

beforeAll(async () => {
  certs = await makeCerts()
  tlsServer = createTlsServer(
    { cert: certs.server.cert, key: certs.server.key, ALPNProtocols: ["h2", "http/1.1"] },
    (s) => {
      seenFrom.push(s.remoteAddress ?? "")
      s.end(`hello over ${s.alpnProtocol}`)
    }
  )
  await new Promise<void>((r) => tlsServer.listen(0, "127.0.0.1", r))
  tlsPort = (tlsServer.address() as net.AddressInfo).port
  silent = await silentServer()
})
afterAll(() => {
  setSourceAddresses([])
  tlsServer?.close()
  silent?.close()
})

const tlsProfile = (ca: string, alpn = "http/1.1") =>
  dialProfile({
    allowHalfOpen: false,
    keepAlive: false,
    tls: { ca, servername: "localhost", rejectUnauthorized: true, ALPNProtocols: [alpn] }
  })

const readAll = (s: net.Socket) =>
  new Promise<string>((resolve) => {
    let text = ""
    s.on("data", (d) => (text += d))
    s.on("close", () => resolve(text))
  })

describe("dialWith", () => {
  it("plain: the waiter gets the connected socket, the same one dialWith returned", async () => {
    const echo = net.createServer((s) => s.end("plain hello"))
    await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r))
    try {
      const o = await dialOnce(target((echo.address() as net.AddressInfo).port), 1_000)
      expect(o.error).toBeUndefined()
      expect(o.socket).toBe(o.returned)
      expect(await readAll(o.socket!)).toBe("plain hello")
    } finally {
      echo.close()
    }
  })

  it("TLS: the waiter gets the TLS socket once the handshake is done, verified against the CA, with ALPN", async () => {
    const o = await dialOnce(target(tlsPort, "localhost"), 2_000, tlsProfile(certs.ca.cert, "h2"))
    expect(o.error).toBeUndefined()
    const secure = o.socket as tls.TLSSocket
    expect(secure).toBe(o.returned)
    expect(secure.encrypted).toBe(true)
    expect(secure.authorized).toBe(true)
    expect(secure.alpnProtocol).toBe("h2")
    expect(await readAll(secure)).toBe("hello over h2")
  })

  it("TLS with a CA that did not sign the backend's certificate: CONNECT_FAILED naming the handshake", async () => {
    const o = await dialOnce(target(tlsPort, "localhost"), 2_000, tlsProfile(certs.rogueCa.cert))
    expect(o.socket).toBeUndefined()
    expect(o.timedOut).toBe(false)
    expect(o.error?.reason).toBe("CONNECT_FAILED")
    expect(o.error?.message).toMatch(
      new RegExp(`^cannot connect to backend localhost:${tlsPort} \\(127\\.0\\.0\\.1\\): TLS handshake failed: `)
    )
    expect(o.returned.destroyed).toBe(true)
  })

  it("TLS to a closed port: the TCP failure's words, not the handshake's", async () => {
    const port = await closedPort()
    const o = await dialOnce(target(port), 2_000, tlsProfile(certs.ca.cert))
    expect(o.error?.message).toBe(`cannot connect to backend 127.0.0.1:${port}: ECONNREFUSED`)
    expect(o.timedOut).toBe(false)
  })

  it("the deadline covers the TLS handshake: a backend that accepts and never answers times out", async () => {
    const started = Date.now()
    const o = await dialOnce(target(silent.port), 300, tlsProfile(certs.ca.cert))
    expect(Date.now() - started).toBeGreaterThanOrEqual(290)
    expect(o.timedOut).toBe(true)
    expect(o.error?.message).toBe(`backend 127.0.0.1:${silent.port} did not accept within 300 ms`)
    expect(o.returned.destroyed).toBe(true)
  })

  it("dials TLS from the configured source addresses too", async () => {
    setSourceAddresses(["127.0.0.2", "127.0.0.3"])
    try {
      seenFrom.length = 0
      for (let i = 0; i < 2; i++) {
        const o = await dialOnce(target(tlsPort, "localhost"), 2_000, tlsProfile(certs.ca.cert))
        expect(o.error).toBeUndefined()
        await readAll(o.socket!)
      }
      expect(seenFrom.sort()).toEqual(["127.0.0.2", "127.0.0.3"])
    } finally {
      setSourceAddresses([])
    }
  })

  it("cancelDial abandons a TLS dial under way: the waiter is never told, the TCP connection closes", async () => {
    let told = false
    const accepted = silent.sockets.size
    const fins = silent.fins()
    const secure = dialWith(
      { target: target(silent.port), dialed: () => (told = true) },
      5_000,
      tlsProfile(certs.ca.cert)
    )
    await eventually(() => silent.sockets.size === accepted + 1)
    cancelDial(secure)
    await eventually(() => silent.fins() === fins + 1)
    expect(secure.destroyed).toBe(true)
    expect(told).toBe(false)
  })
})
