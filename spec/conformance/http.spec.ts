// Real HTTP clients (undici, node:http, ws, raw sockets) → polyproxy's http listener → real origin servers.
import { createHash } from "node:crypto"
import * as http from "node:http"
import { createConnection } from "node:net"
import { Agent, request } from "undici"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import WebSocket from "ws"
import { ResolveError } from "../../src/domain/ResolveError.ts"
import { Resolver } from "../../src/services/Resolver.ts"
import {
  closedPort,
  json,
  type Origin,
  pattern,
  patternHash,
  rawExchange,
  send,
  startOrigin,
  startRawOrigin,
  startWsOrigin,
  statuses
} from "../listeners/http/support.ts"
import { startTestProxy, type TestProxy } from "../support/proxy.ts"

let originA: Origin
let originB: Origin
let raw: { port: number; close: () => Promise<void> }
let wsOrigin: { port: number; close: () => Promise<void> }
let proxy: TestProxy
let port: number

beforeAll(async () => {
  ;[originA, originB, wsOrigin] = await Promise.all([startOrigin("A"), startOrigin("B"), startWsOrigin()])
  raw = await startRawOrigin({
    "/bad-status": "HTTP/1.1 2OO OK\r\ncontent-length: 0\r\n\r\n",
    "/cl-te": "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
    "/two-cl": "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!",
    "/bad-chunk": "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "/until-close": (s) => s.end("HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nread until the server closes"),
    "/hangup": (s) => s.destroy(),
    "/truncated": (s) => s.end("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this"),
    "/unasked-101": "HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\nconnection: upgrade\r\n\r\n"
  })
  const dead = await closedPort()
  const table: Record<string, string> = {
    "a.test": `127.0.0.1:${originA.port}`,
    "b.test": `127.0.0.1:${originB.port}`,
    "*.wild.test": `127.0.0.1:${originA.port}`,
    "raw.test": `127.0.0.1:${raw.port}`,
    "ws.test": `127.0.0.1:${wsOrigin.port}`,
    "meta.test": "169.254.169.254:80",
    "dead.test": `127.0.0.1:${dead}`
  }
  const resolver = Resolver.layerAsync({
    resolve: async (id) => {
      if (id === "cold.test")
        throw new ResolveError({ code: "UNAVAILABLE", message: "cold.test is waking up", retryAfter: 4 })
      if (id === "slow.test") return new Promise(() => {})
      if (id === "banned.test")
        throw new ResolveError({ code: "FORBIDDEN", message: "tenant banned.test is suspended" })
      if (id === "broken.test") throw new Error("route store unreachable")
      const exact = table[id]
      if (exact) return { endpoint: exact }
      const dot = id.indexOf(".")
      const wild = dot > 0 ? table[`*${id.slice(dot)}`] : undefined
      return wild ? { endpoint: wild } : null
    }
  })
  proxy = await startTestProxy(
    {
      listeners: {
        http: {
          host: "127.0.0.1",
          port: 0,
          telemetry: true,
          maxHeaderSize: 8192,
          keepAliveTimeout: 2,
          upstream: { headersTimeout: 1.5, keepAliveTimeout: 10 }
        }
      },
      ssrf: { allow: ["127.0.0.0/8"] },
      timeouts: { handshake: 1, resolve: 0.5, connect: 2 },
      // cold.test never wakes: its requests wait this long (spec/conformance/http-cold-start.spec.ts has the rest).
      coldStart: { timeout: 1 }
    },
    resolver
  )
  port = proxy.port("http")
})

afterAll(async () => {
  await proxy?.stop()
  await Promise.all([originA?.close(), originB?.close(), raw?.close(), wsOrigin?.close()])
})

const metricsText = () => fetch(`${proxy.adminUrl}/metrics`).then((r) => r.text())
const errorCount = (text: string, reason: string) =>
  Number(
    new RegExp(`polyproxy_errors_total\\{[^}]*listener="http"[^}]*reason="${reason}"[^}]*\\} (\\d+)`).exec(text)?.[1] ??
      0
  )

