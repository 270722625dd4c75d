// HTTP/2 clients (node:http2, curl) → polyproxy (h2c with prior knowledge; h2 and HTTP/1.1 over TLS with ALPN and
// SNI-selected certificates) → HTTP/1.1 origins.
import { execFile } from "node:child_process"
import { createHash } from "node:crypto"
import * as http2 from "node:http2"
import * as https from "node:https"
import type { AddressInfo } from "node:net"
import type * as tls from "node:tls"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import WebSocket from "ws"
import { tenantCert } from "../listeners/http/certs.ts"
import { h2request, type Origin, patternHash, startOrigin, startWsOrigin } from "../listeners/http/support.ts"
import { type Certs, makeCerts } from "../support/certs.ts"
import { startTestProxy, type TestProxy } from "../support/proxy.ts"

let originA: Origin
let originB: Origin
let wsOrigin: { port: number; close: () => Promise<void> }
let certs: Certs
let plain: TestProxy
let secure: TestProxy
let h2Origin: http2.Http2Server
let h2TlsOrigin: http2.Http2SecureServer

/** An HTTP/2 origin: echoes method, path, headers and body hash, and ends with gRPC-style trailers. */
const serveH2 = (server: http2.Http2Server | http2.Http2SecureServer, name: string) => {
  server.on("stream", (stream, headers) => {
    const h = createHash("sha256")
    let length = 0
    stream.on("data", (d: Buffer) => {
      length += d.length
      h.update(d)
    })
    stream.on("end", () => {
      stream.respond({ ":status": 200, "content-type": "application/json" }, { waitForTrailers: true })
      stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0", "x-origin": name }))
      stream.end(JSON.stringify({ origin: name, headers, length, sha256: h.digest("hex") }))
    })
  })
}
const listenH2 = (server: http2.Http2Server | http2.Http2SecureServer) =>
  new Promise<number>((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)))

const curl = (args: ReadonlyArray<string>): Promise<{ code: number; stdout: string; stderr: string } | undefined> =>
  new Promise((resolve) =>
    execFile("curl", [...args], { timeout: 20_000 }, (error, stdout, stderr) => {
      if ((error as NodeJS.ErrnoException | null)?.code === "ENOENT") return resolve(undefined)
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr })
    })
  )

beforeAll(async () => {
  ;[originA, originB, wsOrigin, certs] = await Promise.all([
    startOrigin("A"),
    startOrigin("B"),
    startWsOrigin(),
    makeCerts()
  ])
  const [tenantA, wild] = await Promise.all([
    tenantCert(certs, "tenant-a", ["a.test"]),
    tenantCert(certs, "wild", ["*.wild.test"])
  ])
  h2Origin = http2.createServer()
  serveH2(h2Origin, "h2c")
  h2TlsOrigin = http2.createSecureServer({ cert: certs.server.cert, key: certs.server.key })
  serveH2(h2TlsOrigin, "h2")
  const [h2Port, h2TlsPort] = await Promise.all([listenH2(h2Origin), listenH2(h2TlsOrigin)])
  const routes = {
    "grpc.test": { endpoint: `127.0.0.1:${h2Port}`, metadata: { protocol: "h2c" } },
    "grpc-tls.test": {
      endpoint: `127.0.0.1:${h2TlsPort}`,
      metadata: { protocol: "h2", tls: { ca: certs.ca.cert, servername: "localhost" } }
    },
    "a.test": `127.0.0.1:${originA.port}`,
    "b.test": `127.0.0.1:${originB.port}`,
    "*.wild.test": `127.0.0.1:${originB.port}`,
    "ws.test": `127.0.0.1:${wsOrigin.port}`
  }
  plain = await startTestProxy({
    listeners: { http: { host: "127.0.0.1", port: 0, telemetry: true } },
    routes,
    ssrf: { allow: ["127.0.0.0/8"] }
  })
  secure = await startTestProxy({
    listeners: {
      http: {
        host: "127.0.0.1",
        port: 0,
        tls: { cert: certs.server.certPath, key: certs.server.keyPath },
        // hosts from the certificates' own SAN lists
        certificates: [
          { cert: tenantA.certPath, key: tenantA.keyPath },
          { cert: wild.certPath, key: wild.keyPath }
        ]
      }
    },
    routes,
    ssrf: { allow: ["127.0.0.0/8"] }
  })
})

