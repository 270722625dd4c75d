// A mysql listener's `auth` (logins checked by the proxy): its defaults, its mistakes named by key through the
// config decoder, and `polyproxy check-config`, which also refuses an auth.route the static routes lack.
import { describe, expect, it } from "vitest"
import { loadConfig } from "../../src/config/load.ts"
import { mysqlAuthDefaults } from "../../src/listeners/mysql/proxyAuth/settings.ts"
import { configFolder, runCli } from "../support/cliRun.ts"
import { configErrorOf } from "../support/config.ts"

const { write } = configFolder("mysql-auth")
const load = (yaml: string) => loadConfig(write("c.yaml", yaml), {})

describe("listeners.<mysql>.auth", () => {
  it("fills in the defaults; without it the listener has none", () => {
    const c = load(`
listeners:
  mysql: { port: 0, auth: { route: users, user: pooler, password: pooler-secret } }
  mysql-plain: { type: mysql, port: 0 }
routes: { users: "127.0.0.1:3306" }
`)
    expect(c.listeners.mysql?.auth).toEqual({
      route: "users",
      user: "pooler",
      password: "pooler-secret",
      query: mysqlAuthDefaults.query,
      ttl: 60,
      negativeTtl: 5
    })
    expect(c.listeners["mysql-plain"]?.auth).toBeUndefined()
  })

  it("takes every key, and no password at all", () => {
    const c = load(`
listeners:
  mysql:
    port: 0
    auth:
      route: users
      user: pooler
      query: "SELECT authentication_string, plugin FROM mysql.user WHERE User = ? AND Host = '%'"
      ttl: 0
      negativeTtl: 0.5
`)
    expect(c.listeners.mysql?.auth).toEqual({
      route: "users",
      user: "pooler",
      password: "",
      query: "SELECT authentication_string, plugin FROM mysql.user WHERE User = ? AND Host = '%'",
      ttl: 0,
      negativeTtl: 0.5
    })
  })

  it.each([
    ["auth: pooler", "listeners.mysql.auth", 'expected a mapping, got "pooler"'],
    ["auth: { user: pooler }", "listeners.mysql.auth.route", "required: the resource id of the backend"],
    ["auth: { route: users }", "listeners.mysql.auth.user", "required: the login the proxy reads"],
    ["auth: { route: '', user: pooler }", "listeners.mysql.auth.route", "non-empty string"],
    ["auth: { route: users, user: pooler, pasword: x }", "listeners.mysql.auth.pasword", "unknown key (known: route"],
    [
      "auth: { route: users, user: pooler, query: 'SELECT 1' }",
      "listeners.mysql.auth.query",
      'must take the user name as its one ? placeholder, got 0 in "SELECT 1"'
    ],
    ["auth: { route: users, user: pooler, query: 'SELECT ?, ?' }", "listeners.mysql.auth.query", "got 2"],
    ["auth: { route: users, user: pooler, ttl: -1 }", "listeners.mysql.auth.ttl", "seconds from 0 to 86400"],
    ["auth: { route: users, user: pooler, negativeTtl: soon }", "listeners.mysql.auth.negativeTtl", "seconds"]
  ])("refuses %s naming %s", (auth, key, why) => {
    const e = configErrorOf(() => load(`listeners: { mysql: { port: 0, ${auth} } }`))
    expect(e.key).toBe(key)
    expect(e.message).toContain(why)
  })

  it("never shows a password in an error, not even a mistyped one", () => {
    const e = configErrorOf(() =>
      load("listeners: { mysql: { port: 0, auth: { route: u, user: p, password: 123456 } } }")
    )
    expect(e.key).toBe("listeners.mysql.auth.password")
    expect(e.message).toContain("expected a string (quote it in YAML)")
    expect(e.message).not.toContain("123456")
  })

  it("belongs to mysql listeners only", () => {
    const e = configErrorOf(() => load("listeners: { postgres: { port: 0, auth: { route: u, user: p } } }"))
    expect(e.key).toBe("listeners.postgres.auth")
    expect(e.message).toContain("unknown key")
  })
})

describe("check-config with a mysql listener's auth", () => {
  it("refuses an auth.route the static routes lack, with exit 2 and the key", async () => {
    const file = write(
      "missing-route.yaml",
      "listeners:\n  mysql: { port: 0, auth: { route: users, user: pooler, password: s3cret } }\nroutes: { appdb: '127.0.0.1:3306' }\n"
    )
    const r = await runCli(["check-config", file])
    expect(r.code).toBe(2)
    expect(r.stdout).toBe("")
    expect(r.stderr).toContain(
      `polyproxy: invalid config ${file}: listeners.mysql.auth.route: no route "users" in routes: it names the backend the proxy reads users' password hashes from`
    )
    expect(r.stderr).not.toContain("s3cret")
  })

  it("accepts a route found exactly or by a wildcard, and any route when another resolver answers", async () => {
    const configs = [
      "listeners:\n  mysql: { port: 0, auth: { route: Users, user: pooler } }\nroutes: { users: '127.0.0.1:3306' }\n",
      "listeners:\n  mysql: { port: 0, auth: { route: users.example.com, user: pooler } }\nroutes: { '*.example.com': '127.0.0.1:3306' }\n",
      "listeners:\n  mysql: { port: 0, auth: { route: users, user: pooler } }\nresolver: { type: http, url: 'http://127.0.0.1:9/routes' }\n"
    ]
    for (const [i, text] of configs.entries()) {
      const r = await runCli(["check-config", write(`ok-${i}.yaml`, text)])
      expect(r.stderr).toBe("")
      expect(r.code).toBe(0)
      expect(r.stdout).toContain("listeners mysql:0")
    }
  })
})