describe("http listener: routing by Host", () => {
  it("sends each Host to its own origin; port stripped, case folded, wildcards matched", async () => {
    const a = json(await send(port, { host: "a.test" }))
    const b = json(await send(port, { host: "b.test" }))
    const upper = json(await send(port, { host: "A.TEST:8080" }))
    const wild = json(await send(port, { host: "tenant1.wild.test" }))
    expect([a.origin, b.origin, upper.origin, wild.origin]).toEqual(["A", "B", "A", "A"])
    // The original Host reaches the origin by default.
    expect(upper.headers.host).toBe("A.TEST:8080")
  })

  it("refuses a missing, invalid or duplicated Host with 400 and a JSON reason", async () => {
    const missing = await rawExchange(port, "GET / HTTP/1.1\r\n\r\n")
    const invalid = await rawExchange(port, "GET / HTTP/1.1\r\nHost: bad_host!.test\r\nConnection: close\r\n\r\n")
    const two = await rawExchange(port, "GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n")
    const http10 = await rawExchange(port, "GET / HTTP/1.0\r\n\r\n")
    for (const r of [missing, invalid, two, http10]) {
      expect(statuses(r.text)).toEqual([400])
      expect(r.text).toContain('"reason":"BAD_REQUEST"')
    }
  })

  it("routes an absolute-form target by its authority and sends the origin-form path", async () => {
    const r = await rawExchange(
      port,
      "GET http://b.test/echo?x=1 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
    )
    expect(statuses(r.text)).toEqual([200])
    const body = JSON.parse(r.text.slice(r.text.indexOf("\r\n\r\n") + 4))
    expect(body).toMatchObject({ origin: "B", url: "/echo?x=1", headers: { host: "b.test" } })
  })
})

