// The HTTP resolver against a real node:http route service: status mapping, timeouts, retries, breaker, wake, e2e.
import * as http from "node:http"
import * as net from "node:net"
import { Effect, Exit } from "effect"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import type { ResolveError } from "../../../src/domain/ResolveError.ts"
import type { Route } from "../../../src/domain/Route.ts"
import type { ResolverShape } from "../../../src/services/Resolver.ts"
import {
  type HttpResolverOptions,
  makeHttpResolver,
  parseAnswer,
  parseRetryAfter
} from "../../../src/services/resolvers/HttpResolver.ts"
import { closedPort, roundTrip } from "../../support/net.ts"
import { startTestProxy } from "../../support/proxy.ts"

interface Seen {
  readonly method: string
  readonly url: URL
  readonly authorization: string | undefined
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, seen: Seen) => void

let server: http.Server
let base: string
let handler: Handler
const seen: Array<Seen> = []

const json = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  res.writeHead(status, { "content-type": "application/json", ...headers })
  res.end(JSON.stringify(body))
}

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const s: Seen = {
      method: req.method ?? "",
      url: new URL(req.url ?? "/", "http://x"),
      authorization: req.headers.authorization
    }
    seen.push(s)
    handler(req, res, s)
  })
  await new Promise<void>((res) => server.listen(0, "127.0.0.1", res))
  base = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`
})

afterAll(async () => {
  server.closeAllConnections()
  await new Promise((res) => server.close(res))
})

beforeEach(() => {
  seen.length = 0
  handler = (_req, res) => json(res, 404, { message: "no handler" })
})

const resolver = (extra: Partial<HttpResolverOptions> = {}) =>
  makeHttpResolver({ url: `${base}/resolve`, retryDelay: 0.01, ...extra })

const run = (r: ResolverShape, id: string, info?: Parameters<ResolverShape["resolve"]>[1]) =>
  Effect.runPromise(Effect.exit(r.resolve(id, info)))

const route = async (r: ResolverShape, id: string, info?: Parameters<ResolverShape["resolve"]>[1]): Promise<Route> => {
  const exit = await run(r, id, info)
  if (Exit.isFailure(exit)) throw new Error(`expected a route, got ${JSON.stringify(exit.cause)}`)
  return exit.value
}

const failure = async (r: ResolverShape, id: string): Promise<ResolveError> => {
  const exit = await run(r, id)
  if (Exit.isSuccess(exit)) throw new Error(`expected a failure, got ${JSON.stringify(exit.value)}`)
  const reason = exit.cause.reasons[0]
  if (reason?._tag !== "Fail") throw new Error(`expected a Fail, got ${reason?._tag}`)
  return reason.error
}

const lookups = () => seen.filter((s) => s.url.pathname === "/resolve").length

describe("HttpResolver: answers", () => {
  it("maps 200 JSON to a route and sends id, protocol and client in the query", async () => {
    handler = (_req, res, s) =>
      json(res, 200, { endpoint: "10.1.2.3:5432", metadata: { plan: s.url.searchParams.get("id") }, timeout: 3 })
    const r = await route(resolver(), "a b/ü?&x", {
      protocol: "postgres",
      remoteAddress: "192.0.2.9",
      remotePort: 50000
    })
    expect(r).toEqual({
      resourceId: "a b/ü?&x",
      endpoint: { host: "10.1.2.3", port: 5432 },
      metadata: { plan: "a b/ü?&x" },
      timeout: 3
    })
    expect(seen[0]?.method).toBe("GET")
    expect(seen[0]?.url.searchParams.get("id")).toBe("a b/ü?&x")
    expect(seen[0]?.url.searchParams.get("protocol")).toBe("postgres")
    expect(seen[0]?.url.searchParams.get("client")).toBe("192.0.2.9")
  })

  it("keeps the query the url already has", async () => {
    handler = (_req, res) => json(res, 200, { endpoint: "10.0.0.1:1" })
    await route(makeHttpResolver({ url: `${base}/resolve?region=eu` }), "x")
    expect(seen[0]?.url.searchParams.get("region")).toBe("eu")
    expect(seen[0]?.url.searchParams.get("id")).toBe("x")
    expect(seen[0]?.url.searchParams.has("protocol")).toBe(false)
  })

  it("maps 404 to NOT_FOUND and 403 to FORBIDDEN, with the service's message, without retrying", async () => {
    handler = (_req, res, s) =>
      s.url.searchParams.get("id") === "gone" ? json(res, 404, {}) : json(res, 403, { message: "tenant suspended" })
    const r = resolver({ retries: 3 })
    expect(await failure(r, "gone")).toMatchObject({ code: "NOT_FOUND", message: 'no route for "gone"' })
    expect(await failure(r, "banned")).toMatchObject({ code: "FORBIDDEN", message: "tenant suspended" })
    expect(lookups()).toBe(2)
  })

  it("maps 503 with Retry-After to UNAVAILABLE(retryAfter), seconds or HTTP date, without retrying", async () => {
    handler = (_req, res, s) =>
      s.url.searchParams.get("id") === "dated"
        ? json(res, 503, {}, { "retry-after": new Date(Date.now() + 4_000).toUTCString() })
        : json(res, 503, { message: "waking up" }, { "retry-after": "7" })
    const r = resolver({ retries: 3 })
    expect(await failure(r, "cold")).toMatchObject({ code: "UNAVAILABLE", retryAfter: 7, message: "waking up" })
    expect(lookups()).toBe(1)
    const dated = await failure(r, "dated")
    expect(dated.code).toBe("UNAVAILABLE")
    expect(dated.retryAfter).toBeGreaterThanOrEqual(3)
    expect(dated.retryAfter).toBeLessThanOrEqual(5)
  })

  it("maps any other status, and a 200 it cannot read, to INTERNAL naming what was wrong", async () => {
    const answers: Record<string, (res: http.ServerResponse) => void> = {
      teapot: (res) => json(res, 418, { message: "short and stout" }),
      text: (res) => {
        res.writeHead(200, { "content-type": "text/plain" })
        res.end("10.0.0.1:5432")
      },
      noendpoint: (res) => json(res, 200, { host: "10.0.0.1" }),
      badendpoint: (res) => json(res, 200, { endpoint: "10.0.0.1" }),
      badmeta: (res) => json(res, 200, { endpoint: "10.0.0.1:1", metadata: "gold" })
    }
    handler = (_req, res, s) => answers[s.url.searchParams.get("id")!]!(res)
    const r = resolver()
    const teapot = await failure(r, "teapot")
    expect(teapot.code).toBe("INTERNAL")
    expect(teapot.message).toContain("418")
    expect(teapot.message).toContain("short and stout")
    for (const [id, why] of [
      ["text", "not JSON"],
      ["noendpoint", '"endpoint"'],
      ["badendpoint", "host:port"],
      ["badmeta", '"metadata"']
    ] as const) {
      const e = await failure(r, id)
      expect(e.code).toBe("INTERNAL")
      expect(e.message).toContain(why)
    }
  })
})

describe("HttpResolver: failures", () => {
  it("says TIMEOUT when the service does not answer within the timeout", async () => {
    handler = () => {} // never answers
    const started = Date.now()
    const e = await failure(resolver({ timeout: 0.2, retries: 2 }), "slow")
    const took = Date.now() - started
    expect(e.code).toBe("TIMEOUT")
    expect(e.message).toContain("0.2s")
    // a timeout is not retried: the RoutingCache's own deadline would be spent by then
    expect(took).toBeLessThan(600)
    expect(lookups()).toBe(1)
  })

  it("also times out a body that stops halfway", async () => {
    handler = (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" })
      res.write('{"endpoint":')
    }
    expect((await failure(resolver({ timeout: 0.2 }), "half")).code).toBe("TIMEOUT")
  })

  it("retries a 500 and succeeds on the third request", async () => {
    let n = 0
    handler = (_req, res) => (++n < 3 ? json(res, 500, {}) : json(res, 200, { endpoint: "10.0.0.1:1" }))
    expect((await route(resolver({ retries: 2 }), "flaky")).endpoint.port).toBe(1)
    expect(lookups()).toBe(3)
  })

  it("gives up after the retries with INTERNAL naming the status", async () => {
    handler = (_req, res) => json(res, 502, {})
    const e = await failure(resolver({ retries: 2 }), "down")
    expect(e.code).toBe("INTERNAL")
    expect(e.message).toContain("502")
    expect(lookups()).toBe(3)
  })

  it("says UNAVAILABLE when the service cannot be reached, after its retries", async () => {
    const port = await closedPort()
    const started = Date.now()
    const e = await failure(
      makeHttpResolver({ url: `http://127.0.0.1:${port}/resolve`, retries: 2, retryDelay: 0.01 }),
      "x"
    )
    expect(e).toMatchObject({ code: "UNAVAILABLE" })
    expect(e.message).toContain("unreachable")
    expect(e.message).toContain("ECONNREFUSED")
    expect(Date.now() - started).toBeLessThan(1_000)
  })

  it("opens its breaker after K failed lookups, fails fast during the cooldown, and closes on success", async () => {
    let healthy = false
    handler = (_req, res) => (healthy ? json(res, 200, { endpoint: "10.0.0.1:1" }) : json(res, 500, {}))
    const r = resolver({ retries: 0, failureThreshold: 3, cooldown: 0.4 })
    for (let i = 0; i < 3; i++) expect((await failure(r, "x")).code).toBe("INTERNAL")
    expect(lookups()).toBe(3)

    const fast = await failure(r, "x")
    expect(fast).toMatchObject({ code: "UNAVAILABLE" })
    expect(fast.message).toContain("3 lookups in a row")
    expect(lookups()).toBe(3) // not asked
    expect(await Effect.runPromise(r.getStats)).toMatchObject({ breaker: "open", consecutiveFailures: 3 })

    // a failed probe after the cooldown opens it again at once
    await sleep(450)
    expect((await failure(r, "x")).code).toBe("INTERNAL")
    expect(lookups()).toBe(4)
    expect((await failure(r, "x")).code).toBe("UNAVAILABLE")
    expect(lookups()).toBe(4)

    healthy = true
    await sleep(450)
    expect((await route(r, "x")).endpoint.port).toBe(1)
    expect((await route(r, "y")).endpoint.port).toBe(1)
    expect(lookups()).toBe(6)
    expect(await Effect.runPromise(r.getStats)).toMatchObject({ breaker: "closed", consecutiveFailures: 0 })
  })

  it("lets one probe through when half-open; concurrent lookups fail fast meanwhile", async () => {
    let healthy = false
    handler = (_req, res) => {
      if (!healthy) return json(res, 500, {})
      setTimeout(() => json(res, 200, { endpoint: "10.0.0.1:1" }), 100)
    }
    const r = resolver({ retries: 0, failureThreshold: 1, cooldown: 0.2 })
    await failure(r, "x")
    healthy = true
    await sleep(250)
    const results = await Promise.all([run(r, "x"), run(r, "x"), run(r, "x")])
    expect(results.filter(Exit.isSuccess).length).toBe(1)
    expect(lookups()).toBe(2)
  })

  it("does not count NOT_FOUND, FORBIDDEN or a cold answer as failures", async () => {
    handler = (_req, res, s) => {
      const id = s.url.searchParams.get("id")
      if (id === "missing") return json(res, 404, {})
      if (id === "banned") return json(res, 403, {})
      return json(res, 503, {}, { "retry-after": "2" })
    }
    const r = resolver({ retries: 0, failureThreshold: 2 })
    for (const id of ["missing", "banned", "cold", "missing", "cold"]) await failure(r, id)
    expect(await Effect.runPromise(r.getStats)).toMatchObject({
      kind: "http",
      breaker: "closed",
      consecutiveFailures: 0,
      lookups: 5,
      requests: 5,
      hits: 3,
      misses: 2,
      errors: 0
    })
  })
})

