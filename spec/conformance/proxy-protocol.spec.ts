// PROXY protocol: accepted from a trusted load balancer (a real HAProxy sending v2, and raw v1/v2 clients), the real
// client address reaching the Resolver and a backend that asks for a header of its own.
import * as net from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { decodeProxyHeader, encodeProxyHeader } from "../../src/codec/proxy/ProxyHeader.ts"
import type { ConnectionInfo } from "../../src/domain/Route.ts"
import { Resolver } from "../../src/services/Resolver.ts"
import { startHaproxy } from "../support/haproxy.ts"
import { eventually, startTestProxy, type TestProxy } from "../support/proxy.ts"

let proxy: TestProxy
let backend: net.Server
const seen: Array<ConnectionInfo | undefined> = []

/** A backend that wants a PROXY header: it answers with the source address the header names. */
const headerEcho = () =>
  net.createServer((s) => {
    let buf = Buffer.alloc(0)
    s.on("error", () => {})
    s.on("data", (d: Buffer) => {
      if (s.writableEnded) return
      buf = Buffer.concat([buf, d])
      const h = decodeProxyHeader(buf)
      if (h._tag === "Frame") {
        s.end(`${h.value.source?.address}:${h.value.source?.port}|${buf.subarray(h.size).toString()}`)
      }
    })
  })

const exchange = (port: number, bytes: Buffer, localAddress = "127.0.0.1") =>
  new Promise<string>((resolve) => {
    const s = net.connect({ port, host: "127.0.0.1", localAddress }, () => s.end(bytes))
    let out = ""
    s.on("data", (d) => (out += d))
    s.once("close", () => resolve(out))
    s.once("error", () => resolve(out))
  })

beforeAll(async () => {
  backend = headerEcho()
  await new Promise<void>((r) => backend.listen(0, "127.0.0.1", r))
  const endpoint = `127.0.0.1:${(backend.address() as net.AddressInfo).port}`
  proxy = await startTestProxy(
    {
      listeners: { tcp: { host: "127.0.0.1", port: 0, route: "app", proxyProtocol: true } },
      ssrf: { allow: ["127.0.0.0/8"] },
      cache: { ttl: 0, negativeTtl: 0 }
    },
    Resolver.layerAsync({
      resolve: (_id, info) => {
        seen.push(info)
        return { endpoint, metadata: { proxyProtocol: 2 } }
      }
    })
  )
})

afterAll(async () => {
  await proxy?.stop()
  backend?.close()
})

describe("PROXY protocol", () => {
  it("reads a v1 header from a raw client: the address it names reaches the resolver and the backend", async () => {
    const header = Buffer.from("PROXY TCP4 203.0.113.9 127.0.0.1 40000 7000\r\n")
    const answer = await exchange(proxy.port("tcp"), Buffer.concat([header, Buffer.from("payload")]))
    expect(answer).toBe("203.0.113.9:40000|payload")
    expect(seen.at(-1)).toMatchObject({ remoteAddress: "203.0.113.9", remotePort: 40000 })
  })

  it("reads a v2 header", async () => {
    const header = encodeProxyHeader(2, { address: "2001:db8::5", port: 1234 }, { address: "::1", port: 7000 })
    expect(await exchange(proxy.port("tcp"), Buffer.concat([header, Buffer.from("x")]))).toBe("2001:db8::5:1234|x")
    expect(seen.at(-1)).toMatchObject({ remoteAddress: "2001:db8::5", remotePort: 1234 })
  })

  it("behind a real HAProxy sending v2, the client's own address arrives", async () => {
    const haproxy = await startHaproxy([{ server: `127.0.0.1:${proxy.port("tcp")}`, send: "send-proxy-v2" }])
    const front = haproxy.ports[0]!
    try {
      let answer = ""
      for (let i = 0; i < 20 && !answer.includes("|hi"); i++) {
        answer = await exchange(front, Buffer.from("hi"), "127.0.0.5")
        if (!answer) await new Promise((r) => setTimeout(r, 200))
      }
      expect(answer).toMatch(/^127\.0\.0\.5:\d+\|hi$/)
      // The readiness probes above also pass through HAProxy (from 127.0.0.1) and may reach the resolver later.
      expect(seen.some((info) => info?.remoteAddress === "127.0.0.5")).toBe(true)
    } finally {
      haproxy.stop()
    }
  })

  it("refuses a connection without a header, and one from an untrusted source", async () => {
    expect(await exchange(proxy.port("tcp"), Buffer.from("no header here"))).toBe("")
    await eventually(() => proxy.logs.some((l) => l.reason === "BAD_REQUEST"))
    const strict = await startTestProxy({
      listeners: {
        tcp: { host: "127.0.0.1", port: 0, route: "app", proxyProtocol: true, trustedProxies: ["10.0.0.0/8"] }
      },
      routes: { app: "127.0.0.1:1" },
      ssrf: { allow: ["127.0.0.0/8"] }
    })
    try {
      expect(await exchange(strict.port("tcp"), Buffer.from("PROXY UNKNOWN\r\n"))).toBe("")
      await eventually(() => strict.logs.some((l) => l.reason === "FORBIDDEN"))
      expect(String(strict.logs.find((l) => l.reason === "FORBIDDEN")?.message)).toContain("trustedProxies")
    } finally {
      await strict.stop()
    }
  })
})
