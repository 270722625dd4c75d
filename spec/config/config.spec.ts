import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { ConfigError, decodeConfig } from "../../src/config/decode.ts"
import { applyEnv, envName } from "../../src/config/env.ts"
import { loadConfig } from "../../src/config/load.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "polyproxy-config-"))
const write = (name: string, text: string) => {
  const file = path.join(dir, name)
  fs.writeFileSync(file, text)
  return file
}
const errorOf = (f: () => unknown): ConfigError => {
  try {
    f()
  } catch (e) {
    if (e instanceof ConfigError) return e
    throw e
  }
  throw new Error("expected a ConfigError")
}

describe("config", () => {
  it("reads the contract's example with its defaults filled in", () => {
    const file = write(
      "full.yaml",
      `
workers: 1
admin:    { host: 127.0.0.1, port: 9090 }
listeners:
  http:     { host: 0.0.0.0, port: 8080 }
  postgres: { host: 0.0.0.0, port: 5432, tls: { cert: certs/s.crt, key: certs/s.key, ca: certs/ca.crt, requireClientCert: false } }
  mysql:    { port: 3306 }
  mongodb:  { port: 27017 }
  smtp:     { port: 2525 }
  tcp:      { port: 7000, route: "resource-id" }
routes:
  appdb: "127.0.0.1:5432"
  "*.example.com": { endpoint: "[::1]:8080", metadata: { tier: gold }, timeout: 2 }
cache: { ttl: 60, negativeTtl: 5 }
ssrf:  { allow: ["127.0.0.0/8"] }
timeouts: { handshake: 10, connect: 5, idle: 0 }
`
    )
    const c = loadConfig(file, {})
    expect(c.workers).toBe(1)
    expect(c.admin).toEqual({ host: "127.0.0.1", port: 9090 })
    expect(Object.keys(c.listeners).sort()).toEqual(["http", "mongodb", "mysql", "postgres", "smtp", "tcp"])
    expect(c.listeners.mysql).toMatchObject({ host: "0.0.0.0", port: 3306, maxConnections: 0 })
    expect(c.listeners.mysql?.tls).toBeUndefined()
    expect(c.listeners.tcp?.route).toBe("resource-id")
    expect(c.listeners.mongodb?.maxRoutingCommand).toBe(65_536)
    expect(c.listeners.mysql?.maxRoutingCommand).toBeUndefined()
    // certificate paths are anchored at the config file's folder
    expect(c.listeners.postgres?.tls?.cert).toBe(path.join(dir, "certs/s.crt"))
    expect(c.routes.appdb).toEqual({ endpoint: "127.0.0.1:5432" })
    expect(c.routes["*.example.com"]?.metadata).toEqual({ tier: "gold" })
    expect(c.cache).toEqual({ ttl: 60, negativeTtl: 5, maxEntries: 100_000 })
    expect(c.timeouts).toEqual({ handshake: 10, connect: 5, idle: 0, halfClose: 60, resolve: 5, drain: 30 })
  })

  it("reads JSON too, and starts only the listeners present", () => {
    const file = write("only-tcp.json", JSON.stringify({ listeners: { tcp: { port: 0, route: "x" } } }))
    const c = loadConfig(file, {})
    expect(Object.keys(c.listeners)).toEqual(["tcp"])
    expect(c.listeners.tcp?.port).toBe(0)
  })

  it.each([
    ["listeners: { http: { port: 70000 } }", "listeners.http.port", "from 0 to 65535"],
    ["listeners: { htp: { port: 1 } }", "listeners.htp", "unknown key"],
    ["listeners: { tcp: { port: 1 } }", "listeners.tcp.route", "non-empty string"],
    ["workers: -1", "workers", "integer"],
    ["cache: { ttl: fast }", "cache.ttl", "seconds"],
    ["routes: { appdb: 'nohost' }", "routes.appdb", "host:port"],
    ["routes: { appdb: '127.0.0.1:99999' }", "routes.appdb", "out of range"],
    ["routes: { 'a.*.com': '127.0.0.1:1' }", "routes.a.*.com", "wildcard"],
    ["ssrf: { allow: 127.0.0.0/8 }", "ssrf.allow", "list"],
    ["ssrf: { allow: ['127.0.0.0/99'] }", "ssrf.allow", "127.0.0.0/99"],
    ["upstream: { sourceAddresses: ['10.0.0.300'] }", "upstream.sourceAddresses", "IP addresses"],
    ["log: { level: loud }", "log.level", "debug, info, warn, error"],
    [
      "listeners: { postgres: { port: 1, tls: { cert: a, key: b, requireClientCert: true } } }",
      "listeners.postgres.tls.ca",
      "requireClientCert"
    ],
    ["timeouts: { handshak: 1 }", "timeouts.handshak", "unknown key"],
    ["listeners: { mongodb: { port: 1, maxRoutingCommand: 100 } }", "listeners.mongodb.maxRoutingCommand", "1024 to"],
    ["listeners: { mysql: { port: 1, maxRoutingCommand: 2048 } }", "listeners.mysql.maxRoutingCommand", "unknown key"],
    ["timeouts: { halfClose: -1 }", "timeouts.halfClose", "seconds from 0 to 86400"]
  ])("rejects %s naming %s", (yaml, key, why) => {
    const e = errorOf(() => loadConfig(write("bad.yaml", yaml), {}))
    expect(e.key).toBe(key)
    expect(e.message).toContain(why)
  })

  it("rejects text that is not YAML with the file named", () => {
    const file = write("garbage.yaml", "listeners: { tcp: [ }")
    expect(errorOf(() => loadConfig(file, {})).message).toContain(file)
  })

  it("names a missing file", () => {
    expect(errorOf(() => loadConfig(path.join(dir, "nope.yaml"), {})).message).toContain("ENOENT")
  })
})