describe("http listener: a streaming reverse proxy", () => {
  it("carries every method, with and without bodies (undici)", async () => {
    const dispatcher = new Agent()
    for (const method of ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const) {
      const body = method === "GET" || method === "OPTIONS" ? undefined : `payload for ${method}`
      const r = await request(`http://127.0.0.1:${port}/echo?m=${method}`, {
        method,
        headers: { host: "a.test" },
        body,
        dispatcher
      })
      const j = (await r.body.json()) as { method: string; length: number; url: string }
      expect(r.statusCode).toBe(200)
      expect(j).toMatchObject({ method, url: `/echo?m=${method}`, length: body?.length ?? 0 })
    }
    const head = await request(`http://127.0.0.1:${port}/echo`, {
      method: "HEAD",
      headers: { host: "a.test" },
      dispatcher
    })
    expect(head.statusCode).toBe(200)
    expect(Number(head.headers["content-length"])).toBeGreaterThan(0)
    expect((await head.body.arrayBuffer()).byteLength).toBe(0)
    await dispatcher.close()
  })

  it("streams 0 B and 1 MB bodies both ways, chunked and with a length, intact", async () => {
    const mb = 1 << 20
    const zero = json(await send(port, { host: "a.test", method: "POST", body: Buffer.alloc(0) }))
    expect(zero.length).toBe(0)
    const fixedUp = json(
      await send(port, {
        host: "a.test",
        method: "POST",
        body: Buffer.concat([...Array(16)].map(() => Buffer.alloc(65536, 7)))
      })
    )
    expect(fixedUp.length).toBe(mb)
    // An async iterable body goes out chunked (no Content-Length).
    const chunkedUp = json(await send(port, { host: "a.test", method: "POST", body: pattern(mb) }))
    expect(chunkedUp).toMatchObject({ length: mb, sha256: patternHash(mb) })
    expect(chunkedUp.headers["transfer-encoding"]).toBe("chunked")
    for (const chunked of [false, true]) {
      const down = await send(port, { host: "a.test", path: `/bytes?n=${mb}${chunked ? "&chunked=1" : ""}` })
      expect(down.body.length).toBe(mb)
      expect(createHash("sha256").update(down.body).digest("hex")).toBe(patternHash(mb))
      expect(down.headers["transfer-encoding"]).toBe(chunked ? "chunked" : undefined)
    }
  })

  it("relays response trailers and request trailers", async () => {
    const down = await send(port, { host: "a.test", path: "/trailers" })
    expect(down.body.toString()).toBe("part one,part two")
    expect(down.trailers).toEqual({ "x-checksum": "abc123" })
    const up = await rawExchange(
      port,
      "POST /echo HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
        "5\r\nhello\r\n0\r\nx-sum: 42\r\n\r\n"
    )
    const body = JSON.parse(up.text.slice(up.text.indexOf("\r\n\r\n") + 4))
    expect(body).toMatchObject({ length: 5, trailers: { "x-sum": "42" } })
  })

  it("passes Expect: 100-continue through: the client sends its body after the origin's 100", async () => {
    const before = originA.continues()
    const r = await send(port, {
      host: "a.test",
      method: "PUT",
      headers: { expect: "100-continue", "content-length": 11 },
      body: "hello world",
      expectContinue: true
    })
    expect(r.status).toBe(200)
    expect(r.informational.map((i) => i.status)).toEqual([100])
    expect(json(r).length).toBe(11)
    expect(originA.continues()).toBe(before + 1)
  })

  it("relays 103 Early Hints, and 204/304 without bodies", async () => {
    const early = await send(port, { host: "a.test", path: "/early" })
    expect(early.informational).toEqual([
      { status: 103, headers: expect.objectContaining({ link: "</style.css>; rel=preload; as=style" }) }
    ])
    expect(early.body.toString()).toBe("after hints")
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    for (const code of [204, 304]) {
      const r = await send(port, { host: "a.test", path: `/status?code=${code}`, agent })
      expect(r.status).toBe(code)
      expect(r.body.length).toBe(0)
    }
    // The connection survived both bodiless answers.
    expect(json(await send(port, { host: "a.test", agent })).origin).toBe("A")
    agent.destroy()
  })

  it("keeps backend connections alive: 50 sequential requests over one client connection use one origin connection", async () => {
    const before = originB.connections()
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    const reuse: Array<string | string[] | undefined> = []
    for (let i = 0; i < 50; i++) {
      const r = await send(port, { host: "b.test", agent })
      expect(r.status).toBe(200)
      reuse.push(r.headers["x-proxy-upstream-connection"])
    }
    agent.destroy()
    expect(originB.connections() - before).toBeLessThanOrEqual(1)
    expect(reuse.slice(1).every((x) => x === "reused")).toBe(true)
  })

  it("pipelined requests are answered in order on one connection", async () => {
    const r = await rawExchange(port, [
      "GET /echo?1 HTTP/1.1\r\nHost: a.test\r\n\r\nGET /echo?2 HTTP/1.1\r\nHost: b.test\r\n\r\n",
      "GET /echo?3 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
    ])
    expect(statuses(r.text)).toEqual([200, 200, 200])
    expect([...r.text.matchAll(/"url":"([^"]+)"/g)].map((m) => m[1])).toEqual(["/echo?1", "/echo?2", "/echo?3"])
    expect(r.closed).toBe(true)
  })

  // From its second request on, a kept-alive connection reads into a buffer shared by all connections (h1.ts
  // readShared): a body spread over many reads, a pipelined pair and an upgrade must all come through intact.
  it("after a first request: a 256 KB body, pipelined requests and an upgrade on the same connection", async () => {
    const n = 256 * 1024
    const parts: Array<Buffer> = []
    for await (const part of pattern(n)) parts.push(part)
    const body = Buffer.concat(parts)
    const mask = [0x12, 0x34, 0x56, 0x78]
    const frame = Buffer.from(
      [0x81, 0x85, ...mask, ..."hello"].map((b, i) =>
        i < 6 ? (b as number) : (b as string).charCodeAt(0) ^ mask[(i - 6) % 4]!
      )
    )
    const r = await rawExchange(
      port,
      [
        "GET /echo?1 HTTP/1.1\r\nHost: a.test\r\n\r\n",
        Buffer.concat([Buffer.from(`POST /echo?2 HTTP/1.1\r\nHost: a.test\r\nContent-Length: ${n}\r\n\r\n`), body]),
        "GET /echo?3 HTTP/1.1\r\nHost: a.test\r\n\r\nGET /echo?4 HTTP/1.1\r\nHost: b.test\r\n\r\n",
        "GET /socket HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
          "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        frame
      ],
      { gapMs: 200 }
    )
    expect(statuses(r.text)).toEqual([200, 200, 200, 200, 101])
    expect([...r.text.matchAll(/"url":"([^"]+)"/g)].map((m) => m[1])).toEqual([
      "/echo?1",
      "/echo?2",
      "/echo?3",
      "/echo?4"
    ])
    expect(r.text).toContain(`"sha256":"${patternHash(n)}"`)
    const tunnel = r.text.slice(r.text.indexOf("\r\n\r\n", r.text.indexOf("HTTP/1.1 101")) + 4)
    expect(tunnel).toContain('{"xff":"127.0.0.1","host":"ws.test"}')
    expect(tunnel.endsWith("\x81\x05hello")).toBe(true)
  })

  it("serves 200 concurrent clients", async () => {
    const before = originA.requests()
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => send(port, { host: "a.test", path: `/echo?c=${i}` }))
    )
    expect(results.every((r) => r.status === 200)).toBe(true)
    expect(new Set(results.map((r) => json(r).url)).size).toBe(200)
    expect(originA.requests() - before).toBe(200)
  })

  it("reads a close-delimited (HTTP/1.0 style) response to its end and closes the client connection after it", async () => {
    const r = await send(port, { host: "raw.test", path: "/until-close" })
    expect(r.status).toBe(200)
    expect(r.body.toString()).toBe("read until the server closes")
    expect(r.headers.connection).toBe("close")
  })
})

