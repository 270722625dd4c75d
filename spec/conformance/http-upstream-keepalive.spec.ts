// `listeners.http.upstream.keepAlive: false`: every request gets its own backend connection and tells the backend
// `Connection: close`, while the client keeps its own connection; the default pools and reuses.
import * as http from "node:http"
import * as http2 from "node:http2"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { json, type Origin, send, startOrigin } from "../listeners/http/support.ts"
import { startTestProxy, type TestProxy } from "../support/proxy.ts"

let origin: Origin
let pooled: TestProxy
let closing: TestProxy

const proxy = (upstream: Record<string, unknown>) =>
  startTestProxy({
    listeners: { http: { host: "127.0.0.1", port: 0, upstream } },
    routes: { "a.test": `127.0.0.1:${origin.port}` },
    ssrf: { allow: ["127.0.0.0/8"] }
  })

beforeAll(async () => {
  origin = await startOrigin("A")
  ;[pooled, closing] = await Promise.all([proxy({}), proxy({ keepAlive: false })])
})
afterAll(async () => {
  await Promise.all([pooled.stop(), closing.stop()])
  await origin.close()
})

/** Three requests in a row on one client connection; what the origin saw of each, and its new connections. */
const threeRequests = async (p: TestProxy) => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  const before = origin.connections()
  const seen: Array<Record<string, unknown> & { headers: Record<string, string> }> = []
  const clientSockets = new Set<unknown>()
  agent.on("free", (socket) => clientSockets.add(socket))
  try {
    for (let i = 0; i < 3; i++) {
      const r = await send(p.port("http"), { host: "a.test", agent })
      expect(r.status).toBe(200)
      seen.push(json(r))
    }
  } finally {
    agent.destroy()
  }
  return { seen, backendConnections: origin.connections() - before, clientConnections: clientSockets.size }
}

describe("upstream.keepAlive", () => {
  it("default: one pooled backend connection, no Connection field sent", async () => {
    const r = await threeRequests(pooled)
    expect(r.clientConnections).toBe(1)
    expect(r.backendConnections).toBe(1)
    expect(r.seen.map((s) => s.headers.connection)).toEqual([undefined, undefined, undefined])
  })

  it("false: a backend connection per request, each sent Connection: close; the client keeps its one", async () => {
    const r = await threeRequests(closing)
    expect(r.clientConnections).toBe(1)
    expect(r.backendConnections).toBe(3)
    expect(r.seen.map((s) => s.headers.connection)).toEqual(["close", "close", "close"])
  })

  it("false: HTTP/2 streams to an HTTP/1.1 backend get Connection: close too", async () => {
    const before = origin.connections()
    const session = http2.connect(`http://127.0.0.1:${closing.port("http")}`)
    try {
      for (let i = 0; i < 2; i++) {
        const text = await new Promise<string>((resolve, reject) => {
          const req = session.request({ ":path": "/echo", ":authority": "a.test" })
          let body = ""
          req.setEncoding("utf8")
          req.on("data", (d: string) => (body += d))
          req.on("end", () => resolve(body))
          req.on("error", reject)
          req.end()
        })
        expect((JSON.parse(text) as { headers: Record<string, string> }).headers.connection).toBe("close")
      }
    } finally {
      session.close()
    }
    expect(origin.connections() - before).toBe(2)
  })
})
