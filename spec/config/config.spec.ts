import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { decodeConfig } from "../../src/config/decode.ts"
import { applyEnv, envName, nearestEnvName } from "../../src/config/env.ts"
import { loadConfig } from "../../src/config/load.ts"
import { configErrorOf } from "../support/config.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "polyproxy-config-"))
const write = (name: string, text: string) => {
  const file = path.join(dir, name)
  fs.writeFileSync(file, text)
  return file
}
const errorOf = configErrorOf

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
    expect(c.listeners.mysql?.serverFlavor).toBe("auto")
    expect(c.listeners.postgres?.serverFlavor).toBeUndefined()
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
    ["listeners: { htp: { port: 1 } }", "listeners.htp.type", '"htp" is not a listener type'],
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
    ["timeouts: { halfClose: -1 }", "timeouts.halfClose", "seconds from 0 to 86400"],
    [
      "listeners: { mysql: { port: 1, serverFlavor: percona } }",
      "listeners.mysql.serverFlavor",
      "auto, mariadb, mysql"
    ],
    ["listeners: { mysql: { port: 1, serverVersion: latest } }", "listeners.mysql.serverVersion", '"8.0.40"'],
    ["listeners: { postgres: { port: 1, serverFlavor: mysql } }", "listeners.postgres.serverFlavor", "unknown key"],
    ["tcp: { keepAlive: { idle: 0 } }", "tcp.keepAlive.idle", "from 1 to 32767"],
    ["tcp: { keepAlive: { count: 200 } }", "tcp.keepAlive.count", "from 1 to 127"],
    ["tcp: { keepAlive: { interval: 1.5 } }", "tcp.keepAlive.interval", "integer"],
    ["tcp: { keepAlive: { probes: 3 } }", "tcp.keepAlive.probes", "unknown key"],
    ["tcp: { keepalive: true }", "tcp.keepalive", "unknown key"],
    ["ssrf: { disabled: 'yes' }", "ssrf.disabled", "true or false"],
    ["admin: { host: 'my host' }", "admin.host", "not a valid host name"],
    ["listeners: { tcp: { host: 10.0.0.1.5, port: 1, route: x } }", "listeners.tcp.host", "not a valid IPv4 address"],
    [
      "listeners: { tcp: { host: 127.0.0.1, port: 5000, route: x }, smtp: { host: localhost, port: 5000 } }",
      "listeners.smtp.port",
      "localhost:5000 overlaps listeners.tcp on 127.0.0.1:5000"
    ]
  ])("rejects %s naming %s", (yaml, key, why) => {
    const e = errorOf(() => loadConfig(write("bad.yaml", yaml), {}))
    expect(e.key).toBe(key)
    expect(e.message).toContain(why)
  })

  it("rejects text that is not YAML with the file, line and column named, and the lines around it", () => {
    const file = write("garbage.yaml", "listeners: { tcp: [ }")
    const message = errorOf(() => loadConfig(file, {})).message
    expect(message).toMatch(new RegExp(`^not valid YAML/JSON: ${file}:1:\\d+: `))
    expect(message).toContain("\n    listeners: { tcp: [ }\n")
    expect(message).not.toMatch(/column \d+:$/)
  })

  it("defaults tcp.keepAlive to libuv's probes after 60 s, and the SSRF guard on", () => {
    const c = loadConfig(write("defaults.yaml", "listeners: { tcp: { port: 0, route: x } }"), {})
    expect(c.tcp).toEqual({ keepAlive: { enabled: true, idle: 60, interval: 1, count: 10 } })
    expect(c.ssrf).toEqual({ allow: [], disabled: false })
    expect(decodeConfig({ tcp: { keepAlive: false } }, "/").tcp.keepAlive.enabled).toBe(false)
    expect(decodeConfig({ tcp: { keepAlive: { idle: 30, count: 3 } } }, "/").tcp.keepAlive).toEqual({
      enabled: true,
      idle: 30,
      interval: 1,
      count: 3
    })
  })

  it("lets listeners share a port where the kernel would: port 0, different addresses, ::1 beside 0.0.0.0", () => {
    const c = decodeConfig(
      {
        admin: { port: 0 },
        listeners: {
          tcp: { port: 0, route: "x" },
          http: { port: 0 },
          postgres: { host: "127.0.0.1", port: 6000 },
          mysql: { host: "127.0.0.2", port: 6000 },
          smtp: { host: "0.0.0.0", port: 6001 },
          mongodb: { host: "::1", port: 6001 }
        }
      },
      "/"
    )
    expect(Object.keys(c.listeners)).toHaveLength(6)
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
          POLYPROXY_TCP_KEEP_ALIVE_IDLE: "30",
          POLYPROXY_SSRF_DISABLED: "true",
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
    expect(c.tcp.keepAlive.idle).toBe(30)
    expect(c.ssrf.disabled).toBe(true)
    expect(raw.listeners.http.port).toBe(8080)
  })

  it("rejects unknown POLYPROXY_ variables and bad values by name", () => {
    const typo = errorOf(() => applyEnv({}, { POLYPROXY_LISTENER_HTTP_PORT: "1" }, "/"))
    expect(typo.key).toBe("POLYPROXY_LISTENER_HTTP_PORT")
    expect(typo.message).toContain("did you mean POLYPROXY_LISTENERS_HTTP_PORT?")
    expect(nearestEnvName("POLYPROXY_CACHE_NEGATIVETTL")).toBe("POLYPROXY_CACHE_NEGATIVE_TTL")
    expect(nearestEnvName("POLYPROXY_CONFG")).toBe("POLYPROXY_CONFIG")
    expect(nearestEnvName("POLYPROXY_ADMIN_TOKN")).toBe("POLYPROXY_ADMIN_TOKEN")
    expect(nearestEnvName("POLYPROXY_DISABLED")).toBe("POLYPROXY_SSRF_DISABLED")
    // Several variables end in _MAX_CONNECTIONS (limits, each listener), and LOG_CONNECTIONS is 3 edits away: no guess.
    expect(nearestEnvName("POLYPROXY_MAX_CONNECTIONS")).toBeUndefined()
    expect(nearestEnvName("POLYPROXY_PORT")).toBeUndefined()
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
