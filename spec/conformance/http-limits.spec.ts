// limits.perResource and the per-resource metrics on the HTTP listener, with real clients (undici, node:http2, ws)
// and real origins (node:http, ws). What counts is a request in flight (a WebSocket for its whole life), as nginx's
// limit_conn counts HTTP: an idle kept-alive connection holds no place, and each HTTP/2 stream holds one.
import * as http2 from "node:http2"
import { Agent, request } from "undici"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import WebSocket from "ws"
import { h2request, type Origin, startOrigin, startWsOrigin } from "../listeners/http/support.ts"
import { eventually, startTestProxy, type TestProxy } from "../support/proxy.ts"

let origin: Origin
let wsOrigin: { port: number; close: () => Promise<void> }
let proxy: TestProxy
let port: number

beforeAll(async () => {
  ;[origin, wsOrigin] = await Promise.all([startOrigin("A"), startWsOrigin()])
  const at = `127.0.0.1:${origin.port}`
  proxy = await startTestProxy({
    listeners: { http: { host: "127.0.0.1", port: 0 } },
    routes: { "a.test": at, "b.test": at, "h2.test": at, "m.test": at, "ws.test": `127.0.0.1:${wsOrigin.port}` },
    ssrf: { allow: ["127.0.0.0/8"] },
    limits: { perResource: 2 },
    metrics: { perResource: 20 }
  })
  port = proxy.port("http")
})

afterAll(async () => {
  await proxy?.stop()
  await Promise.all([origin?.close(), wsOrigin?.close()])
})

const get = (host: string, path: string, dispatcher: Agent) =>
  request(`http://127.0.0.1:${port}${path}`, { headers: { host }, dispatcher }).then(async (r) => ({
    status: r.statusCode,
    retryAfter: r.headers["retry-after"],
    text: await r.body.text()
  }))

const metricsText = () => fetch(`${proxy.adminUrl}/metrics`).then((r) => r.text())
const series = (text: string, name: string) =>
  Number(new RegExp(`^${name.replace(/[{}]/g, "\\$&")} (\\d+(?:\\.\\d+)?)`, "m").exec(text)?.[1] ?? Number.NaN)

describe("http listener: limits.perResource counts requests in flight", () => {
  it("answers 503 + Retry-After in JSON over the limit, other resources go on, and the place frees at the answer", async () => {
    const agent = new Agent({ connections: 8 })
    try {
      const requestsBefore = origin.requests()
      const slow = [get("a.test", "/slow?ms=1500", agent), get("a.test", "/slow?ms=1500", agent)]
      await eventually(() => origin.requests() === requestsBefore + 2)
      const third = await get("a.test", "/echo", agent)
      expect(third.status).toBe(503)
      expect(third.retryAfter).toBe("1")
      const body = JSON.parse(third.text) as Record<string, string>
      expect(body).toMatchObject({
        reason: "UNAVAILABLE",
        error: expect.stringContaining("a.test is at its limit of 2")
      })
      expect(body.ref).toMatch(/^[0-9a-f]{12}$/)
      // Another resource has places of its own.
      expect((await get("b.test", "/echo", agent)).status).toBe(200)
      expect((await Promise.all(slow)).map((a) => a.text)).toEqual(["slow", "slow"])
      // The agent keeps its connections open and idle now: they hold no place.
      const again = await Promise.all([get("a.test", "/echo", new Agent()), get("a.test", "/echo", new Agent())])
      expect(again.map((a) => a.status)).toEqual([200, 200])
      expect(proxy.logs.some((l) => l.event === "request refused" && l.reason === "UNAVAILABLE")).toBe(true)
    } finally {
      await agent.close()
    }
  })

  it("counts each HTTP/2 stream: the third concurrent stream to one resource gets 503 + Retry-After", async () => {
    const session = http2.connect(`http://127.0.0.1:${port}`)
    try {
      const answers = await Promise.all(
        Array.from({ length: 3 }, () => h2request(session, { ":path": "/slow?ms=800", ":authority": "h2.test" }))
      )
      const byStatus = answers.map((a) => a.status).sort()
      expect(byStatus).toEqual([200, 200, 503])
      const refused = answers.find((a) => a.status === 503)!
      expect(refused.headers["retry-after"]).toBe("1")
      expect(JSON.parse(refused.body.toString())).toMatchObject({ reason: "UNAVAILABLE" })
      // Streams that ended gave their places back.
      const next = await h2request(session, { ":path": "/echo", ":authority": "h2.test" })
      expect(next.status).toBe(200)
    } finally {
      session.close()
    }
  })

  it("holds a place for a WebSocket's whole life", async () => {
    const open = () =>
      new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { headers: { host: "ws.test" } })
        ws.once("message", () => resolve(ws))
        ws.once("error", reject)
      })
    const sockets = [await open(), await open()]
    const agent = new Agent()
    try {
      expect((await get("ws.test", "/", agent)).status).toBe(503)
      sockets[0]!.close()
      await eventually(async () => (await get("ws.test", "/", agent)).status === 200)
    } finally {
      for (const ws of sockets) ws.close()
      await agent.close()
    }
  })
})

describe("http listener: per-resource metrics and the handshake histogram", () => {
  it("counts each request of a resource, its bytes both ways, and each request's accept → backend time", async () => {
    const agent = new Agent()
    try {
      const before = await metricsText()
      const handshakes = series(before, 'polyproxy_handshake_duration_ms_count{listener="http",protocol="http"}')
      for (let i = 0; i < 5; i++) {
        const r = await request(`http://127.0.0.1:${port}/echo`, {
          method: "POST",
          headers: { host: "m.test" },
          body: "x".repeat(1000),
          dispatcher: agent
        })
        expect(r.statusCode).toBe(200)
        await r.body.text()
      }
      const text = await metricsText()
      expect(series(text, 'polyproxy_resource_connections_total{resource="m.test"}')).toBe(5)
      // Five heads and bodies of 1000 bytes each way at least.
      expect(series(text, 'polyproxy_resource_bytes_total{resource="m.test",direction="from_client"}')).toBeGreaterThan(
        5_000
      )
      expect(
        series(text, 'polyproxy_resource_bytes_total{resource="m.test",direction="from_backend"}')
      ).toBeGreaterThan(5 * 200)
      expect(series(text, 'polyproxy_handshake_duration_ms_count{listener="http",protocol="http"}') - handshakes).toBe(
        5
      )
    } finally {
      await agent.close()
    }
  })
})
