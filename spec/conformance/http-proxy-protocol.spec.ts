// PROXY protocol in front of the HTTP listener (`proxyProtocol: true`): a real HAProxy sending v2 (and v1) on a plain
// and a TLS port (the header before the ClientHello), HTTP/1.1, h2c and h2 behind it. The origin's X-Forwarded-For,
// Forwarded and the Resolver's ConnectionInfo carry the client's own address (127.0.0.5), not HAProxy's (127.0.0.1).
// A connection without a valid header, or from a sender not in trustedProxies, is closed without an answer.
import * as http from "node:http"
import * as http2 from "node:http2"
import * as https from "node:https"
import * as net from "node:net"
import * as tls from "node:tls"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { ConnectionInfo } from "../../src/domain/Route.ts"
import { Resolver } from "../../src/services/Resolver.ts"
import { type Origin, startOrigin } from "../listeners/http/support.ts"
import { type Certs, makeCerts } from "../support/certs.ts"
import { type Haproxy, startHaproxy } from "../support/haproxy.ts"
import { eventually, startTestProxy, type TestProxy } from "../support/proxy.ts"

/** The client's address: HAProxy connects from 127.0.0.1, so the origin can only learn this one from the header. */
const client = "127.0.0.5"

let origin: Origin
let certs: Certs
let plain: TestProxy
let secure: TestProxy
let strict: TestProxy
let haproxy: Haproxy
const seen: Array<ConnectionInfo | undefined> = []

interface Echo {
  readonly headers: Record<string, string>
}

beforeAll(async () => {
  ;[origin, certs] = await Promise.all([startOrigin("A"), makeCerts()])
  const resolver = Resolver.layerAsync({
    resolve: (_id, info) => {
      seen.push(info)
      return { endpoint: `127.0.0.1:${origin.port}` }
    }
  })
  const common = { ssrf: { allow: ["127.0.0.0/8"] }, cache: { ttl: 0, negativeTtl: 0 }, timeouts: { handshake: 2 } }
  ;[plain, secure, strict] = await Promise.all([
    startTestProxy({ ...common, listeners: { http: { host: "127.0.0.1", port: 0, proxyProtocol: true } } }, resolver),
    startTestProxy(
      {
        ...common,
        listeners: {
          http: {
            host: "127.0.0.1",
            port: 0,
            proxyProtocol: true,
            tls: { cert: certs.server.certPath, key: certs.server.keyPath }
          }
        }
      },
      resolver
    ),
    startTestProxy(
      {
        ...common,
        listeners: { http: { host: "127.0.0.1", port: 0, proxyProtocol: true, trustedProxies: ["10.0.0.0/8"] } }
      },
      resolver
    )
  ])
  haproxy = await startHaproxy([
    { server: `127.0.0.1:${plain.port("http")}`, send: "send-proxy-v2" },
    { server: `127.0.0.1:${plain.port("http")}`, send: "send-proxy" },
    { server: `127.0.0.1:${secure.port("http")}`, send: "send-proxy-v2" },
    { server: `127.0.0.1:${strict.port("http")}`, send: "send-proxy-v2" }
  ])
})

afterAll(async () => {
  haproxy?.stop()
  await Promise.all([plain?.stop(), secure?.stop(), strict?.stop()])
  await origin?.close()
})

const viaV2 = () => haproxy.ports[0]!
const viaV1 = () => haproxy.ports[1]!
const viaTls = () => haproxy.ports[2]!
const viaUntrusted = () => haproxy.ports[3]!

/** GET / with Host a.test from `client`, over HTTP/1.1 (TLS when `secure`). */
const get = (port: number, secure = false) =>
  new Promise<{ status: number; echo: Echo }>((resolve, reject) => {
    const options = { host: "127.0.0.1", port, localAddress: client, headers: { host: "a.test" }, agent: false }
    const req = secure
      ? https.request({ ...options, servername: "localhost", ca: certs.ca.cert })
      : http.request(options)
    req.on("response", (res) => {
      let body = ""
      res.on("data", (d) => (body += d))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, echo: JSON.parse(body) as Echo }))
    })
    req.on("error", reject)
    req.end()
  })

