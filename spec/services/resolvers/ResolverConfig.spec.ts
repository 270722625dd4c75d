// The `resolver` config section: decoding, environment overrides, and which layer the proxy builds from it.
import * as net from "node:net"
import { describe, expect, it } from "vitest"
import { decodeConfig } from "../../../src/config/decode.ts"
import { applyEnv, documentedEnv } from "../../../src/config/env.ts"
import { Resolver } from "../../../src/services/Resolver.ts"
import { configErrorOf } from "../../support/config.ts"
import { startTestProxy } from "../../support/proxy.ts"

const decode = (resolver: unknown) => decodeConfig({ resolver }, "/").resolver

const errorOf = configErrorOf

describe("config: resolver", () => {
  it("defaults to the static routes", () => {
    expect(decodeConfig({}, "/").resolver).toEqual({ type: "static" })
    expect(decode(null)).toEqual({ type: "static" })
    expect(decode({ type: "static" })).toEqual({ type: "static" })
    expect(decode({})).toEqual({ type: "static" })
  })

  it("reads a redis section with its defaults", () => {
    expect(decode({ type: "redis", url: "redis://127.0.0.1:6379/0" })).toEqual({
      type: "redis",
      url: "redis://127.0.0.1:6379/0",
      key: "polyproxy:routes",
      timeout: 1
    })
    expect(decode({ type: "redis", url: "rediss://:pw@cache:6380", key: "routes", timeout: 0.5 })).toMatchObject({
      url: "rediss://:pw@cache:6380",
      key: "routes",
      timeout: 0.5
    })
  })

  it("reads an http section with its defaults", () => {
    expect(decode({ type: "http", url: "http://127.0.0.1:8081/resolve" })).toEqual({
      type: "http",
      url: "http://127.0.0.1:8081/resolve",
      token: undefined,
      timeout: 2,
      retries: 2,
      failureThreshold: 5,
      cooldown: 5,
      wakeUrl: undefined
    })
    expect(
      decode({
        type: "http",
        url: "https://routes.internal/resolve",
        token: "t",
        timeout: 1,
        retries: 0,
        failureThreshold: 0,
        cooldown: 30,
        wakeUrl: "https://routes.internal/wake"
      })
    ).toEqual({
      type: "http",
      url: "https://routes.internal/resolve",
      token: "t",
      timeout: 1,
      retries: 0,
      failureThreshold: 0,
      cooldown: 30,
      wakeUrl: "https://routes.internal/wake"
    })
  })

  it("rejects unknown keys, bad types and bad values, naming the key", () => {
    const cases: Array<[unknown, string, RegExp]> = [
      ["redis", "resolver", /expected a mapping/],
      [{ type: "consul" }, "resolver.type", /static, redis, http/],
      [{ type: "static", url: "redis://x" }, "resolver.url", /unknown key/],
      [{ type: "redis" }, "resolver.url", /non-empty string/],
      [{ type: "redis", url: "http://x:1" }, "resolver.url", /redis: or rediss:/],
      [{ type: "redis", url: "not a url" }, "resolver.url", /not a valid URL/],
      [{ type: "redis", url: "redis://x", retries: 1 }, "resolver.retries", /unknown key/],
      [{ type: "redis", url: "redis://x", timeout: 0 }, "resolver.timeout", /more than 0/],
      [{ type: "redis", url: "redis://x", key: "" }, "resolver.key", /non-empty/],
      [{ type: "http", url: "redis://x" }, "resolver.url", /http: or https:/],
      [{ type: "http", url: "http://x", retries: 1.5 }, "resolver.retries", /integer/],
      [{ type: "http", url: "http://x", retries: 11 }, "resolver.retries", /integer from 0 to 10/],
      [{ type: "http", url: "http://x", timeout: -1 }, "resolver.timeout", /seconds/],
      [{ type: "http", url: "http://x", wakeUrl: "ftp://x" }, "resolver.wakeUrl", /http: or https:/],
      [{ type: "http", url: "http://x", token: 5 }, "resolver.token", /string/],
      [{ type: "http", url: "http://x", key: "k" }, "resolver.key", /unknown key/]
    ]
    for (const [value, key, why] of cases) {
      const e = errorOf(() => decode(value))
      expect(e.key, JSON.stringify(value)).toBe(key)
      expect(e.message, JSON.stringify(value)).toMatch(why)
    }
  })

  it("never echoes a URL back, since it may carry a password", () => {
    const e = errorOf(() => decode({ type: "redis", url: "http://:hunter2@cache:6379" }))
    expect(e.message).not.toContain("hunter2")
  })

  it("takes POLYPROXY_RESOLVER_TYPE, _URL and _TOKEN from the environment", () => {
    const raw = applyEnv(
      {},
      {
        POLYPROXY_RESOLVER_TYPE: "http",
        POLYPROXY_RESOLVER_URL: "http://127.0.0.1:8081/resolve",
        POLYPROXY_RESOLVER_TOKEN: "from-env"
      },
      "/"
    )
    expect(decodeConfig(raw, "/").resolver).toMatchObject({
      type: "http",
      url: "http://127.0.0.1:8081/resolve",
      token: "from-env"
    })
    // on top of the file's section: the environment wins key by key
    const merged = applyEnv(
      { resolver: { type: "redis", url: "redis://file:6379", key: "k" } },
      { POLYPROXY_RESOLVER_URL: "redis://env:6379" },
      "/"
    )
    expect(decodeConfig(merged, "/").resolver).toEqual({ type: "redis", url: "redis://env:6379", key: "k", timeout: 1 })
    const names = documentedEnv().map(([name]) => name)
    expect(names).toEqual(
      expect.arrayContaining(["POLYPROXY_RESOLVER_TYPE", "POLYPROXY_RESOLVER_URL", "POLYPROXY_RESOLVER_TOKEN"])
    )
  })
})

describe("runProxy: resolver choice", () => {
  it("a Resolver layer passed in RunOptions wins over the config's section", async () => {
    const echo = net.createServer((s) => s.pipe(s))
    await new Promise<void>((res) => echo.listen(0, "127.0.0.1", res))
    const port = (echo.address() as net.AddressInfo).port
    const proxy = await startTestProxy(
      {
        listeners: { tcp: { host: "127.0.0.1", port: 0, route: "mine" } },
        // would fail every lookup: nothing listens there
        resolver: { type: "http", url: "http://127.0.0.1:1/resolve", retries: 0 },
        ssrf: { allow: ["127.0.0.0/8"] }
      },
      Resolver.layerTest({ mine: `127.0.0.1:${port}` })
    )
    try {
      const answer = await new Promise<string>((res, rej) => {
        const s = net.connect(proxy.port("tcp"), "127.0.0.1")
        s.once("data", (d) => {
          s.end()
          res(String(d))
        })
        s.once("error", rej)
        s.write("mine")
      })
      expect(answer).toBe("mine")
    } finally {
      await proxy.stop()
      echo.close()
    }
  })
})
