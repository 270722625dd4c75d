// Cold start on the HTTP listener, per request, with real clients (undici, node:http2) and real origins (node:http):
// requests to a sleeping backend wait while it wakes, `wake` is called once per cold period, and everyone gets the
// origin's answer, or 503 + Retry-After once coldStart.timeout has passed.
import { createHash } from "node:crypto"
import * as http2 from "node:http2"
import { Agent, request } from "undici"
import { afterAll, describe, expect, it } from "vitest"
import { ResolveError } from "../../src/domain/ResolveError.ts"
import { Resolver } from "../../src/services/Resolver.ts"
import { closedPort, h2request, type Origin, startOrigin } from "../listeners/http/support.ts"
import { startTestProxy } from "../support/proxy.ts"

const cleanup: Array<() => Promise<unknown> | unknown> = []
afterAll(async () => {
  for (const c of cleanup.reverse()) await c()
})

const metricsText = (adminUrl: string) => fetch(`${adminUrl}/metrics`).then((r) => r.text())
const counter = (text: string, series: string) =>
  Number(new RegExp(`^${series.replace(/[{}]/g, "\\$&")} (\\d+)`, "m").exec(text)?.[1] ?? 0)

/** 50 requests at once over 50 connections, every fifth a POST with a body the origin hashes. */
const fifty = async (port: number, host: string) => {
  const dispatcher = new Agent({ connections: 64 })
  cleanup.push(() => dispatcher.close())
  return Promise.all(
    Array.from({ length: 50 }, async (_, i) => {
      const body = i % 5 === 0 ? `request ${i} `.repeat(1000) : undefined
      const r = await request(`http://127.0.0.1:${port}/echo?i=${i}`, {
        method: body === undefined ? "GET" : "POST",
        headers: { host },
        body,
        dispatcher
      })
      const text = await r.body.text()
      return { i, status: r.statusCode, retryAfter: r.headers["retry-after"], text, body }
    })
  )
}

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex")

/** Each of `fifty`'s requests answered by `origin`, as itself: a body that waited with its request arrived whole. */
const expectAnswered = (answers: Awaited<ReturnType<typeof fifty>>, origin: string) => {
  for (const a of answers) {
    expect(a.status).toBe(200)
    const j = JSON.parse(a.text) as { origin: string; url: string; length: number; sha256: string }
    expect([j.origin, j.url]).toEqual([origin, `/echo?i=${a.i}`])
    if (a.body !== undefined) expect([j.length, j.sha256]).toEqual([a.body.length, sha256(a.body)])
  }
}