describe("http listener: header hygiene", () => {
  it("strips hop-by-hop request fields and adds X-Forwarded-* and Forwarded", async () => {
    const r = json(
      await send(port, {
        host: "a.test:8080",
        headers: {
          connection: "keep-alive, x-secret",
          "x-secret": "hop only",
          "keep-alive": "timeout=5",
          te: "trailers",
          upgrade: "h2c",
          "proxy-authorization": "Basic Zm9vOmJhcg==",
          "proxy-connection": "keep-alive",
          "x-forwarded-for": "6.6.6.6",
          forwarded: "for=6.6.6.6",
          "x-end-to-end": "kept"
        }
      })
    )
    const h = r.headers
    for (const gone of ["x-secret", "keep-alive", "te", "upgrade", "proxy-authorization", "proxy-connection"]) {
      expect(h[gone], gone).toBeUndefined()
    }
    expect(h.connection).toBeUndefined()
    expect(h["x-end-to-end"]).toBe("kept")
    // Untrusted peers cannot inject a client address: their X-Forwarded-For and Forwarded are replaced.
    expect(h["x-forwarded-for"]).toBe("127.0.0.1")
    expect(h["x-forwarded-proto"]).toBe("http")
    expect(h["x-forwarded-host"]).toBe("a.test:8080")
    expect(h.forwarded).toBe('for=127.0.0.1;host="a.test:8080";proto=http')
  })

  it("strips hop-by-hop response fields and keeps the rest (repeated Set-Cookie too)", async () => {
    const agent = new http.Agent({ keepAlive: true })
    const r = await send(port, { host: "a.test", path: "/hop", agent })
    agent.destroy()
    expect(r.headers["x-hop-a"]).toBeUndefined()
    expect(r.headers["keep-alive"]).toBeUndefined()
    expect(r.headers["proxy-authenticate"]).toBeUndefined()
    expect(r.headers.connection).toBeUndefined()
    expect(r.headers["x-end-to-end"]).toBe("kept")
    expect(r.headers["set-cookie"]).toEqual(["a=1", "b=2"])
  })

  it("adds telemetry headers: route cache hit, upstream time, connection reuse", async () => {
    await send(port, { host: "b.test" })
    const r = await send(port, { host: "b.test" })
    expect(r.headers["x-proxy-cache"]).toBe("HIT")
    expect(Number(r.headers["x-proxy-upstream-time"])).toBeGreaterThanOrEqual(0)
    expect(["new", "reused"]).toContain(r.headers["x-proxy-upstream-connection"])
  })
})