describe("environment overrides", () => {
  it("maps camelCase keys to SNAKE_CASE names", () => {
    expect(envName("listeners.http.port")).toBe("POLYPROXY_LISTENERS_HTTP_PORT")
    expect(envName("cache.negativeTtl")).toBe("POLYPROXY_CACHE_NEGATIVE_TTL")
    expect(envName("listeners.postgres.tls.requireClientCert")).toBe(
      "POLYPROXY_LISTENERS_POSTGRES_TLS_REQUIRE_CLIENT_CERT"
    )
  })

  it("overrides the file, adds listeners, and never mutates the parsed value", () => {
    const raw = { listeners: { http: { port: 8080 } }, cache: { ttl: 60 } }
    const c = decodeConfig(
      applyEnv(
        raw,
        {
          POLYPROXY_LISTENERS_HTTP_PORT: "8081",
          POLYPROXY_LISTENERS_TCP_PORT: "7001",
          POLYPROXY_LISTENERS_TCP_ROUTE: "db",
          POLYPROXY_CACHE_NEGATIVE_TTL: "2.5",
          POLYPROXY_TIMEOUTS_HALF_CLOSE: "0",
          POLYPROXY_SSRF_ALLOW: "127.0.0.0/8, ::1/128",
          POLYPROXY_UPSTREAM_SOURCE_ADDRESSES: "127.0.0.2,::1",
          POLYPROXY_ROUTES: '{"db":"127.0.0.1:5432"}',
          POLYPROXY_CONFIG: "ignored.yaml",
          HOME: "/root"
        },
        "/srv"
      ),
      "/srv"
    )
    expect(c.listeners.http?.port).toBe(8081)
    expect(c.listeners.tcp).toMatchObject({ port: 7001, route: "db" })
    expect(c.cache.negativeTtl).toBe(2.5)
    expect(c.cache.ttl).toBe(60)
    expect(c.timeouts.halfClose).toBe(0)
    expect(c.ssrf.allow).toEqual(["127.0.0.0/8", "::1/128"])
    expect(c.upstream.sourceAddresses).toEqual(["127.0.0.2", "::1"])
    expect(c.routes.db?.endpoint).toBe("127.0.0.1:5432")
    expect(raw.listeners.http.port).toBe(8080)
  })

  it("rejects unknown POLYPROXY_ variables and bad values by name", () => {
    expect(errorOf(() => applyEnv({}, { POLYPROXY_LISTENER_HTTP_PORT: "1" }, "/")).key).toBe(
      "POLYPROXY_LISTENER_HTTP_PORT"
    )
    const e = errorOf(() => decodeConfig(applyEnv({}, { POLYPROXY_ADMIN_PORT: "x" }, "/"), "/"))
    expect(e.key).toBe("POLYPROXY_ADMIN_PORT")
  })

  it("honours the seed's PROXY_TLS_* variables as the shared TLS", () => {
    const c = decodeConfig(
      applyEnv(
        {},
        {
          PROXY_TLS_ENABLED: "true",
          PROXY_TLS_CERT: "certs/server.crt",
          PROXY_TLS_KEY: "/etc/k.pem",
          PROXY_TLS_CA: "ca.pem",
          PROXY_TLS_REQUIRE_CLIENT_CERT: "true"
        },
        "/srv"
      ),
      "/elsewhere"
    )
    expect(c.tls).toEqual({
      cert: "/srv/certs/server.crt",
      key: "/etc/k.pem",
      ca: "/srv/ca.pem",
      requireClientCert: true
    })
    expect(errorOf(() => applyEnv({}, { PROXY_TLS_ENABLED: "1" }, "/")).key).toBe("PROXY_TLS_CERT")
    expect(decodeConfig(applyEnv({}, { PROXY_TLS_ENABLED: "false" }, "/"), "/").tls).toBeUndefined()
  })
})
