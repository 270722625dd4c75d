import { describe, expect, it } from "vitest"
import { decodeConfig } from "../../../src/config/decode.ts"

const http = (o: Record<string, unknown>) => decodeConfig({ listeners: { http: { port: 0, ...o } } }, "/etc/polyproxy")

describe("listeners.http keys", () => {
  it("defaults: telemetry off, Host preserved, no forwarded trust, h2c on, 16 KiB heads, pooled upstreams", () => {
    expect(http({}).listeners.http?.http).toEqual({
      telemetry: false,
      preserveHost: true,
      trustForwarded: false,
      h2c: true,
      certificates: [],
      maxHeaderSize: 16_384,
      keepAliveTimeout: 5,
      upstream: { headersTimeout: 60, bodyTimeout: 60, keepAliveTimeout: 4, maxConnections: 256, keepAlive: true },
      fixedBackend: undefined,
      directResponse: undefined,
      fastPath: false
    })
  })

  it("reads every key, resolving certificate paths against the config's folder", () => {
    const o = http({
      tls: { cert: "default.crt", key: "default.key" },
      telemetry: true,
      preserveHost: false,
      trustForwarded: ["10.0.0.0/8"],
      certificates: [
        { cert: "a.crt", key: "a.key", hosts: ["a.example.com"] },
        { cert: "/abs/w.crt", key: "w.key" }
      ],
      upstream: { headersTimeout: 5, maxConnections: 0 },
      upstreamTls: { rejectUnauthorized: false }
    }).listeners.http!
    expect(o.http).toMatchObject({
      telemetry: true,
      preserveHost: false,
      trustForwarded: ["10.0.0.0/8"],
      certificates: [
        { cert: "/etc/polyproxy/a.crt", key: "/etc/polyproxy/a.key", hosts: ["a.example.com"] },
        { cert: "/abs/w.crt", key: "/etc/polyproxy/w.key", hosts: undefined }
      ],
      upstream: { headersTimeout: 5, bodyTimeout: 60, keepAliveTimeout: 4, maxConnections: 0 }
    })
    expect(o.upstreamTls).toEqual({ rejectUnauthorized: false, ca: undefined })
  })

  it("directResponse: true is 200 ok, a mapping any final status and body; upstream.keepAlive switches pooling", () => {
    expect(http({ directResponse: true }).listeners.http?.http?.directResponse).toEqual({ status: 200, body: "ok\n" })
    expect(http({ directResponse: { status: 503 } }).listeners.http?.http?.directResponse).toEqual({
      status: 503,
      body: ""
    })
    expect(http({ directResponse: false }).listeners.http?.http?.directResponse).toBeUndefined()
    expect(http({ upstream: { keepAlive: false } }).listeners.http?.http?.upstream.keepAlive).toBe(false)
  })

  it("names the bad key and why", () => {
    expect(() => http({ trustForwarded: ["10.0.0.0/33"] })).toThrow(/listeners\.http\.trustForwarded/)
    expect(() => http({ trustForwarded: "yes" })).toThrow(/listeners\.http\.trustForwarded/)
    expect(() => http({ certificates: [{ cert: "a.crt", key: "a.key" }] })).toThrow(
      /listeners\.http\.certificates: needs `tls`/
    )
    expect(() => http({ fixedBackend: "origin.internal:80" })).toThrow(
      /listeners\.http\.fixedBackend: expected an IP literal/
    )
    expect(() => http({ maxHeaderSize: 10 })).toThrow(/listeners\.http\.maxHeaderSize/)
    expect(() => http({ upstream: { poolSize: 3 } })).toThrow(/listeners\.http\.upstream\.poolSize: unknown key/)
    expect(() => http({ telemetry: "on" })).toThrow(/listeners\.http\.telemetry/)
    expect(() => http({ upstream: { keepAlive: "no" } })).toThrow(/listeners\.http\.upstream\.keepAlive: expected true/)
    expect(() => http({ fastPath: true, upstream: { keepAlive: false } })).toThrow(
      /listeners\.http\.upstream\.keepAlive: false needs fastPath off/
    )
    expect(() => http({ directResponse: { status: 99 } })).toThrow(
      /listeners\.http\.directResponse\.status: .*200 to 599/
    )
    expect(() => http({ directResponse: { status: 503, body: 7 } })).toThrow(/listeners\.http\.directResponse\.body/)
    expect(() => http({ directResponse: { status: 204, body: "x" } })).toThrow(
      /listeners\.http\.directResponse\.body: must be empty: a 204 response/
    )
    expect(() => http({ directResponse: { code: 200 } })).toThrow(/listeners\.http\.directResponse\.code: unknown key/)
    // HTTP-only keys stay HTTP-only.
    expect(() => decodeConfig({ listeners: { tcp: { port: 0, route: "x", telemetry: true } } }, "/")).toThrow(
      /listeners\.tcp\.telemetry: unknown key/
    )
  })
})