afterAll(async () => {
  await Promise.all([plain?.stop(), secure?.stop()])
  await Promise.all([originA?.close(), originB?.close(), wsOrigin?.close()])
  h2Origin?.close()
  h2TlsOrigin?.close()
})

const connectH2c = (port: number) => http2.connect(`http://127.0.0.1:${port}`)

const connectH2 = (servername: string): Promise<{ session: http2.ClientHttp2Session; cn: string }> =>
  new Promise((resolve, reject) => {
    const session = http2.connect(`https://127.0.0.1:${secure.port("http")}`, { ca: certs.ca.cert, servername })
    session.once("error", reject)
    session.once("connect", () => {
      const cert = (session.socket as tls.TLSSocket).getPeerCertificate()
      resolve({ session, cn: String(cert.subject.CN) })
    })
  })

describe("http listener: h2c with prior knowledge", () => {
  it("routes streams by :authority to HTTP/1.1 origins, multiplexed on one connection", async () => {
    const session = connectH2c(plain.port("http"))
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        h2request(session, { ":path": `/echo?i=${i}`, ":authority": i % 2 === 0 ? "a.test" : "b.test" })
      )
    )
    session.close()
    expect(answers.every((a) => a.status === 200)).toBe(true)
    const bodies = answers.map((a) => JSON.parse(a.body.toString()))
    expect(bodies.map((b) => b.origin)).toEqual(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? "A" : "B")))
    expect(bodies[0]).toMatchObject({ httpVersion: "1.1", headers: { host: "a.test", "x-forwarded-proto": "http" } })
    expect(answers[1]!.headers["x-proxy-upstream-connection"]).toBeDefined()
  })

  it("streams request bodies without a length as chunked, and bodies with one as they are", async () => {
    const session = connectH2c(plain.port("http"))
    const mb = Buffer.concat(Array.from({ length: 16 }, (_, i) => Buffer.alloc(65536, i)))
    const chunked = await h2request(session, { ":method": "POST", ":path": "/echo", ":authority": "a.test" }, [mb])
    const sized = await h2request(
      session,
      { ":method": "PUT", ":path": "/echo", ":authority": "a.test", "content-length": mb.length },
      mb
    )
    const down = await h2request(session, { ":path": "/bytes?n=1048576&chunked=1", ":authority": "b.test" })
    session.close()
    const sha = createHash("sha256").update(mb).digest("hex")
    expect(JSON.parse(chunked.body.toString())).toMatchObject({
      length: mb.length,
      sha256: sha,
      headers: { "transfer-encoding": "chunked" }
    })
    expect(JSON.parse(sized.body.toString())).toMatchObject({ length: mb.length, sha256: sha })
    expect(createHash("sha256").update(down.body).digest("hex")).toBe(patternHash(1 << 20))
  })

  it("relays trailers, HEAD and errors as HTTP/2 responses", async () => {
    const session = connectH2c(plain.port("http"))
    const trailers = await h2request(session, { ":path": "/trailers", ":authority": "a.test" })
    const head = await h2request(session, { ":method": "HEAD", ":path": "/echo", ":authority": "a.test" })
    const missing = await h2request(session, { ":path": "/", ":authority": "nobody.test" })
    session.close()
    expect(trailers.body.toString()).toBe("part one,part two")
    expect(trailers.trailers?.["x-checksum"]).toBe("abc123")
    expect(head.status).toBe(200)
    expect(head.body.length).toBe(0)
    expect(missing.status).toBe(404)
    expect(JSON.parse(missing.body.toString()).reason).toBe("NOT_FOUND")
  })

  it("curl --http2-prior-knowledge", async () => {
    const r = await curl([
      "-s",
      "--http2-prior-knowledge",
      "-H",
      "Host: b.test",
      "-w",
      "\n%{http_version} %{http_code}",
      `http://127.0.0.1:${plain.port("http")}/echo`
    ])
    if (r === undefined) return
    const [body, tail] = r.stdout.split("\n")
    expect(tail).toBe("2 200")
    expect(JSON.parse(body!).origin).toBe("B")
  })
})

