// What the HTTP listener normalises between client and origin: a repeated Content-Length becomes one value (the
// node:http origin refuses lists), and h2c upgrades are stripped so no tunnel the proxy cannot see into is opened
// (raw sockets, undici, curl --http2, a ws origin, scripted origins for answers no real server would give).
import { execFile, execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import { request } from "undici"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  type Origin,
  rawExchange,
  startOrigin,
  startRawOrigin,
  startWsOrigin,
  statuses
} from "../listeners/http/support.ts"
import { startTestProxy, type TestProxy } from "../support/proxy.ts"

let origin: Origin
let wsOrigin: { port: number; close: () => Promise<void> }
let raw: { port: number; close: () => Promise<void> }
let proxy: TestProxy
let port: number

beforeAll(async () => {
  ;[origin, wsOrigin] = await Promise.all([startOrigin("A"), startWsOrigin()])
  raw = await startRawOrigin({
    "/cl-list": "HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\nhello",
    "/cl-twice": "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 5\r\n\r\nhello",
    "/h2c-101": "HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\nconnection: upgrade\r\n\r\n",
    "/other-101": "HTTP/1.1 101 Switching Protocols\r\nupgrade: something-else\r\nconnection: upgrade\r\n\r\n"
  })
  proxy = await startTestProxy({
    listeners: { http: { host: "127.0.0.1", port: 0 } },
    routes: {
      "a.test": `127.0.0.1:${origin.port}`,
      "ws.test": `127.0.0.1:${wsOrigin.port}`,
      "raw.test": `127.0.0.1:${raw.port}`
    },
    ssrf: { allow: ["127.0.0.0/8"] }
  })
  port = proxy.port("http")
})

afterAll(async () => {
  await proxy?.stop()
  await Promise.all([origin?.close(), wsOrigin?.close(), raw?.close()])
})

/** The origin's JSON echo inside a raw answer. */
const echoed = (text: string) => JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4))

describe("http listener: Content-Length normalised", () => {
  it("forwards a list of equal values, or the same field twice, as one value the origin reads (200)", async () => {
    for (const field of ["Content-Length: 5, 5", "Content-Length: 5,5", "Content-Length: 5\r\nContent-Length: 5"]) {
      const r = await rawExchange(
        port,
        `POST /echo HTTP/1.1\r\nHost: a.test\r\n${field}\r\nConnection: close\r\n\r\nhello`
      )
      expect(statuses(r.text), field).toEqual([200])
      const body = echoed(r.text)
      expect(body.headers["content-length"], field).toBe("5")
      expect(body.length).toBe(5)
      expect(body.sha256).toBe(createHash("sha256").update("hello").digest("hex"))
    }
  })

  it("refuses a list of different values with 400 before it reaches the origin", async () => {
    const before = origin.requests()
    const r = await rawExchange(port, "POST /echo HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5, 6\r\n\r\nhello!")
    expect(statuses(r.text)).toEqual([400])
    expect(r.closed).toBe(true)
    expect(origin.requests()).toBe(before)
  })

  it("gives the client one value when the origin repeats it (undici reads the answer)", async () => {
    for (const path of ["/cl-list", "/cl-twice"]) {
      const r = await request(`http://127.0.0.1:${port}${path}`, { headers: { host: "raw.test" } })
      expect(r.statusCode, path).toBe(200)
      expect(r.headers["content-length"], path).toBe("5")
      expect(await r.body.text(), path).toBe("hello")
    }
  })
})

const hasCurl = (() => {
  try {
    execFileSync("curl", ["--version"], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
})()

describe("http listener: h2c upgrades stripped", () => {
  it("answers an Upgrade: h2c request in HTTP/1.1; the origin sees no Upgrade or HTTP2-Settings", async () => {
    const heads = [
      "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
      // HTTP2-Settings goes even when Connection does not name it.
      "Connection: upgrade\r\nUpgrade: H2C\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"
    ]
    for (const fields of heads) {
      const r = await rawExchange(port, `GET /echo HTTP/1.1\r\nHost: a.test\r\n${fields}\r\n\r\n`, { quietMs: 500 })
      expect(statuses(r.text), fields).toEqual([200])
      expect(r.text.startsWith("HTTP/1.1 200")).toBe(true)
      const seen = echoed(r.text).headers
      expect(seen.upgrade, fields).toBeUndefined()
      expect(seen["http2-settings"], fields).toBeUndefined()
      expect(String(seen.connection ?? "")).not.toMatch(/upgrade/i)
    }
  })

  it("keeps the other protocols of an Upgrade list: h2c, websocket reaches the ws origin as websocket (101)", async () => {
    const key = "dGhlIHNhbXBsZSBub25jZQ=="
    const r = await rawExchange(
      port,
      "GET /socket HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c, websocket\r\n" +
        `HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`,
      { quietMs: 500 }
    )
    expect(statuses(r.text)).toEqual([101])
    expect(r.text.toLowerCase()).toContain("upgrade: websocket")
    const accept = createHash("sha1").update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest("base64")
    expect(r.text).toContain(`Sec-WebSocket-Accept: ${accept}`)
    // The tunnel is open: the origin's first WebSocket message came through it.
    expect(r.text).toContain('"host":"ws.test"')
  })

  it("never opens a tunnel for a 101 the client did not ask for: h2c, or another protocol than offered (502)", async () => {
    const plain = await rawExchange(port, "GET /h2c-101 HTTP/1.1\r\nHost: raw.test\r\n\r\n", { quietMs: 500 })
    const h2c = await rawExchange(
      port,
      "GET /h2c-101 HTTP/1.1\r\nHost: raw.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n" +
        "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
      { quietMs: 500 }
    )
    const other = await rawExchange(
      port,
      "GET /other-101 HTTP/1.1\r\nHost: raw.test\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
      { quietMs: 500 }
    )
    for (const r of [plain, h2c, other]) {
      expect(statuses(r.text)).toEqual([502])
      expect(r.text).toContain('"reason":"BAD_GATEWAY"')
    }
    // The client asked to switch and was refused: its connection cannot carry another request.
    expect(other.closed).toBe(true)
  })

  it.skipIf(!hasCurl)("curl --http2 on http:// (an h2c upgrade) gets its answer in HTTP/1.1", async () => {
    const r = await new Promise<{ stdout: string; stderr: string }>((resolve, reject) =>
      execFile(
        "curl",
        [
          "-sS",
          "-v",
          "--http2",
          "-H",
          "Host: a.test",
          "-w",
          "\n%{http_version} %{http_code}",
          `http://127.0.0.1:${port}/echo`
        ],
        { timeout: 20_000 },
        (error, stdout, stderr) => (error ? reject(error) : resolve({ stdout, stderr }))
      )
    )
    // curl did offer the upgrade; the proxy answered in HTTP/1.1 and the origin never saw the offer.
    expect(r.stderr).toMatch(/Upgrade: h2c/i)
    const [body, tail] = r.stdout.split("\n")
    expect(tail).toBe("1.1 200")
    const seen = JSON.parse(body!)
    expect(seen.origin).toBe("A")
    expect(seen.headers.upgrade).toBeUndefined()
    expect(seen.headers["http2-settings"]).toBeUndefined()
  })
})
