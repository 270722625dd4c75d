// The admin API on a running proxy: backends, stats, purge, drain, and the bearer token.
import * as net from "node:net"
import { afterAll, describe, expect, it } from "vitest"
import { Resolver } from "../../src/services/Resolver.ts"
import { ping } from "../support/net.ts"
import { startTestProxy, type TestProxy } from "../support/proxy.ts"

let proxy: TestProxy
let backend: net.Server
const table: Record<string, string> = {}
let resolves = 0
afterAll(async () => {
  await proxy?.stop()
  backend?.close()
})

const admin = (path: string, init: RequestInit = {}, token = "s3cret") =>
  fetch(`${proxy.adminUrl}${path}`, { ...init, headers: { authorization: `Bearer ${token}` } })

describe("admin API", () => {
  it("needs the bearer token on /admin/*, not on probes", async () => {
    backend = net.createServer((s) => s.pipe(s))
    await new Promise<void>((r) => backend.listen(0, "127.0.0.1", r))
    table.app = `127.0.0.1:${(backend.address() as net.AddressInfo).port}`
    proxy = await startTestProxy(
      {
        admin: { host: "127.0.0.1", port: 0, token: "s3cret" },
        listeners: { tcp: { host: "127.0.0.1", port: 0, route: "app" } },
        ssrf: { allow: ["127.0.0.0/8"] },
        breaker: { failureThreshold: 1, cooldown: 60 }
      },
      Resolver.layerAsync({
        resolve: (id) => {
          resolves++
          return table[id] ? { endpoint: table[id]! } : null
        },
        getStats: () => ({ kind: "spec", resolves })
      })
    )
    expect((await fetch(`${proxy.adminUrl}/admin/stats`)).status).toBe(401)
    expect((await admin("/admin/stats", {}, "wrong")).status).toBe(401)
    expect((await fetch(`${proxy.adminUrl}/healthz`)).status).toBe(200)
    expect((await fetch(`${proxy.adminUrl}/metrics`)).status).toBe(200)
  })

  it("GET /admin/stats has the resolver's stats, cache and connection counts", async () => {
    expect(await ping(proxy.port("tcp"))).toBe("ping")
    const stats = (await (await admin("/admin/stats")).json()) as {
      resolver: unknown
      cache: { size: number }
      connections: Record<string, number>
    }
    expect(stats.resolver).toEqual({ kind: "spec", resolves: 1 })
    expect(stats.cache.size).toBe(1)
    expect(stats.connections).toHaveProperty("tcp")
  })

  it("POST /admin/purge makes the next connection ask the resolver again", async () => {
    expect((await admin("/admin/purge?id=app")).status).toBe(405) // GET is refused
    const r = await admin("/admin/purge?id=app", { method: "POST" })
    expect(await r.json()).toEqual({ purged: "app" })
    expect(await ping(proxy.port("tcp"))).toBe("ping")
    expect(resolves).toBe(2)
    expect((await admin("/admin/purge", { method: "POST" })).status).toBe(400)
  })

  it("GET /admin/backends shows a failing backend's breaker", async () => {
    await new Promise((r) => backend.close(r))
    expect(await ping(proxy.port("tcp"))).toBe("closed")
    const body = (await (await admin("/admin/backends")).json()) as { backends: Array<Record<string, unknown>> }
    expect(body.backends).toEqual([
      expect.objectContaining({ backend: table.app, state: "open", consecutiveFailures: 1 })
    ])
  })

  it("POST /admin/drain stops accepting and turns /readyz to 503", async () => {
    const port = proxy.port("tcp")
    expect((await admin("/admin/drain", { method: "POST" })).status).toBe(200)
    expect((await fetch(`${proxy.adminUrl}/readyz`)).status).toBe(503)
    const refused = await new Promise<string>((resolve) => {
      const s = net.connect(port, "127.0.0.1")
      s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? ""))
      s.once("connect", () => resolve("connected"))
    })
    expect(refused).toBe("ECONNREFUSED")
  })
})
