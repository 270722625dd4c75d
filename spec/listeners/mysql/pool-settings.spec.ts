// A route's `metadata.pool` for a mysql listener that checks logins itself: session mode without a cap when there is
// none, PgBouncer's numbers in transaction mode, each mistake named by its key, parsed once per Route object; and the
// config check of a static route, which takes a MySQL block (no `auth`) when the config has a mysql listener.
import { describe, expect, it } from "vitest"
import { decodeConfig } from "../../../src/config/decode.ts"
import type { Route } from "../../../src/domain/Route.ts"
import {
  mysqlPoolSettingsOf,
  mysqlSessionDefaults,
  mysqlTransactionDefaults
} from "../../../src/listeners/mysql/pool/settings.ts"
import { configErrorOf } from "../../support/config.ts"

const routeWith = (metadata: Record<string, unknown>): Route => ({
  resourceId: "t1",
  endpoint: { host: "127.0.0.1", port: 3306 },
  metadata
})

describe("mysqlPoolSettingsOf", () => {
  it("no pool block: session mode, no cap on server connections, PgBouncer's timeouts", () => {
    expect(mysqlPoolSettingsOf(routeWith({}))).toEqual({
      mode: "session",
      size: 0,
      minIdle: 0,
      idleTimeout: 600,
      lifetime: 3600,
      maxWait: 120,
      maxWaiting: 10_000
    })
    expect(mysqlPoolSettingsOf(routeWith({ pool: { size: 50 } }))).toEqual({ ...mysqlSessionDefaults, size: 50 })
  })

  it("transaction mode: 20 server connections unless told", () => {
    expect(mysqlPoolSettingsOf(routeWith({ pool: { mode: "transaction" } }))).toEqual({
      ...mysqlTransactionDefaults,
      size: 20
    })
    const pool = { mode: "transaction", size: 0, minIdle: 4, idleTimeout: 0, lifetime: 60, maxWait: 0.5, maxWaiting: 9 }
    expect(mysqlPoolSettingsOf(routeWith({ pool }))).toEqual(pool)
  })

  it.each([
    [{ pool: { mode: "statement" } }, 'metadata.pool.mode: expected one of session, transaction, got "statement"'],
    [{ pool: { size: -1 } }, "metadata.pool.size: expected an integer from 0 to 10000, got -1"],
    [{ pool: { mode: "transaction", size: 3, minIdle: 5 } }, "metadata.pool.minIdle: 5 is more than pool.size (3)"],
    [{ pool: { maxWait: "2s" } }, "metadata.pool.maxWait: expected a number of seconds"],
    [{ pool: { resetQuery: "DISCARD ALL" } }, "metadata.pool.resetQuery: unknown key"],
    [{ pool: "transaction" }, 'metadata.pool: expected a mapping, got "transaction"']
  ])("%j is refused, naming the key", (metadata, words) => {
    const answer = mysqlPoolSettingsOf(routeWith(metadata))
    expect(typeof answer).toBe("string")
    expect(answer).toContain(`route t1: ${words}`)
  })

  it("parses once per Route object", () => {
    const route = routeWith({ pool: { mode: "transaction", size: 4 } })
    const first = mysqlPoolSettingsOf(route)
    expect(mysqlPoolSettingsOf(route)).toBe(first)
    const bad = routeWith({ pool: { size: "x" } })
    expect(mysqlPoolSettingsOf(bad)).toBe(mysqlPoolSettingsOf(bad))
  })
})

describe("the config check of a static route's pool block, with a mysql listener", () => {
  const config = (metadata: Record<string, unknown>, listeners: Record<string, unknown>) => ({
    listeners,
    routes: { t1: { endpoint: "127.0.0.1:3306", metadata } }
  })
  const mysql = { mysql: { port: 0 } }

  it("takes a MySQL block (no auth: the listener checks logins) only when a mysql listener may read it", () => {
    const block = { pool: { mode: "transaction", size: 0 } }
    expect(decodeConfig(config(block, mysql), "/").routes.t1?.metadata?.pool).toEqual(block.pool)
    // Without one, PostgreSQL's rules: its auth is required, its size starts at 1.
    const e = configErrorOf(() => decodeConfig(config(block, { postgres: { port: 0 } }), "/"))
    expect(e.key).toBe("routes.t1.metadata.pool.size")
  })

  it("refuses a block neither protocol can read, naming the key", () => {
    const e = configErrorOf(() => decodeConfig(config({ pool: { mode: "transaction", sise: 5 } }, mysql), "/"))
    expect(e.key).toBe("routes.t1.metadata.pool.sise")
  })
})
