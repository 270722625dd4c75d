// The tcp listener's fiber-free path (a fixed route, cached): taken only when nothing is left to wait for, and
// indistinguishable from the handshake fiber in what it relays, counts, logs, refuses and closes.
import { randomBytes } from "node:crypto"
import * as net from "node:net"
import { afterAll, describe, expect, it } from "vitest"
import { decodeProxyHeader } from "../../src/codec/proxy/ProxyHeader.ts"
import type { DisconnectInfo } from "../../src/domain/Route.ts"
import { Resolver } from "../../src/services/Resolver.ts"
import { echoServer, neverAccepts, ping, roundTrip } from "../support/net.ts"
import { eventually, startTestProxy, type TestProxy } from "../support/proxy.ts"

const cleanup: Array<() => Promise<unknown> | unknown> = []
afterAll(async () => {
  for (const c of cleanup.reverse()) await c()
})

/** Sends `text` and a FIN; resolves with everything the proxy sent back before it closed. */
const exchange = (port: number, text: string) =>
  new Promise<string>((resolve) => {
    const s = net.connect(port, "127.0.0.1", () => s.end(text))
    let out = ""
    s.on("data", (d) => (out += d))
    s.once("close", () => resolve(out))
    s.once("error", () => resolve(out))
  })

const fast = (p: TestProxy) => p.handle.listeners[0]!.fastConnections!()

const metric = async (p: TestProxy, pattern: RegExp) =>
  Number(pattern.exec(await fetch(`${p.adminUrl}/metrics`).then((r) => r.text()))?.[1] ?? Number.NaN)

const started = async (raw: Record<string, unknown>, resolver?: Parameters<typeof startTestProxy>[1]) => {
  const p = await startTestProxy(raw, resolver)
  cleanup.push(() => p.stop())
  return p
}