describe("HttpResolver: token and wake", () => {
  it("sends the bearer token, which the service checks", async () => {
    handler = (req, res) =>
      req.headers.authorization === "Bearer t0ken"
        ? json(res, 200, { endpoint: "10.0.0.1:1" })
        : json(res, 401, { message: "bad token" })
    expect((await route(resolver({ token: "t0ken" }), "x")).endpoint.port).toBe(1)
    const e = await failure(resolver({ token: "wrong" }), "x")
    expect(e.code).toBe("INTERNAL")
    expect(e.message).toContain("401")
    expect(seen.map((s) => s.authorization)).toEqual(["Bearer t0ken", "Bearer wrong"])
  })

  it("has no wake hook without wakeUrl; with one, wake POSTs the id once, with the token", async () => {
    expect(resolver().wake).toBeUndefined()
    handler = (_req, res) => json(res, 202, {})
    const r = resolver({ wakeUrl: `${base}/wake`, token: "t0ken" })
    await Effect.runPromise(r.wake!("sleepy db"))
    expect(seen.map((s) => [s.method, s.url.pathname, s.url.searchParams.get("id"), s.authorization])).toEqual([
      ["POST", "/wake", "sleepy db", "Bearer t0ken"]
    ])
  })

  it("a failing wake is not an error (readiness is polled anyway)", async () => {
    const port = await closedPort()
    const r = resolver({ wakeUrl: `http://127.0.0.1:${port}/wake` })
    await expect(Effect.runPromise(r.wake!("x"))).resolves.toBeUndefined()
  })
})