describe("http listener: TLS with ALPN and SNI certificates", () => {
  it("picks the certificate by SNI: exact name, wildcard, default", async () => {
    const exact = await connectH2("a.test")
    const wild = await connectH2("tenant9.wild.test")
    const other = await connectH2("localhost")
    expect([exact.cn, wild.cn, other.cn]).toEqual(["a.test", "*.wild.test", "localhost"])
    const r = await h2request(wild.session, { ":path": "/echo", ":authority": "tenant9.wild.test" })
    expect(JSON.parse(r.body.toString())).toMatchObject({ origin: "B", headers: { "x-forwarded-proto": "https" } })
    for (const c of [exact, wild, other]) c.session.close()
  })

  it("serves HTTP/1.1 on the same port when the client does not offer h2", async () => {
    const r = await new Promise<{ status: number; body: string; alpn: string | false | null }>((resolve, reject) => {
      const req = https.request(
        {
          host: "127.0.0.1",
          port: secure.port("http"),
          path: "/echo",
          servername: "a.test",
          headers: { host: "a.test" },
          ca: certs.ca.cert,
          agent: false
        },
        (res) => {
          let body = ""
          res.setEncoding("utf8")
          res.on("data", (d) => (body += d))
          res.on("end", () =>
            resolve({ status: res.statusCode ?? 0, body, alpn: (res.socket as tls.TLSSocket).alpnProtocol })
          )
        }
      )
      req.on("error", reject)
      req.end()
    })
    expect(r.status).toBe(200)
    expect(r.alpn).toBe(false)
    expect(JSON.parse(r.body).origin).toBe("A")
  })

  it("curl --http2 negotiates h2 through ALPN and verifies the tenant certificate", async () => {
    const port = secure.port("http")
    const r = await curl([
      "-s",
      "--http2",
      "--cacert",
      certs.ca.certPath,
      "--resolve",
      `a.test:${port}:127.0.0.1`,
      "-w",
      "\n%{http_version} %{http_code}",
      `https://a.test:${port}/echo`
    ])
    if (r === undefined) return
    expect(r.code).toBe(0)
    const [body, tail] = r.stdout.split("\n")
    expect(tail).toBe("2 200")
    expect(JSON.parse(body!)).toMatchObject({ origin: "A", headers: { host: `a.test:${port}` } })
  })

  it("relays a WebSocket over TLS (wss)", async () => {
    const ws = new WebSocket(`wss://127.0.0.1:${secure.port("http")}/`, {
      headers: { host: "ws.test" },
      // No SNI for an IP literal: the default certificate (SAN IP:127.0.0.1) answers.
      ca: certs.ca.cert
    })
    const first = await new Promise<string>((resolve, reject) => {
      ws.once("message", (d) => resolve(String(d)))
      ws.once("error", reject)
    })
    expect(JSON.parse(first)).toEqual({ xff: "127.0.0.1", host: "ws.test" })
    const echo = new Promise<string>((resolve) => ws.once("message", (d) => resolve(String(d))))
    ws.send("over tls")
    expect(await echo).toBe("over tls")
    ws.close()
  })
})

describe("http listener: HTTP/2 backends (metadata.protocol h2c / h2)", () => {
  for (const [host, origin] of [
    ["grpc.test", "h2c"],
    ["grpc-tls.test", "h2"]
  ] as const) {
    it(`relays an HTTP/2 stream to an ${origin} backend with its body and trailers`, async () => {
      const session = connectH2c(plain.port("http"))
      const body = Buffer.alloc(200_000, 3)
      const r = await h2request(
        session,
        {
          ":method": "POST",
          ":path": "/pkg.Service/Method",
          ":authority": host,
          te: "trailers",
          "content-type": "application/grpc"
        },
        body
      )
      session.close()
      expect(r.status).toBe(200)
      const j = JSON.parse(r.body.toString())
      expect(j).toMatchObject({
        origin,
        length: body.length,
        sha256: createHash("sha256").update(body).digest("hex"),
        headers: { ":path": "/pkg.Service/Method", ":authority": host, te: "trailers", "x-forwarded-for": "127.0.0.1" }
      })
      expect(r.trailers).toMatchObject({ "grpc-status": "0", "x-origin": origin })
    })
  }
})
