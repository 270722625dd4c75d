import { describe, expect, it } from "vitest"
import { makeCircuitBreaker } from "../../src/services/CircuitBreaker.ts"

describe("CircuitBreaker", () => {
  const setup = () => {
    let t = 0
    const b = makeCircuitBreaker({ failureThreshold: 3, cooldown: 10, now: () => t })
    return { b, advance: (ms: number) => (t += ms) }
  }

  it("opens after the threshold of consecutive failures and fails fast with a retry-after", () => {
    const { b } = setup()
    for (let i = 0; i < 2; i++) {
      expect(b.admit("db:1").ok).toBe(true)
      b.failure("db:1", "ECONNREFUSED")
    }
    expect(b.admit("db:1").ok).toBe(true)
    b.failure("db:1", "ECONNREFUSED")
    expect(b.admit("db:1")).toEqual({ ok: false, retryAfter: 10 })
    expect(b.snapshot()[0]).toMatchObject({
      backend: "db:1",
      state: "open",
      consecutiveFailures: 3,
      lastError: "ECONNREFUSED"
    })
    // other backends are unaffected
    expect(b.admit("db:2").ok).toBe(true)
  })

  it("a success in between resets the count", () => {
    const { b } = setup()
    b.failure("a", "x")
    b.failure("a", "x")
    b.success("a")
    b.failure("a", "x")
    b.failure("a", "x")
    expect(b.admit("a").ok).toBe(true)
  })

  it("half-opens after the cooldown: one trial at a time; success closes, failure reopens", () => {
    const { b, advance } = setup()
    for (let i = 0; i < 3; i++) b.failure("a", "x")
    advance(9_000)
    expect(b.admit("a")).toEqual({ ok: false, retryAfter: 1 })
    advance(1_000)
    expect(b.admit("a").ok).toBe(true) // the trial
    expect(b.admit("a").ok).toBe(false) // others wait for it
    expect(b.snapshot()[0]?.state).toBe("half-open")
    b.failure("a", "still down")
    expect(b.snapshot()[0]?.state).toBe("open")
    advance(10_000)
    expect(b.admit("a").ok).toBe(true)
    b.success("a")
    expect(b.snapshot()[0]?.state).toBe("closed")
    expect(b.admit("a").ok).toBe(true)
    expect(b.admit("a").ok).toBe(true)
  })

  it("isClosed says whether admit would let a connection through without changing anything", () => {
    const { b, advance } = setup()
    expect(b.isClosed("a")).toBe(true)
    b.failure("a", "x")
    expect(b.isClosed("a")).toBe(true) // below the threshold
    b.failure("a", "x")
    b.failure("a", "x")
    expect(b.isClosed("a")).toBe(false)
    advance(10_000)
    // Past the cooldown: still not closed, and asking did not start the half-open trial.
    expect(b.isClosed("a")).toBe(false)
    expect(b.snapshot()[0]?.state).toBe("open")
    expect(b.admit("a").ok).toBe(true)
    b.success("a")
    expect(b.isClosed("a")).toBe(true)
  })

  it("never opens with failureThreshold 0", () => {
    const b = makeCircuitBreaker({ failureThreshold: 0, cooldown: 1 })
    for (let i = 0; i < 100; i++) b.failure("a", "x")
    expect(b.admit("a").ok).toBe(true)
  })
})