describe("HttpResolver: end to end", () => {
  let echo: net.Server
  let echoPort: number
  beforeAll(async () => {
    echo = net.createServer((s) => s.pipe(s))
    await new Promise<void>((res) => echo.listen(0, "127.0.0.1", res))
    echoPort = (echo.address() as net.AddressInfo).port
  })
  afterAll(() => echo.close())

  it("routes a raw TCP client where the route service says", async () => {
    handler = (_req, res, s) =>
      s.url.searchParams.get("id") === "echo"
        ? json(res, 200, { endpoint: `127.0.0.1:${echoPort}` })
        : json(res, 404, {})
    const proxy = await startTestProxy({
      listeners: { tcp: { host: "127.0.0.1", port: 0, route: "echo" } },
      resolver: { type: "http", url: `${base}/resolve`, token: "t0ken", timeout: 1, retries: 1 },
      ssrf: { allow: ["127.0.0.0/8"] }
    })
    try {
      expect(await roundTrip(proxy.port("tcp"), "hello over http")).toBe("hello over http")
      expect(seen[0]?.authorization).toBe("Bearer t0ken")
      expect(seen[0]?.url.searchParams.get("protocol")).toBe("tcp")
      expect(seen[0]?.url.searchParams.get("client")).toBe("127.0.0.1")
    } finally {
      await proxy.stop()
    }
  })

  it("holds clients of a cold resource while one wake POST starts it, then routes them all", async () => {
    let awake = false
    handler = (_req, res, s) => {
      if (s.url.pathname === "/wake") {
        setTimeout(() => (awake = true), 300)
        return json(res, 202, {})
      }
      if (!awake) return json(res, 503, { message: "starting" }, { "retry-after": "1" })
      json(res, 200, { endpoint: `127.0.0.1:${echoPort}` })
    }
    const proxy = await startTestProxy({
      listeners: { tcp: { host: "127.0.0.1", port: 0, route: "sleepy" } },
      resolver: { type: "http", url: `${base}/resolve`, wakeUrl: `${base}/wake` },
      ssrf: { allow: ["127.0.0.0/8"] },
      coldStart: { timeout: 10 }
    })
    try {
      const answers = await Promise.all(
        Array.from({ length: 5 }, (_, i) => roundTrip(proxy.port("tcp"), `client ${i}`))
      )
      expect(answers).toEqual(Array.from({ length: 5 }, (_, i) => `client ${i}`))
      expect(seen.filter((s) => s.url.pathname === "/wake").map((s) => s.url.searchParams.get("id"))).toEqual([
        "sleepy"
      ])
    } finally {
      await proxy.stop()
    }
  })
})

describe("HttpResolver: pure parts", () => {
  it("reads Retry-After as seconds or a date", () => {
    expect(parseRetryAfter(null)).toBeUndefined()
    expect(parseRetryAfter("5")).toBe(5)
    expect(parseRetryAfter("soon")).toBeUndefined()
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 0)).toBe(10)
    expect(parseRetryAfter(new Date(0).toUTCString(), 10_000)).toBe(0)
  })

  it("accepts null metadata and timeout in an answer", () => {
    expect(parseAnswer("x", JSON.stringify({ endpoint: "h:1", metadata: null, timeout: null }))).toEqual({
      resourceId: "x",
      endpoint: { host: "h", port: 1 },
      metadata: {},
      timeout: undefined
    })
  })

  it("refuses a url that is not http(s)", () => {
    expect(() => makeHttpResolver({ url: "ftp://x/resolve" })).toThrow(/http: or https:/)
  })
})

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms))
