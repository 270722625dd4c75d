import * as Effect from "effect/Effect"
import { describe, expect, it } from "vitest"
import { proxyError } from "../../src/domain/ProxyError.ts"
import { makeColdStart } from "../../src/services/ColdStart.ts"

const failureOf = async (e: Effect.Effect<unknown, { reason: string; message: string }>) =>
  Effect.runPromise(Effect.flip(e))

describe("ColdStart", () => {
  it("wakes once for 100 waiting clients and releases them all when ready", async () => {
    const cold = makeColdStart({ timeout: 5, maxQueue: 1000, minBackoffMs: 10 })
    let wakes = 0
    let readyAt = Number.POSITIVE_INFINITY
    let checks = 0
    const wake = Effect.sync(() => {
      wakes++
      readyAt = Date.now() + 300
    })
    const ready = Effect.suspend(() => {
      checks++
      return Date.now() >= readyAt ? Effect.void : Effect.fail(proxyError("CONNECT_FAILED", "backend", "not yet"))
    })
    const started = Date.now()
    await Promise.all(Array.from({ length: 100 }, () => Effect.runPromise(cold.await("db", wake, ready))))
    expect(wakes).toBe(1)
    expect(Date.now() - started).toBeGreaterThanOrEqual(280)
    // polled with backoff, not once per waiter
    expect(checks).toBeLessThan(20)
    expect(cold.waiting().size).toBe(0)
  })

  it("gives every waiter 'unavailable' when the backend never wakes", async () => {
    const cold = makeColdStart({ timeout: 0.4, maxQueue: 1000, minBackoffMs: 10 })
    const never = Effect.fail(proxyError("CONNECT_FAILED", "backend", "down"))
    const started = Date.now()
    const errors = await Promise.all(Array.from({ length: 100 }, () => failureOf(cold.await("db", Effect.void, never))))
    expect(Date.now() - started).toBeLessThan(1_500)
    expect(new Set(errors.map((e) => e.reason))).toEqual(new Set(["UNAVAILABLE"]))
    expect(errors[0]?.message).toContain("did not become ready within 0.4s")
  })

  it("refuses waiters beyond maxQueue at once", async () => {
    const cold = makeColdStart({ timeout: 1, maxQueue: 2, minBackoffMs: 10 })
    let release = false
    const ready = Effect.suspend(() =>
      release ? Effect.void : Effect.fail(proxyError("CONNECT_FAILED", "backend", "no"))
    )
    const a = Effect.runPromise(cold.await("db", Effect.void, ready))
    const b = Effect.runPromise(cold.await("db", Effect.void, ready))
    const c = await failureOf(cold.await("db", Effect.void, ready))
    expect(c.message).toContain("2 connections already wait")
    release = true
    await Promise.all([a, b])
  })

  it("starts a new wake-up for the next cold period", async () => {
    const cold = makeColdStart({ timeout: 1, maxQueue: 10, minBackoffMs: 5 })
    let wakes = 0
    const wake = Effect.sync(() => void wakes++)
    await Effect.runPromise(cold.await("db", wake, Effect.void))
    await Effect.runPromise(cold.await("db", wake, Effect.void))
    expect(wakes).toBe(2)
  })
})