describe("http listener: request smuggling defences", () => {
  const attempts: Record<string, string> = {
    "Content-Length and Transfer-Encoding together":
      "POST /echo HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "two different Content-Length values":
      "POST /echo HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd",
    "a signed Content-Length": "POST /echo HTTP/1.1\r\nHost: a.test\r\nContent-Length: +4\r\n\r\nabcd",
    "chunked twice": "POST /echo HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
    "an obfuscated chunked": "POST /echo HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "whitespace before the colon":
      "POST /echo HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    "obsolete line folding": "GET /echo HTTP/1.1\r\nHost: a.test\r\nX-A: 1\r\n folded\r\n\r\n",
    "a NUL in a field value": "GET /echo HTTP/1.1\r\nHost: a.test\r\nX-A: a\u0000b\r\n\r\n",
    "a bare LF": "GET /echo HTTP/1.1\r\nHost: a.test\nX-A: 1\r\n\r\n",
    "Transfer-Encoding in HTTP/1.0":
      "POST /echo HTTP/1.0\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "a bad chunk size":
      "POST /echo HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n4x\r\nabcd\r\n0\r\n\r\n",
    "chunk data not followed by CRLF":
      "POST /echo HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n0\r\n\r\n",
    "a garbage request line": "GET /echo HTTP/1.1 extra\r\nHost: a.test\r\n\r\n"
  }
  for (const [name, bytes] of Object.entries(attempts)) {
    it(`refuses ${name} with 4xx/5xx and closes, smuggling nothing`, async () => {
      const smuggled = "GET /echo?smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n"
      const before = originA.requests()
      const r = await rawExchange(port, bytes + smuggled)
      const codes = statuses(r.text)
      expect(codes.length).toBe(1)
      expect(codes[0]).toBeGreaterThanOrEqual(400)
      expect(r.closed).toBe(true)
      expect(r.text).not.toContain("smuggled")
      // Chunk-level garbage is found once the head went out; everything else never reaches the origin.
      if (!name.includes("chunk")) expect(originA.requests()).toBe(before)
    })
  }

  it("answers an oversized head with 431 and a Transfer-Encoding it does not relay with 501", async () => {
    const big = await rawExchange(port, `GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: ${"x".repeat(10_000)}\r\n\r\n`)
    expect(statuses(big.text)).toEqual([431])
    expect(big.text).toContain('"reason":"HEADERS_TOO_LARGE"')
    const gzip = await rawExchange(
      port,
      "POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
    )
    expect(statuses(gzip.text)).toEqual([501])
  })

  it("times out a slow-loris client that never finishes its head", async () => {
    const started = Date.now()
    const r = await rawExchange(
      port,
      ["GET / HTTP/1.1\r\n", "Host: a.test\r\n", "X-A: 1\r\n", "X-B: 2\r\n", "X-C: 3\r\n"],
      {
        gapMs: 400,
        quietMs: 4_000
      }
    )
    expect(statuses(r.text)).toEqual([408])
    expect(r.closed).toBe(true)
    expect(Date.now() - started).toBeLessThan(4_000)
  })
})

describe("http listener: errors as statuses with JSON bodies", () => {
  const cases: Array<[string, string, number, string]> = [
    ["unknown host", "nobody.test", 404, "NOT_FOUND"],
    ["resolver FORBIDDEN", "banned.test", 403, "FORBIDDEN"],
    ["SSRF guard", "meta.test", 403, "FORBIDDEN"],
    ["cold backend that never wakes", "cold.test", 503, "UNAVAILABLE"],
    ["resolver timeout", "slow.test", 504, "TIMEOUT"],
    ["resolver crash", "broken.test", 500, "INTERNAL"],
    ["backend refuses connections", "dead.test", 502, "CONNECT_FAILED"]
  ]
  for (const [name, host, status, reason] of cases) {
    it(`${name} → ${status} ${reason}`, async () => {
      const r = await send(port, { host })
      expect(r.status).toBe(status)
      expect(r.headers["content-type"]).toBe("application/json")
      const body = json(r)
      expect(body.reason).toBe(reason)
      expect(typeof body.error).toBe("string")
      // coldStart.timeout 1: "come back in half of it", at least a second.
      if (status === 503) expect(r.headers["retry-after"]).toBe("1")
    })
  }

  it("upstream timeout → 504, broken upstream responses → 502, CONNECT → 405", async () => {
    const slow = await send(port, { host: "a.test", path: "/slow?ms=3000" })
    expect(slow.status).toBe(504)
    expect(json(slow).reason).toBe("UPSTREAM_TIMEOUT")
    for (const path of ["/bad-status", "/cl-te", "/two-cl", "/hangup", "/unasked-101"]) {
      const r = await send(port, { host: "raw.test", path })
      expect(r.status, path).toBe(502)
      expect(json(r).reason, path).toBe("BAD_GATEWAY")
    }
    // A body that breaks off after the head was sent: the client sees a cut connection, not a wrong body.
    await expect(send(port, { host: "raw.test", path: "/truncated" })).rejects.toThrow()
    await expect(send(port, { host: "raw.test", path: "/bad-chunk" })).rejects.toThrow()
    const connect = await rawExchange(port, "CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n")
    expect(statuses(connect.text)).toEqual([405])
  })

  it("counts and logs every refusal by reason", async () => {
    await send(port, { host: "nobody2.test" })
    const text = await metricsText()
    expect(errorCount(text, "not_found")).toBeGreaterThanOrEqual(2)
    expect(errorCount(text, "bad_request")).toBeGreaterThanOrEqual(1)
    expect(errorCount(text, "bad_gateway")).toBeGreaterThanOrEqual(1)
    const line = proxy.logs.find((l) => l.event === "request refused" && l.resource === "nobody2.test")
    expect(line).toMatchObject({
      level: "info",
      listener: "http",
      status: 404,
      reason: "NOT_FOUND",
      source: "resolver"
    })
  })
})

