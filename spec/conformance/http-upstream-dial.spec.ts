// HTTP/1.1 and HTTP/2 backends dialled through the one dialer: TLS to an HTTP/1.1 backend (metadata.tls) verified and
// pooled, a handshake refused or never finished (502 / 504 within timeouts.connect), and HTTP/2 sessions that cannot
// be opened: the dialer's words in the log, the backend's breaker counting them, 503 once it is open.
import * as http2 from "node:http2"
import * as https from "node:https"
import type { AddressInfo } from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { h2request, json, send } from "../listeners/http/support.ts"
import { type Certs, makeCerts } from "../support/certs.ts"
import { closedPort, neverAccepts, type SilentServer, silentServer } from "../support/net.ts"
import { startTestProxy, type TestProxy } from "../support/proxy.ts"

let certs: Certs
let origin: https.Server
let originPort: number
let connections = 0
let silent: SilentServer
let blackhole: { readonly port: number; readonly close: () => void }
let proxy: TestProxy

beforeAll(async () => {
  certs = await makeCerts()
  origin = https.createServer({ cert: certs.server.cert, key: certs.server.key }, (req, res) =>
    res.end(JSON.stringify({ tls: (req.socket as { encrypted?: boolean }).encrypted === true, url: req.url }))
  )
  origin.on("secureConnection", () => connections++)
  await new Promise<void>((r) => origin.listen(0, "127.0.0.1", r))
  originPort = (origin.address() as AddressInfo).port
  ;[silent, blackhole] = await Promise.all([silentServer(), neverAccepts()])
  const dead = await closedPort()
  const tlsTo = (ca: string) => ({ tls: { ca, servername: "localhost" } })
  proxy = await startTestProxy({
    listeners: { http: { host: "127.0.0.1", port: 0 } },
    routes: {
      "tls.test": { endpoint: `127.0.0.1:${originPort}`, metadata: tlsTo(certs.ca.cert) },
      "rogue.test": { endpoint: `localhost:${originPort}`, metadata: tlsTo(certs.rogueCa.cert) },
      "silent.test": { endpoint: `127.0.0.1:${silent.port}`, metadata: tlsTo(certs.ca.cert) },
      "h2dead.test": { endpoint: `127.0.0.1:${dead}`, metadata: { protocol: "h2c" } },
      "h2hole.test": { endpoint: `127.0.0.1:${blackhole.port}`, metadata: { protocol: "h2c" } }
    },
    ssrf: { allow: ["127.0.0.0/8"] },
    timeouts: { connect: 1 },
    breaker: { failureThreshold: 3, cooldown: 60 }
  })
})
afterAll(async () => {
  await proxy?.stop()
  origin?.close()
  silent?.close()
  blackhole?.close()
})

const refusals = () =>
  proxy.logs.filter((l) => l.event === "request refused").map((l) => [l.status, l.reason, String(l.message)])

describe("HTTP/1.1 over TLS to the backend (metadata.tls)", () => {
  it("verifies the backend against the route's CA and keeps the TLS connection for the next requests", async () => {
    const before = connections
    for (const path of ["/one", "/two", "/three"]) {
      const r = await send(proxy.port("http"), { host: "tls.test", path })
      expect(r.status).toBe(200)
      expect(json(r)).toEqual({ tls: true, url: path })
    }
    expect(connections - before).toBe(1)
  })

  it("a certificate the route's CA did not sign: 502, the handshake named in the log", async () => {
    const r = await send(proxy.port("http"), { host: "rogue.test" })
    expect(r.status).toBe(502)
    expect(json(r).reason).toBe("CONNECT_FAILED")
    expect(refusals().at(-1)).toEqual([
      502,
      "CONNECT_FAILED",
      expect.stringMatching(
        new RegExp(`^cannot connect to backend localhost:${originPort} \\(127\\.0\\.0\\.1\\): TLS handshake failed: `)
      )
    ])
  })

  it("a backend that accepts and never finishes the handshake: 504 at timeouts.connect", async () => {
    const r = await send(proxy.port("http"), { host: "silent.test" })
    expect(r.status).toBe(504)
    expect(json(r).reason).toBe("UPSTREAM_TIMEOUT")
    expect(refusals().at(-1)).toEqual([
      504,
      "UPSTREAM_TIMEOUT",
      `backend 127.0.0.1:${silent.port} did not accept within 1000 ms`
    ])
  })
})

describe("HTTP/2 backends (metadata.protocol h2c)", () => {
  let session: http2.ClientHttp2Session
  beforeAll(() => {
    session = http2.connect(`http://127.0.0.1:${proxy.port("http")}`)
  })
  afterAll(() => session?.close())

  const get = (host: string) => h2request(session, { ":path": "/", ":authority": host })

  it("a session that cannot connect: 502 with the dialer's words", async () => {
    const r = await get("h2dead.test")
    expect(r.status).toBe(502)
    expect(JSON.parse(r.body.toString()).reason).toBe("CONNECT_FAILED")
    expect(refusals().at(-1)).toEqual([
      502,
      "CONNECT_FAILED",
      expect.stringMatching(/^cannot connect to backend .*: ECONNREFUSED$/)
    ])
  })

  it("a backend that never accepts: 504 at timeouts.connect", async () => {
    const r = await get("h2hole.test")
    expect(r.status).toBe(504)
    expect(refusals().at(-1)).toEqual([
      504,
      "UPSTREAM_TIMEOUT",
      `backend 127.0.0.1:${blackhole.port} did not accept within 1000 ms`
    ])
  })

  it("counts failed sessions in the backend's breaker: once open, 503 without a dial", async () => {
    const r = [await get("h2dead.test"), await get("h2dead.test"), await get("h2dead.test")]
    // The first test's failure and two more open it (threshold 3); the third request finds it open.
    expect(r.map((a) => a.status)).toEqual([502, 502, 503])
    expect(r[2]!.headers["retry-after"]).toBeDefined()
    expect(refusals().at(-1)).toEqual([503, "UNAVAILABLE", expect.stringContaining("circuit breaker is open")])
    const backends = (await (await fetch(`${proxy.adminUrl}/admin/backends`)).json()) as {
      backends: Array<{ backend: string; state: string }>
    }
    expect(backends.backends.filter((b) => b.state === "open").length).toBe(1)
  })
})
