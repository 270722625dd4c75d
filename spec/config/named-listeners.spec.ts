// Named listeners: several of one type (two postgres ports, two tcp fixed routes), the short form kept (the name is
// the type), and what the decoder refuses about them, naming the key. A program's own listener type is known to the
// decoder only when passed to it.
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { ConfigError, decodeConfig } from "../../src/config/decode.ts"
import { applyEnv } from "../../src/config/env.ts"
import { parseConfigText } from "../../src/config/load.ts"
import type { ListenerManifest } from "../../src/listeners/manifest.ts"
import { configErrorOf } from "../support/config.ts"

const yaml = (text: string) => parseConfigText(text, "polyproxy.yaml")

const issueExample = `
listeners:
  pg-main:  { type: postgres, port: 5432 }
  pg-alt:   { type: postgres, port: 6432, tls: { cert: a.crt, key: a.key } }
  redis:    { type: tcp, port: 6379, route: cache, protocol: redis }
  memcache: { type: tcp, port: 11211, route: memcache, protocol: memcached }
  mysql:    { port: 3306 }
`

describe("named listeners", () => {
  it("decodes several listeners of one type, each with its name, type and protocol label", () => {
    const c = decodeConfig(yaml(issueExample), "/etc/polyproxy")
    expect(Object.keys(c.listeners)).toEqual(["pg-main", "pg-alt", "redis", "memcache", "mysql"])
    expect(c.listeners["pg-main"]).toMatchObject({ type: "postgres", port: 5432, protocol: "postgresql" })
    expect(c.listeners["pg-main"]?.routeBy).toBe("database")
    expect(c.listeners["pg-alt"]).toMatchObject({ type: "postgres", port: 6432, protocol: "postgresql" })
    expect(c.listeners["pg-alt"]?.tls?.cert).toBe(path.join("/etc/polyproxy", "a.crt"))
    expect(c.listeners.redis).toMatchObject({ type: "tcp", route: "cache", protocol: "redis" })
    expect(c.listeners.memcache).toMatchObject({ type: "tcp", route: "memcache", protocol: "memcached" })
    // The short form: the name is the type.
    expect(c.listeners.mysql).toMatchObject({ type: "mysql", port: 3306, serverFlavor: "auto" })
  })

  it("labels a tcp listener after its port unless told otherwise, whatever its name", () => {
    const c = decodeConfig(yaml("listeners: { cache: { type: tcp, port: 6379, route: x } }"), "/")
    expect(c.listeners.cache?.protocol).toBe("redis")
  })

  it.each([
    ["listeners: { htp: { port: 1 } }", "listeners.htp.type", '"htp" is not a listener type'],
    ["listeners: { pg-x: { type: postgress, port: 1 } }", "listeners.pg-x.type", 'unknown listener type "postgress"'],
    ["listeners: { pg-x: { type: 5, port: 1 } }", "listeners.pg-x.type", "non-empty string"],
    ["listeners: { 1pg: { type: postgres, port: 1 } }", "listeners.1pg", "a listener name is a letter"],
    ["listeners: { pg.x: { type: postgres, port: 1 } }", "listeners.pg.x", "a listener name is a letter"],
    // The keys a listener takes are its type's, not its name's.
    ["listeners: { cache: { type: tcp, port: 1, route: x, routeBy: user } }", "listeners.cache.routeBy", "unknown key"],
    ["listeners: { pg-x: { type: postgres, port: 1, route: x } }", "listeners.pg-x.route", "unknown key"],
    ["listeners: { pg-x: { type: postgres, port: 1, routeBy: ehlo } }", "listeners.pg-x.routeBy", "database, user"],
    ["listeners: { cache: { type: tcp, port: 1 } }", "listeners.cache.route", "non-empty string"],
    ["listeners: { cache: { type: tcp, port: 1, route: x, protocol: rediss } }", "listeners.cache.protocol", "redis"],
    [
      "listeners: { pg-a: { type: postgres, host: 127.0.0.1, port: 5000 }, pg-b: { type: postgres, port: 5000 } }",
      "listeners.pg-b.port",
      "overlaps listeners.pg-a on 127.0.0.1:5000"
    ],
    ["listeners: [ postgres ]", "listeners", "expected a mapping of listener name"]
  ])("rejects %s naming %s", (text, key, why) => {
    const e = configErrorOf(() => decodeConfig(yaml(text), "/"))
    expect(e.key).toBe(key)
    expect(e.message).toContain(why)
  })

  it("takes environment overrides by listener name, dashes as underscores", () => {
    const raw = yaml("listeners: { pg-alt: { type: postgres, port: 6432 }, cache: { type: tcp, port: 1, route: a } }")
    const env = { POLYPROXY_LISTENERS_PG_ALT_PORT: "7432", POLYPROXY_LISTENERS_CACHE_ROUTE: "b" }
    const c = decodeConfig(applyEnv(raw, env, "/"), "/")
    expect(c.listeners["pg-alt"]?.port).toBe(7432)
    expect(c.listeners.cache?.route).toBe("b")
    // A postgres listener has no route: no variable sets one.
    const e = configErrorOf(() => applyEnv(raw, { POLYPROXY_LISTENERS_PG_ALT_ROUTE: "x" }, "/"))
    expect(e.key).toBe("POLYPROXY_LISTENERS_PG_ALT_ROUTE")
  })
})

describe("a program's own listener type", () => {
  const echo: ListenerManifest = {
    type: "echo",
    label: "echo",
    options: {
      keys: ["greeting"],
      decode: (o, key) => {
        if (o.greeting !== undefined && typeof o.greeting !== "string") {
          throw new ConfigError(`${key}.greeting`, "expected text")
        }
        return { options: { greeting: o.greeting ?? "hello" } }
      }
    },
    start: () => {
      throw new Error("not started by the decoder")
    }
  }
  const text = "listeners: { greeter: { type: echo, port: 0, greeting: hi } }"

  it("is decoded with its manifest: its own keys by its decoder, its label the type's own", () => {
    const c = decodeConfig(yaml(text), "/", { listeners: [echo] })
    expect(c.listeners.greeter).toMatchObject({ type: "echo", protocol: "echo", options: { greeting: "hi" } })
    const bad = configErrorOf(() => decodeConfig(yaml(text.replace("hi", "[1]")), "/", { listeners: [echo] }))
    expect(bad.key).toBe("listeners.greeter.greeting")
    const short = decodeConfig(yaml("listeners: { echo: { port: 0 } }"), "/", { listeners: [echo] })
    expect(short.listeners.echo).toMatchObject({ type: "echo", options: { greeting: "hello" } })
  })

  it("is unknown without it", () => {
    const e = configErrorOf(() => decodeConfig(yaml(text), "/"))
    expect(e.key).toBe("listeners.greeter.type")
    expect(e.message).toContain('unknown listener type "echo" (known: http, postgres, mysql, mongodb, smtp, tcp)')
  })
})
