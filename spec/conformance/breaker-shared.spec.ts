// One circuit breaker per backend address, whichever listener reaches it: a real node:http backend on a fixed
// loopback port, named "localhost:<port>" by both a tcp route and an HTTP route of one proxy. Failures through either
// listener open the one breaker; then both refuse (HTTP: 503 JSON with Retry-After; tcp: closed, logged UNAVAILABLE),
// and /admin/backends lists the backend once.
import * as http from "node:http"
import * as net from "node:net"
import { afterEach, beforeAll, describe, expect, it } from "vitest"
import { json, send } from "../listeners/http/support.ts"
import { freePort } from "../support/backends/local.ts"
import { startTestProxy, type TestProxy } from "../support/proxy.ts"

let port: number
let backend: http.Server | undefined
const cleanup: Array<() => Promise<void> | void> = []

beforeAll(async () => {
  port = await freePort()
})
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
  await stopBackend()
})

const startBackend = async () => {
  const server = http.createServer((_req, res) => res.end("backend up"))
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(port, "127.0.0.1", resolve)
  })
  backend = server
}
const stopBackend = () =>
  new Promise<void>((resolve) => {
    const server = backend
    backend = undefined
    if (server === undefined) return resolve()
    server.closeAllConnections()
    server.close(() => resolve())
  })

const startProxy = async (): Promise<TestProxy> => {
  const p = await startTestProxy({
    listeners: {
      http: { host: "127.0.0.1", port: 0 },
      tcp: { host: "127.0.0.1", port: 0, route: "app" }
    },
    // A host name, not an IP: the key is the vetted address, whatever name a route gives it.
    routes: { app: `localhost:${port}`, "web.test": `localhost:${port}` },
    ssrf: { allow: ["127.0.0.0/8"] },
    breaker: { failureThreshold: 2, cooldown: 1 }
  })
  cleanup.push(() => p.stop())
  return p
}

/** An HTTP/1.0 request through the tcp listener: the backend's status line, or "closed" when refused. */
const viaTcp = (p: TestProxy) =>
  new Promise<string>((resolve) => {
    const s = net.connect(p.port("tcp"), "127.0.0.1", () => s.write("GET / HTTP/1.0\r\nHost: app\r\n\r\n"))
    let text = ""
    s.on("data", (d) => (text += d))
    s.once("close", () => resolve(text === "" ? "closed" : text.slice(0, text.indexOf("\r\n"))))
    s.once("error", () => {})
  })

const viaHttp = (p: TestProxy) => send(p.port("http"), { host: "web.test", path: "/" })

const backends = async (p: TestProxy) =>
  ((await (await fetch(`${p.adminUrl}/admin/backends`)).json()) as { backends: Array<Record<string, unknown>> })
    .backends

const tcpRefusals = (p: TestProxy) =>
  p.logs.filter((l) => l.event === "connection refused").map((l) => [l.reason, String(l.message)])

describe("one breaker per backend address, shared by the tcp and HTTP listeners", () => {
  it("failures through HTTP open it: HTTP answers 503, the tcp listener refuses too; one row in /admin/backends", async () => {
    await startBackend()
    const p = await startProxy()
    expect((await viaHttp(p)).status).toBe(200)
    expect(await viaTcp(p)).toBe("HTTP/1.1 200 OK")

    await stopBackend()
    const failed = [await viaHttp(p), await viaHttp(p)]
    expect(failed.map((r) => [r.status, json(r).reason])).toEqual([
      [502, "CONNECT_FAILED"],
      [502, "CONNECT_FAILED"]
    ])
    const open = await viaHttp(p)
    expect(open.status).toBe(503)
    expect(open.headers["content-type"]).toBe("application/json")
    expect(open.headers["retry-after"]).toBe("1")
    expect(json(open).reason).toBe("UNAVAILABLE")

    // The tcp listener never failed a dial itself, and refuses at once.
    expect(await viaTcp(p)).toBe("closed")
    expect(tcpRefusals(p)).toEqual([["UNAVAILABLE", expect.stringContaining("circuit open")]])

    expect(await backends(p)).toEqual([
      expect.objectContaining({ backend: `127.0.0.1:${port}`, state: "open", totalFailures: 2 })
    ])
  })

  it("failures through tcp open it: HTTP answers 503 at once; a success through HTTP closes it for tcp too", async () => {
    const p = await startProxy()
    expect(await viaTcp(p)).toBe("closed")
    expect(await viaTcp(p)).toBe("closed")
    expect(tcpRefusals(p).map(([reason]) => reason)).toEqual(["CONNECT_FAILED", "CONNECT_FAILED"])

    const open = await viaHttp(p)
    expect(open.status).toBe(503)
    expect(json(open).reason).toBe("UNAVAILABLE")
    expect(p.logs.filter((l) => l.event === "request refused").map((l) => l.reason)).toEqual(["UNAVAILABLE"])
    expect(await backends(p)).toEqual([
      expect.objectContaining({ backend: `127.0.0.1:${port}`, state: "open", consecutiveFailures: 2 })
    ])

    // Back up, and past the cooldown: HTTP's trial closes the breaker, and the tcp listener dials again.
    await startBackend()
    await new Promise((r) => setTimeout(r, 1_100))
    expect((await viaHttp(p)).status).toBe(200)
    expect(await backends(p)).toEqual([expect.objectContaining({ backend: `127.0.0.1:${port}`, state: "closed" })])
    expect(await viaTcp(p)).toBe("HTTP/1.1 200 OK")
  })
})
