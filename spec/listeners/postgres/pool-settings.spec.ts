// A route's `metadata.pool` / `metadata.auth`: PgBouncer's defaults filled in, each mistake named by its key, parsed
// once per Route object, and a static route's bad block refused by the config check (what `check-config` runs).
import { describe, expect, it } from "vitest"
import { decodeConfig } from "../../../src/config/decode.ts"
import type { Route } from "../../../src/domain/Route.ts"
import { authDefaults, poolSettingsOf } from "../../../src/listeners/postgres/pool/settings.ts"
import { configErrorOf } from "../../support/config.ts"

const routeWith = (metadata: Record<string, unknown>): Route => ({
  resourceId: "t1",
  endpoint: { host: "127.0.0.1", port: 5432 },
  metadata
})

const login = { user: "pooler", password: "pooler-secret" }

describe("poolSettingsOf", () => {
  it.each([
    ["no pool or auth", {}],
    ["pool without a mode (session: the plain relay)", { pool: { size: 10 } }],
    ["session mode, with or without auth", { pool: { mode: "session" }, auth: login }],
    ["auth alone", { auth: login }]
  ])("%s: not pooled", (_, metadata) => {
    expect(poolSettingsOf(routeWith(metadata))).toBeUndefined()
  })

  it("transaction mode fills in PgBouncer's defaults", () => {
    expect(poolSettingsOf(routeWith({ pool: { mode: "transaction" }, auth: login }))).toEqual({
      pool: {
        mode: "transaction",
        size: 20,
        minIdle: 0,
        idleTimeout: 600,
        lifetime: 3600,
        maxWait: 120,
        maxWaiting: 10_000,
        resetQuery: "DISCARD ALL",
        maxPreparedStatements: 200,
        ignoreStartupParameters: ["extra_float_digits"],
        deferBegin: true
      },
      auth: {
        user: "pooler",
        password: "pooler-secret",
        query:
          "SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END FROM pg_authid WHERE rolname = $1 AND rolcanlogin",
        database: undefined,
        ttl: 60,
        negativeTtl: 5
      }
    })
  })

  it("takes every key as given", () => {
    const pool = {
      mode: "transaction",
      size: 10,
      minIdle: 2,
      idleTimeout: 30,
      lifetime: 0,
      maxWait: 0.5,
      maxWaiting: 50,
      resetQuery: "",
      maxPreparedStatements: 0,
      ignoreStartupParameters: ["extra_float_digits", "geqo", "myext.flag"],
      deferBegin: false
    }
    const auth = { user: "u", query: "SELECT * FROM pooler.lookup($1)", database: "authdb", ttl: 0, negativeTtl: 1 }
    expect(poolSettingsOf(routeWith({ pool, auth }))).toEqual({ pool, auth: { ...auth, password: "" } })
  })

  it.each([
    [
      { pool: { mode: "statement" }, auth: login },
      'metadata.pool.mode: expected one of session, transaction, got "statement"'
    ],
    [
      { pool: { mode: "transaction", size: 0 }, auth: login },
      "metadata.pool.size: expected an integer from 1 to 10000, got 0"
    ],
    [{ pool: { mode: "transaction", sise: 5 }, auth: login }, "metadata.pool.sise: unknown key"],
    [
      { pool: { mode: "transaction", size: 3, minIdle: 5 }, auth: login },
      "metadata.pool.minIdle: 5 is more than pool.size (3)"
    ],
    [
      { pool: { mode: "transaction", maxWait: "2s" }, auth: login },
      "metadata.pool.maxWait: expected a number of seconds"
    ],
    [
      { pool: { mode: "transaction", resetQuery: 1 }, auth: login },
      "metadata.pool.resetQuery: expected a string, got 1"
    ],
    [
      { pool: { mode: "transaction", ignoreStartupParameters: "extra_float_digits" }, auth: login },
      'metadata.pool.ignoreStartupParameters: expected a list of parameter names, got "extra_float_digits"'
    ],
    [
      { pool: { mode: "transaction", ignoreStartupParameters: ["extra float"] }, auth: login },
      'metadata.pool.ignoreStartupParameters[0]: expected a parameter name, got "extra float"'
    ],
    [
      { pool: { mode: "transaction", ignoreStartupParameters: ["geqo", "TimeZone"] }, auth: login },
      "metadata.pool.ignoreStartupParameters[1]: TimeZone is kept per client: it needs no ignoring"
    ],
    [
      { pool: { mode: "transaction", ignoreStartupParameters: ["user"] }, auth: login },
      "metadata.pool.ignoreStartupParameters[0]: user is always read, never ignored"
    ],
    [
      { pool: { mode: "transaction", ignoreStartupParameters: ["_pq_.x"] }, auth: login },
      "metadata.pool.ignoreStartupParameters[0]: protocol options (_pq_.) are declined, never ignored"
    ],
    [{ pool: "transaction", auth: login }, 'metadata.pool: expected a mapping, got "transaction"'],
    [{ pool: { mode: "transaction", deferBegin: "yes" }, auth: login }, "metadata.pool.deferBegin: expected"],
    [{ pool: { mode: "transaction" } }, "metadata.auth: required with pool.mode transaction"],
    [{ pool: { mode: "transaction" }, auth: { password: "x" } }, "metadata.auth.user: expected a non-empty string"],
    [
      { pool: { mode: "transaction" }, auth: { ...login, query: "SELECT 1" } },
      "metadata.auth.query: must take the role name as $1"
    ],
    [{ pool: { mode: "transaction" }, auth: { ...login, ttl: -1 } }, "metadata.auth.ttl: expected a number of seconds"],
    // A bad block is named even where it would not be used yet (session mode).
    [{ pool: { mode: "session", size: -1 } }, "metadata.pool.size: expected an integer"],
    [{ auth: { user: "u", pasword: "x" } }, "metadata.auth.pasword: unknown key"]
  ])("%j is refused, naming the key", (metadata, words) => {
    const answer = poolSettingsOf(routeWith(metadata))
    expect(typeof answer).toBe("string")
    expect(answer).toContain(`route t1: ${words}`)
  })

  it("never shows a mistyped auth password", () => {
    const answer = poolSettingsOf(routeWith({ pool: { mode: "transaction" }, auth: { user: "u", password: 918273 } }))
    expect(answer).toContain("metadata.auth.password: expected a string")
    expect(answer).not.toContain("918273")
  })

  it("parses a Route object once", () => {
    const route = routeWith({ pool: { mode: "transaction", size: 4 }, auth: login })
    const first = poolSettingsOf(route)
    expect(poolSettingsOf(route)).toBe(first)
    // Another Route with equal metadata is its own parse (same settings, new object).
    const again = poolSettingsOf(routeWith({ pool: { mode: "transaction", size: 4 }, auth: login }))
    expect(again).toEqual(first)
    expect(again).not.toBe(first)
  })

  it("keeps PgBouncer's auth_query text, with rolvaliduntil and rolcanlogin", () => {
    expect(authDefaults.query).toMatch(/FROM pg_authid WHERE rolname = \$1 AND rolcanlogin$/)
    expect(authDefaults.query).toContain("CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END")
  })
})

describe("the config check of a static route's pool block", () => {
  const config = (metadata: Record<string, unknown>) => ({
    routes: { t1: { endpoint: "127.0.0.1:5432", metadata } }
  })

  it("accepts a valid block", () => {
    const c = decodeConfig(config({ pool: { mode: "transaction", size: 10 }, auth: login }), "/")
    expect(c.routes.t1?.metadata?.pool).toEqual({ mode: "transaction", size: 10 })
  })

  it("refuses a bad one with the route's key", () => {
    const e = configErrorOf(() => decodeConfig(config({ pool: { mode: "transaction", size: 0 }, auth: login }), "/"))
    expect(e.key).toBe("routes.t1.metadata.pool.size")
    const missing = configErrorOf(() => decodeConfig(config({ pool: { mode: "transaction" } }), "/"))
    expect(missing.key).toBe("routes.t1.metadata.auth")
    expect(missing.message).toContain("required with pool.mode transaction")
  })
})
