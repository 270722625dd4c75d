// `listeners.http.directResponse: { status, body }`: the proxy answers every request itself (no Resolver, no backend),
// to HTTP/1.1 on a kept-alive connection and to HTTP/2, HEAD without the body, 204 without any content field.
import * as http2 from "node:http2"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { rawExchange } from "../listeners/http/support.ts"
import { startTestProxy, type TestProxy } from "../support/proxy.ts"

let maintenance: TestProxy
let noContent: TestProxy

const body = "down for maintenance — back at 06:00\n"
const length = Buffer.byteLength(body)

beforeAll(async () => {
  ;[maintenance, noContent] = await Promise.all([
    startTestProxy({ listeners: { http: { host: "127.0.0.1", port: 0, directResponse: { status: 503, body } } } }),
    startTestProxy({ listeners: { http: { host: "127.0.0.1", port: 0, directResponse: { status: 204 } } } })
  ])
})
afterAll(async () => {
  await Promise.all([maintenance.stop(), noContent.stop()])
})

describe("directResponse", () => {
  it("answers HTTP/1.1 requests on one kept-alive connection, HEAD with the head only", async () => {
    const r = await rawExchange(
      maintenance.port("http"),
      "GET /anything HTTP/1.1\r\nhost: tenant.test\r\n\r\nHEAD / HTTP/1.1\r\nhost: other.test\r\n\r\n",
      { quietMs: 300 }
    )
    const head = `HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${length}\r\n\r\n`
    expect(r.text).toBe(Buffer.from(`${head}${body}${head}`, "utf8").toString("latin1"))
    expect(r.closed).toBe(false)
  })

  it("closes after answering a request whose body it did not read, and says so", async () => {
    const r = await rawExchange(
      maintenance.port("http"),
      "POST /upload HTTP/1.1\r\nhost: tenant.test\r\ncontent-length: 100000\r\n\r\npartial",
      { quietMs: 1_000 }
    )
    expect(r.text).toContain("HTTP/1.1 503 Service Unavailable\r\n")
    expect(r.text).toContain("connection: close\r\n")
    expect(r.closed).toBe(true)
  })

  it("answers HTTP/2 streams (h2c) the same", async () => {
    const session = http2.connect(`http://127.0.0.1:${maintenance.port("http")}`)
    try {
      const answer = await new Promise<{ headers: http2.IncomingHttpHeaders; text: string }>((resolve, reject) => {
        const req = session.request({ ":path": "/x", ":authority": "tenant.test" })
        let text = ""
        let headers: http2.IncomingHttpHeaders = {}
        req.setEncoding("utf8")
        req.on("response", (h) => (headers = h))
        req.on("data", (d: string) => (text += d))
        req.on("end", () => resolve({ headers, text }))
        req.on("error", reject)
        req.end()
      })
      expect(answer.headers[":status"]).toBe(503)
      expect(answer.headers["content-type"]).toBe("text/plain; charset=utf-8")
      expect(answer.headers["content-length"]).toBe(String(length))
      expect(answer.text).toBe(body)
    } finally {
      session.close()
    }
  })

  it("204: no content and no Content-Length", async () => {
    const r = await rawExchange(noContent.port("http"), "GET / HTTP/1.1\r\nhost: a.test\r\n\r\n", { quietMs: 300 })
    expect(r.text).toBe("HTTP/1.1 204 No Content\r\n\r\n")
  })
})