describe("http listener: WebSocket", () => {
  it("relays an upgraded connection: 10k echoed messages", async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/socket`, { headers: { host: "ws.test" } })
    const messages: Array<string> = []
    let resolveAll: () => void = () => {}
    const all = new Promise<void>((r) => (resolveAll = r))
    ws.on("message", (data) => {
      messages.push(String(data))
      if (messages.length === 10_001) resolveAll()
    })
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve())
      ws.once("error", reject)
    })
    for (let i = 0; i < 10_000; i++) ws.send(`message ${i}`)
    await all
    expect(JSON.parse(messages[0]!)).toEqual({ xff: "127.0.0.1", host: "ws.test" })
    expect(messages[1]).toBe("message 0")
    expect(messages[10_000]).toBe("message 9999")
    ws.close()
  })

  it("answers an upgrade to an unknown host with 404 and no switch", async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { headers: { host: "nobody.test" } })
    const status = await new Promise<number>((resolve) => {
      ws.once("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0))
      ws.once("error", () => resolve(-1))
    })
    expect(status).toBe(404)
  })
})

describe("http listener: retries and options", () => {
  it("retries an idempotent request once when a reused backend connection closes unanswered; never a POST", async () => {
    const served = new WeakMap<object, number>()
    const flaky = await startRawOrigin({
      "/flaky": (s) => {
        const n = (served.get(s) ?? 0) + 1
        served.set(s, n)
        // Each connection answers once, then hangs up on the next request: the keep-alive race, on purpose.
        if (n === 1) s.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        else s.destroy()
      }
    })
    const p = await startTestProxy({
      listeners: { http: { host: "127.0.0.1", port: 0, telemetry: true } },
      routes: { "flaky.test": `127.0.0.1:${flaky.port}` },
      ssrf: { allow: ["127.0.0.0/8"] }
    })
    try {
      const first = await send(p.port("http"), { host: "flaky.test", path: "/flaky" })
      const second = await send(p.port("http"), { host: "flaky.test", path: "/flaky" })
      expect([first.status, second.status]).toEqual([200, 200])
      expect(second.body.toString()).toBe("ok")
      const post = await send(p.port("http"), { host: "flaky.test", path: "/flaky", method: "POST", body: "x" })
      expect(post.status).toBe(502)
    } finally {
      await p.stop()
      await flaky.close()
    }
  })

  it("trustForwarded extends the chain from trusted peers; preserveHost: false sends the backend's own host", async () => {
    const p = await startTestProxy({
      listeners: { http: { host: "127.0.0.1", port: 0, trustForwarded: ["127.0.0.0/8"], preserveHost: false } },
      routes: { "a.test": `127.0.0.1:${originA.port}` },
      ssrf: { allow: ["127.0.0.0/8"] }
    })
    try {
      const r = await send(p.port("http"), {
        host: "a.test",
        headers: {
          "x-forwarded-for": "203.0.113.7",
          "x-forwarded-proto": "https",
          "x-forwarded-host": "www.a.test",
          forwarded: "for=203.0.113.7;proto=https"
        }
      })
      const h = json(r).headers
      expect(h.host).toBe(`127.0.0.1:${originA.port}`)
      expect(h["x-forwarded-for"]).toBe("203.0.113.7, 127.0.0.1")
      expect(h["x-forwarded-proto"]).toBe("https")
      expect(h["x-forwarded-host"]).toBe("www.a.test")
      expect(h.forwarded).toBe("for=203.0.113.7;proto=https, for=127.0.0.1;host=a.test;proto=http")
      expect(r.headers["x-proxy-cache"]).toBeUndefined()
    } finally {
      await p.stop()
    }
  })

  it("benchmark modes: directResponse answers alone, fixedBackend ignores Host", async () => {
    const direct = await startTestProxy({ listeners: { http: { host: "127.0.0.1", port: 0, directResponse: true } } })
    const fixed = await startTestProxy({
      listeners: { http: { host: "127.0.0.1", port: 0, fixedBackend: `127.0.0.1:${originB.port}`, fastPath: true } }
    })
    try {
      const d = await send(direct.port("http"), { host: "anything.test" })
      expect([d.status, d.body.toString()]).toEqual([200, "ok\n"])
      const f = await send(fixed.port("http"), { host: "unrouted.test" })
      expect(json(f).origin).toBe("B")
    } finally {
      await Promise.all([direct.stop(), fixed.stop()])
    }
  })

  it("drains: idle keep-alive connections close at once, a request in flight finishes", async () => {
    const p = await startTestProxy({
      listeners: { http: { host: "127.0.0.1", port: 0 } },
      routes: { "a.test": `127.0.0.1:${originA.port}` },
      ssrf: { allow: ["127.0.0.0/8"] },
      timeouts: { drain: 5 }
    })
    const agent = new http.Agent({ keepAlive: true })
    await send(p.port("http"), { host: "a.test", agent })
    const inFlight = send(p.port("http"), { host: "a.test", path: "/slow?ms=300" })
    await new Promise((r) => setTimeout(r, 50))
    const started = Date.now()
    await p.stop()
    expect((await inFlight).body.toString()).toBe("slow")
    expect(Date.now() - started).toBeLessThan(2_000)
    agent.destroy()
  })
})

describe("http listener: connection limits, breaker, half-close", () => {
  it("answers 503 with Retry-After beyond listeners.http.maxConnections", async () => {
    const p = await startTestProxy({
      listeners: { http: { host: "127.0.0.1", port: 0, maxConnections: 1 } },
      routes: { "a.test": `127.0.0.1:${originA.port}` },
      ssrf: { allow: ["127.0.0.0/8"] }
    })
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    try {
      expect((await send(p.port("http"), { host: "a.test", agent })).status).toBe(200)
      const second = await send(p.port("http"), { host: "a.test" })
      expect(second.status).toBe(503)
      expect(second.headers["retry-after"]).toBe("1")
      expect(json(second).reason).toBe("UNAVAILABLE")
    } finally {
      agent.destroy()
      await p.stop()
    }
  })

  it("opens the circuit breaker after repeated connect failures: 502s, then 503 at once", async () => {
    const codes: Array<number> = []
    for (let i = 0; i < 7; i++) codes.push((await send(port, { host: "dead.test", path: `/b${i}` })).status)
    expect(codes).toContain(502)
    expect(codes[codes.length - 1]).toBe(503)
  })

  it("answers a client that half-closes right after its request, then closes", async () => {
    const r = await new Promise<string>((resolve, reject) => {
      const s = createConnection(port, "127.0.0.1", () => s.end("GET /echo HTTP/1.1\r\nHost: a.test\r\n\r\n"))
      let text = ""
      s.on("data", (d) => (text += d.toString("latin1")))
      s.on("close", () => resolve(text))
      s.on("error", reject)
    })
    expect(statuses(r)).toEqual([200])
    expect(r).toContain('"origin":"A"')
  })
})