describe("http cold start: the Resolver says the backend sleeps", () => {
  let origin: Origin
  let wakes: Array<string> = []
  let awakeAt = Number.POSITIVE_INFINITY
  const proxyWith = (coldStart: Record<string, number>) =>
    startTestProxy(
      {
        listeners: { http: { host: "127.0.0.1", port: 0 } },
        ssrf: { allow: ["127.0.0.0/8"] },
        coldStart
      },
      Resolver.layerAsync({
        resolve: (id) => {
          if (id === "never.test") throw new ResolveError({ code: "UNAVAILABLE", message: "asleep", retryAfter: 2 })
          if (Date.now() < awakeAt)
            throw new ResolveError({ code: "UNAVAILABLE", message: `${id} is asleep`, retryAfter: 2 })
          return { endpoint: `127.0.0.1:${origin.port}` }
        },
        wake: async (id) => {
          wakes.push(id)
          // Scale-to-zero: the backend is up a little after the wake call returns.
          awakeAt = Date.now() + 600
        }
      })
    )

  it("holds 50 HTTP/1.1 requests while the backend wakes, wakes it once, and all get the origin's answer", async () => {
    origin = await startOrigin("woken")
    cleanup.push(() => origin.close())
    const proxy = await proxyWith({ timeout: 20, maxQueue: 500 })
    cleanup.push(() => proxy.stop())
    const before = counter(await metricsText(proxy.adminUrl), 'polyproxy_cold_start_waits_total{outcome="ready"}')
    const started = Date.now()
    const answers = await fifty(proxy.port("http"), "tenant.test")
    expect(wakes).toEqual(["tenant.test"])
    expect(Date.now() - started).toBeGreaterThanOrEqual(500)
    expectAnswered(answers, "woken")
    expect(origin.requests()).toBe(50)
    const after = counter(await metricsText(proxy.adminUrl), 'polyproxy_cold_start_waits_total{outcome="ready"}')
    expect(after - before).toBe(50)
  })

  it("does the same for HTTP/2 streams (h2c): one wake for the next cold period, every stream answered", async () => {
    wakes = []
    awakeAt = Number.POSITIVE_INFINITY
    const proxy = await proxyWith({ timeout: 20 })
    cleanup.push(() => proxy.stop())
    const session = http2.connect(`http://127.0.0.1:${proxy.port("http")}`)
    cleanup.push(() => session.close())
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => h2request(session, { ":path": `/echo?s=${i}`, ":authority": "h2.test" }))
    )
    expect(wakes).toEqual(["h2.test"])
    expect(answers.map((a) => a.status)).toEqual(Array.from({ length: 20 }, () => 200))
    expect(answers.map((a) => JSON.parse(a.body.toString()).url)).toEqual(
      Array.from({ length: 20 }, (_, i) => `/echo?s=${i}`)
    )
  })

  it("gives all 50 requests 503 + Retry-After within coldStart.timeout when the backend never wakes", async () => {
    const proxy = await proxyWith({ timeout: 1.5 })
    cleanup.push(() => proxy.stop())
    const started = Date.now()
    const answers = await fifty(proxy.port("http"), "never.test")
    const took = Date.now() - started
    for (const a of answers) {
      expect(a.status).toBe(503)
      // Half the timeout, rounded up: when it is worth asking again.
      expect(a.retryAfter).toBe("1")
      expect(JSON.parse(a.text)).toMatchObject({ reason: "UNAVAILABLE", error: expect.stringContaining("never.test") })
    }
    // They waited for the bound, and not for much longer.
    expect(took).toBeGreaterThanOrEqual(1_400)
    expect(took).toBeLessThan(4_000)
    expect(proxy.logs.filter((l) => l.event === "request refused")).toHaveLength(50)
  })
})

describe("http cold start: a wakeable route whose backend refuses until woken", () => {
  it("wakes it once, holds the requests (bodies included) and sends each once it accepts", async () => {
    const port = await closedPort()
    let woken = 0
    let backend: Origin | undefined
    const proxy = await startTestProxy(
      {
        listeners: { http: { host: "127.0.0.1", port: 0 } },
        ssrf: { allow: ["127.0.0.0/8"] },
        coldStart: { timeout: 10 },
        // Refusals open the breaker at once: the requests that find it open wait for the wake too.
        breaker: { failureThreshold: 1, cooldown: 30 }
      },
      Resolver.layerAsync({
        resolve: () => ({ endpoint: `127.0.0.1:${port}`, metadata: { wakeable: true } }),
        wake: async () => {
          woken++
          await new Promise((r) => setTimeout(r, 300))
          backend = await startOrigin("fn", port)
        }
      })
    )
    cleanup.push(() => proxy.stop())
    cleanup.push(() => backend?.close())
    const answers = await fifty(proxy.port("http"), "fn.test")
    expect(woken).toBe(1)
    expectAnswered(answers, "fn")
    expect(backend?.requests()).toBe(50)
    const text = await metricsText(proxy.adminUrl)
    expect(text).toContain(`polyproxy_backend_breaker_state{backend="127.0.0.1:${port}"} 0`)
  })

  it("answers 503 + Retry-After when the woken backend still refuses at coldStart.timeout", async () => {
    const port = await closedPort()
    let woken = 0
    const proxy = await startTestProxy(
      {
        listeners: { http: { host: "127.0.0.1", port: 0 } },
        ssrf: { allow: ["127.0.0.0/8"] },
        coldStart: { timeout: 1 }
      },
      Resolver.layerAsync({
        resolve: () => ({ endpoint: `127.0.0.1:${port}`, metadata: { wakeable: true } }),
        wake: () => void woken++
      })
    )
    cleanup.push(() => proxy.stop())
    const answers = await Promise.all(
      Array.from({ length: 5 }, () =>
        request(`http://127.0.0.1:${proxy.port("http")}/`, { headers: { host: "fn.test" }, reset: true }).then(
          async (r) => ({ status: r.statusCode, retryAfter: r.headers["retry-after"], body: await r.body.json() })
        )
      )
    )
    expect(woken).toBe(1)
    for (const a of answers) expect(a).toMatchObject({ status: 503, retryAfter: "1", body: { reason: "UNAVAILABLE" } })
  })
})