describe("tcp fiber-free path", () => {
  it("is taken once the route is cached, and relays, counts, logs and calls the hooks as the fiber does", async () => {
    const backend = await echoServer()
    cleanup.push(() => backend.close())
    const connects: string[] = []
    const disconnects: DisconnectInfo[] = []
    const p = await started(
      { listeners: { tcp: { host: "127.0.0.1", port: 0, route: "b" } }, ssrf: { allow: ["127.0.0.0/8"] } },
      Resolver.layerAsync({
        resolve: () => ({ endpoint: `127.0.0.1:${(backend.address() as net.AddressInfo).port}` }),
        onConnect: (id) => {
          connects.push(id)
        },
        onDisconnect: (info) => {
          disconnects.push(info)
        }
      })
    )
    const port = p.port("tcp")
    expect(await roundTrip(port, "first")).toBe("first")
    expect(fast(p)).toBe(0)
    for (let i = 0; i < 5; i++) expect(await roundTrip(port, `hello ${i}`)).toBe(`hello ${i}`)
    expect(fast(p)).toBe(5)
    // 200 KB each way through the fast path, both directions intact.
    const big = "x".repeat(200_000)
    expect(await roundTrip(port, big)).toBe(big)
    expect(fast(p)).toBe(6)

    await eventually(() => p.logs.filter((l) => l.event === "connection closed").length === 7)
    const closes = p.logs.filter((l) => l.event === "connection closed")
    const keys = Object.keys(closes[0]!).sort()
    for (const line of closes) {
      expect(Object.keys(line).sort()).toEqual(keys)
      expect(line).toMatchObject({ listener: "tcp", protocol: "tcp", resource: "b", close: "normal" })
    }
    expect(closes.at(-1)).toMatchObject({ bytesFromClient: 200_000, bytesFromBackend: 200_000 })
    await eventually(() => disconnects.length === 7)
    expect(connects).toEqual(Array.from({ length: 7 }, () => "b"))
    expect(disconnects.at(-1)).toMatchObject({ resourceId: "b", bytesFromClient: 200_000, bytesFromBackend: 200_000 })

    const text = await fetch(`${p.adminUrl}/metrics`).then((r) => r.text())
    expect(text).toMatch(/polyproxy_connections_accepted_total\{listener="tcp",protocol="tcp"\} 7\b/)
    expect(text).toMatch(/polyproxy_connections_closed_total\{listener="tcp",protocol="tcp"\} 7\b/)
    expect(text).toMatch(/polyproxy_connections_active\{listener="tcp",protocol="tcp"\} 0\b/)
    expect(text).toMatch(/polyproxy_route_cache_lookups_total\{result="hit"\} 6\b/)
    expect(text).toMatch(/polyproxy_route_cache_lookups_total\{result="miss"\} 1\b/)
    const bytes = 5 + 5 * 7 + 200_000
    expect(text).toContain(`polyproxy_bytes_from_client_total{listener="tcp",protocol="tcp"} ${bytes}`)
    expect(text).toMatch(/polyproxy_handshake_duration_ms_count\{listener="tcp",protocol="tcp"\} 7\b/)
    expect(p.handle.listeners[0]!.open()).toBe(0)
  })

  it("relays MiBs intact both ways to slow and fast clients at once, on the fast path, the fiber's, after a PROXY header", async () => {
    // The first two read into the relay's shared buffer on the client side too (readIntoShared); after a PROXY header
    // the client socket keeps Node's own reads.
    const backend = await echoServer()
    cleanup.push(() => backend.close())
    const endpoint = `127.0.0.1:${(backend.address() as net.AddressInfo).port}`
    const config = (extra: Record<string, unknown>, listener: Record<string, unknown> = {}) => ({
      listeners: { tcp: { host: "127.0.0.1", port: 0, route: "b", ...listener } },
      routes: { b: endpoint },
      ssrf: { allow: ["127.0.0.0/8"] },
      ...extra
    })
    const cached = await started(config({}))
    const uncached = await started(config({ cache: { ttl: 0 } }))
    const proxied = await started(config({}, { proxyProtocol: true }))
    expect(await ping(cached.port("tcp"))).toBe("ping")
    const echo = (port: number, slow: boolean, header = "") =>
      new Promise<boolean>((resolve, reject) => {
        const payload = randomBytes(4 * 1024 * 1024)
        const s = net.connect(port, "127.0.0.1")
        const parts: Buffer[] = []
        let got = 0
        s.on("data", (d: Buffer) => {
          parts.push(d)
          got += d.length
          if (slow) {
            s.pause()
            setTimeout(() => s.resume(), 1)
          }
          if (got >= payload.length) {
            s.end()
            resolve(Buffer.concat(parts).equals(payload))
          }
        })
        s.once("error", reject)
        s.write(header)
        s.write(payload)
      })
    const runs = [cached, uncached, proxied].flatMap((p) =>
      [true, false].map((slow) => echo(p.port("tcp"), slow, p === proxied ? "PROXY UNKNOWN\r\n" : ""))
    )
    expect(await Promise.all(runs)).toEqual([true, true, true, true, true, true])
    expect([fast(cached), fast(uncached), fast(proxied)]).toEqual([2, 0, 0])
  })

  it("counts a failed dial for the breaker and refuses as the fiber does; an open breaker takes the fiber", async () => {
    let backend = await echoServer()
    const port = (backend.address() as net.AddressInfo).port
    const p = await started({
      listeners: { tcp: { host: "127.0.0.1", port: 0, route: "b" } },
      routes: { b: `127.0.0.1:${port}` },
      ssrf: { allow: ["127.0.0.0/8"] },
      breaker: { failureThreshold: 2, cooldown: 1 }
    })
    expect(await ping(p.port("tcp"))).toBe("ping")
    expect(fast(p)).toBe(0)
    await new Promise((r) => backend.close(r))
    for (let i = 0; i < 4; i++) expect(await ping(p.port("tcp"))).toBe("closed")
    const refused = p.logs.filter((l) => l.event === "connection refused")
    expect(refused.map((l) => l.reason)).toEqual(["CONNECT_FAILED", "CONNECT_FAILED", "UNAVAILABLE", "UNAVAILABLE"])
    expect(refused[0]).toMatchObject({ listener: "tcp", resource: "b", source: "backend" })
    expect(String(refused[0]?.message)).toContain("ECONNREFUSED")
    expect(String(refused[3]?.message)).toContain("circuit open")
    // The two failed dials were fast; the breaker, once open, sent the next two through the fiber.
    expect(fast(p)).toBe(2)
    backend = await echoServer(port)
    cleanup.push(() => backend.close())
    await new Promise((r) => setTimeout(r, 1_100))
    // Half-open: the trial goes through the fiber, then the closed breaker lets the fast path back.
    expect(await ping(p.port("tcp"))).toBe("ping")
    expect(fast(p)).toBe(2)
    expect(await ping(p.port("tcp"))).toBe("ping")
    expect(fast(p)).toBe(3)
    expect(
      await metric(p, /polyproxy_errors_total\{listener="tcp",protocol="tcp",reason="connect_failed"\} (\d+)/)
    ).toBe(2)
    await eventually(() => p.handle.listeners[0]!.open() === 0)
  })

  it("is not taken without a cached route, for a wakeable route, or when PROXY headers are read", async () => {
    const backend = await echoServer()
    cleanup.push(() => backend.close())
    const endpoint = `127.0.0.1:${(backend.address() as net.AddressInfo).port}`
    const uncached = await started({
      listeners: { tcp: { host: "127.0.0.1", port: 0, route: "b" } },
      routes: { b: endpoint },
      ssrf: { allow: ["127.0.0.0/8"] },
      cache: { ttl: 0 }
    })
    const wakeable = await started(
      { listeners: { tcp: { host: "127.0.0.1", port: 0, route: "b" } }, ssrf: { allow: ["127.0.0.0/8"] } },
      Resolver.layerAsync({ resolve: () => ({ endpoint, metadata: { wakeable: true } }) })
    )
    const proxied = await started({
      listeners: { tcp: { host: "127.0.0.1", port: 0, route: "b", proxyProtocol: true } },
      routes: { b: endpoint },
      ssrf: { allow: ["127.0.0.0/8"] }
    })
    for (let i = 0; i < 3; i++) {
      expect(await ping(uncached.port("tcp"))).toBe("ping")
      expect(await ping(wakeable.port("tcp"))).toBe("ping")
      expect(await exchange(proxied.port("tcp"), "PROXY UNKNOWN\r\nping")).toBe("ping")
    }
    expect([fast(uncached), fast(wakeable), fast(proxied)]).toEqual([0, 0, 0])
  })

  it("leaves a resource at its limit to the fiber, which refuses it", async () => {
    const backend = await echoServer()
    cleanup.push(() => backend.close())
    const p = await started({
      listeners: { tcp: { host: "127.0.0.1", port: 0, route: "b" } },
      routes: { b: `127.0.0.1:${(backend.address() as net.AddressInfo).port}` },
      ssrf: { allow: ["127.0.0.0/8"] },
      limits: { perResource: 1 }
    })
    expect(await ping(p.port("tcp"))).toBe("ping")
    await eventually(() => p.handle.listeners[0]!.open() === 0)
    const held = net.connect(p.port("tcp"), "127.0.0.1", () => held.write("x"))
    cleanup.push(() => held.destroy())
    await new Promise((r) => held.once("data", r))
    expect(fast(p)).toBe(1)
    expect(await ping(p.port("tcp"))).toBe("closed")
    expect(fast(p)).toBe(1)
    const line = p.logs.find((l) => l.event === "connection refused")
    expect(line).toMatchObject({ reason: "UNAVAILABLE", resource: "b" })
    expect(String(line?.message)).toContain("b is at its limit of 1 connections")
    held.destroy()
    await eventually(() => p.handle.listeners[0]!.open() === 0)
    expect(await ping(p.port("tcp"))).toBe("ping")
    expect(fast(p)).toBe(2)
  })

  it("sends the PROXY header a route asks for", async () => {
    // Answers, once the client has finished, with the source address of the header and what followed it.
    const backend = net.createServer({ allowHalfOpen: true }, (s) => {
      const parts: Buffer[] = []
      s.on("error", () => {})
      s.on("data", (d: Buffer) => parts.push(d))
      s.on("end", () => {
        const buf = Buffer.concat(parts)
        const h = decodeProxyHeader(buf)
        s.end(h._tag === "Frame" ? `${h.value.source?.address}|${buf.subarray(h.size).toString()}` : "no header")
      })
    })
    await new Promise<void>((r) => backend.listen(0, "127.0.0.1", r))
    cleanup.push(() => backend.close())
    const endpoint = `127.0.0.1:${(backend.address() as net.AddressInfo).port}`
    for (const version of [1, 2]) {
      const p = await started(
        { listeners: { tcp: { host: "127.0.0.1", port: 0, route: "b" } }, ssrf: { allow: ["127.0.0.0/8"] } },
        Resolver.layerAsync({ resolve: () => ({ endpoint, metadata: { proxyProtocol: version } }) })
      )
      expect(await exchange(p.port("tcp"), "one")).toBe("127.0.0.1|one")
      expect(await exchange(p.port("tcp"), "two")).toBe("127.0.0.1|two")
      expect(fast(p)).toBe(1)
    }
  })

  it("closes a connection whose dial is still under way when the drain deadline passes", async () => {
    // A backend that never accepts: its listen queue is full, so further SYNs go unanswered.
    const { port, close } = await neverAccepts()
    cleanup.push(close)
    const p = await startTestProxy({
      listeners: { tcp: { host: "127.0.0.1", port: 0, route: "b" } },
      routes: { b: `127.0.0.1:${port}` },
      ssrf: { allow: ["127.0.0.0/8"] },
      timeouts: { connect: 30, drain: 0.2 }
    })
    // The first connection resolves (the route is cached) and waits in its fiber's dial; the second dials fast.
    const clients = [net.connect(p.port("tcp"), "127.0.0.1")]
    await eventually(() => p.handle.listeners[0]!.open() === 1)
    await new Promise((r) => setTimeout(r, 100))
    clients.push(net.connect(p.port("tcp"), "127.0.0.1"))
    await eventually(() => fast(p) === 1)
    const closed = clients.map((c) => new Promise((r) => c.on("error", () => {}).once("close", r)))
    const t0 = Date.now()
    await p.stop()
    await Promise.all(closed)
    expect(Date.now() - t0).toBeLessThan(3_000)
    expect(p.handle.listeners[0]!.open()).toBe(0)
    expect(p.logs.some((l) => l.event === "drain timeout, closing remaining connections")).toBe(true)
  })
})