/** GET / over HTTP/2 (h2c by prior knowledge, or h2 through ALPN) from `client`. */
const getH2 = async (port: number, secure: boolean) => {
  const session = http2.connect(secure ? "https://a.test" : "http://a.test", {
    createConnection: () =>
      secure
        ? tls.connect({
            socket: net.connect({ host: "127.0.0.1", port, localAddress: client }),
            servername: "localhost",
            ca: certs.ca.cert,
            ALPNProtocols: ["h2"]
          })
        : net.connect({ host: "127.0.0.1", port, localAddress: client })
  })
  try {
    return await new Promise<{ status: number; echo: Echo }>((resolve, reject) => {
      const req = session.request({ ":path": "/" })
      let status = 0
      let body = ""
      req.on("response", (h) => (status = Number(h[":status"])))
      req.on("data", (d) => (body += d))
      req.on("end", () => {
        try {
          resolve({ status, echo: JSON.parse(body) as Echo })
        } catch {
          reject(new Error(`status ${status}, not the origin's JSON: ${body}`))
        }
      })
      req.on("error", reject)
      req.end()
    })
  } finally {
    session.close()
  }
}

/** Sends `bytes` straight to `port` from `localAddress`; resolves with everything answered before the close. */
const raw = (port: number, bytes: Buffer | undefined, localAddress = "127.0.0.1") =>
  new Promise<string>((resolve) => {
    const s = net.connect({ port, host: "127.0.0.1", localAddress }, () => {
      if (bytes !== undefined) s.write(bytes)
    })
    let out = ""
    s.on("data", (d) => (out += d))
    s.once("close", () => resolve(out))
    s.once("error", () => resolve(out))
  })

const request = "GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"

const expectClient = (echo: Echo, address = client) => {
  expect(echo.headers["x-forwarded-for"]).toBe(address)
  expect(echo.headers.forwarded).toContain(`for=${address};`)
}

describe("HTTP behind a real HAProxy sending PROXY headers", () => {
  it("v2 on a plain port: the origin and the Resolver see the client's own address", async () => {
    const { status, echo } = await get(viaV2())
    expect(status).toBe(200)
    expectClient(echo)
    expect(seen.at(-1)).toMatchObject({ protocol: "http", remoteAddress: client })
  })

  it("v1 on a plain port", async () => {
    const { status, echo } = await get(viaV1())
    expect(status).toBe(200)
    expectClient(echo)
  })

  it("h2c by prior knowledge behind the header", async () => {
    const { status, echo } = await getH2(viaV2(), false)
    expect(status).toBe(200)
    expectClient(echo)
  })

  it("TLS: the header comes before the ClientHello; HTTP/1.1 and h2 (ALPN) behind it", async () => {
    const one = await get(viaTls(), true)
    expect(one.status).toBe(200)
    expectClient(one.echo)
    expect(one.echo.headers["x-forwarded-proto"]).toBe("https")
    const two = await getH2(viaTls(), true)
    expect(two.status).toBe(200)
    expectClient(two.echo)
  })

  it("a LOCAL header (the balancer's own health check) keeps the connection's own address", async () => {
    // v2 signature, version 2 / command LOCAL, family UNSPEC, no addresses.
    const local = Buffer.concat([Buffer.from("0d0a0d0a000d0a515549540a", "hex"), Buffer.from([0x20, 0x00, 0, 0])])
    const answer = await raw(plain.port("http"), Buffer.concat([local, Buffer.from(request)]), "127.0.0.7")
    expect(answer).toMatch(/^HTTP\/1\.1 200 /)
    expectClient(JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4)) as Echo, "127.0.0.7")
  })
})

describe("refused PROXY senders: closed without an answer", () => {
  it("a connection without a header (the request is not read as HTTP)", async () => {
    expect(await raw(plain.port("http"), Buffer.from(request))).toBe("")
    await eventually(() => plain.logs.some((l) => l.event === "connection refused" && l.reason === "BAD_REQUEST"))
  })

  it("a header that never comes, within timeouts.handshake", async () => {
    expect(await raw(plain.port("http"), undefined)).toBe("")
    await eventually(() => plain.logs.some((l) => l.event === "connection refused" && l.reason === "HANDSHAKE_TIMEOUT"))
  })

  it("a sender not in trustedProxies, a real HAProxy included", async () => {
    const v1 = Buffer.from(`PROXY TCP4 203.0.113.9 127.0.0.1 40000 80\r\n${request}`)
    expect(await raw(strict.port("http"), v1)).toBe("")
    await expect(get(viaUntrusted())).rejects.toThrow()
    const refused = strict.logs.filter((l) => l.event === "connection refused" && l.reason === "FORBIDDEN")
    expect(refused.length).toBeGreaterThan(0)
    expect(String(refused[0]!.message)).toContain("trustedProxies")
    expect(seen.some((info) => info?.remoteAddress === "203.0.113.9")).toBe(false)
  })
})
