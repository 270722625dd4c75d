// Per backend endpoint: after `failureThreshold` consecutive connect failures the breaker opens and connections fail
// fast with UNAVAILABLE instead of each waiting for a connect timeout. After `cooldown` seconds one trial connection
// is let through (half-open): success closes the breaker, failure opens it again.
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"

export type BreakerState = "closed" | "open" | "half-open"

export interface BreakerOptions {
  /** Consecutive failures that open the breaker; 0 = never open. */
  readonly failureThreshold: number
  /** Seconds an open breaker refuses before it lets one trial through. */
  readonly cooldown: number
  /** Clock in ms; tests pass their own. */
  readonly now?: () => number
}

export interface BackendHealth {
  readonly backend: string
  readonly state: BreakerState
  readonly consecutiveFailures: number
  readonly totalFailures: number
  readonly totalSuccesses: number
  /** Milliseconds until an open breaker admits a trial (0 when not open). */
  readonly retryInMs: number
  readonly lastError: string | undefined
}

interface Entry {
  state: BreakerState
  failures: number
  totalFailures: number
  totalSuccesses: number
  openedAt: number
  trialInFlight: boolean
  lastError: string | undefined
}

export interface CircuitBreakerShape {
  /** May a connection be attempted to `backend` now? Returns seconds to wait (retry-after) when not. */
  readonly admit: (backend: string) => { readonly ok: true } | { readonly ok: false; readonly retryAfter: number }
  /** Whether the breaker of `backend` is closed: `admit` would let a connection through, changing nothing. */
  readonly isClosed: (backend: string) => boolean
  readonly success: (backend: string) => void
  readonly failure: (backend: string, error: string) => void
  readonly snapshot: () => ReadonlyArray<BackendHealth>
}

const stateValue: Record<BreakerState, number> = { closed: 0, "half-open": 1, open: 2 }
const stateGauge = Metric.gauge("polyproxy_backend_breaker_state", {
  description: "Circuit breaker per backend: 0 closed, 1 half-open, 2 open"
})
const ctx = Context.empty()
const admitted = { ok: true } as const

export const makeCircuitBreaker = (options: BreakerOptions): CircuitBreakerShape => {
  const now = options.now ?? Date.now
  const cooldownMs = options.cooldown * 1000
  const entries = new Map<string, Entry>()
  const gauges = new Map<string, Metric.Gauge<number>>()
  const publish = (backend: string, e: Entry) => {
    let g = gauges.get(backend)
    if (g === undefined) gauges.set(backend, (g = Metric.withAttributes(stateGauge, { backend })))
    g.updateUnsafe(stateValue[e.state], ctx)
  }
  const entry = (backend: string): Entry => {
    let e = entries.get(backend)
    if (e === undefined) {
      e = {
        state: "closed",
        failures: 0,
        totalFailures: 0,
        totalSuccesses: 0,
        openedAt: 0,
        trialInFlight: false,
        lastError: undefined
      }
      entries.set(backend, e)
    }
    return e
  }
  return {
    admit: (backend) => {
      const e = entries.get(backend)
      if (e === undefined || e.state === "closed") return admitted
      const waited = now() - e.openedAt
      if (e.state === "open" && waited >= cooldownMs) {
        e.state = "half-open"
        e.trialInFlight = false
        publish(backend, e)
      }
      if (e.state === "half-open" && !e.trialInFlight) {
        e.trialInFlight = true
        return admitted
      }
      return { ok: false, retryAfter: Math.max(1, Math.ceil((cooldownMs - waited) / 1000)) }
    },
    isClosed: (backend) => {
      const e = entries.get(backend)
      return e === undefined || e.state === "closed"
    },
    success: (backend) => {
      const e = entries.get(backend)
      if (e === undefined) return
      e.totalSuccesses++
      e.failures = 0
      if (e.state !== "closed") {
        e.state = "closed"
        e.trialInFlight = false
        publish(backend, e)
      }
    },
    failure: (backend, error) => {
      if (options.failureThreshold === 0) return
      const e = entry(backend)
      e.failures++
      e.totalFailures++
      e.lastError = error
      if (e.state === "half-open" || e.failures >= options.failureThreshold) {
        e.state = "open"
        e.openedAt = now()
        e.trialInFlight = false
      }
      publish(backend, e)
    },
    snapshot: () =>
      [...entries].map(([backend, e]) => ({
        backend,
        state: e.state,
        consecutiveFailures: e.failures,
        totalFailures: e.totalFailures,
        totalSuccesses: e.totalSuccesses,
        retryInMs: e.state === "open" ? Math.max(0, cooldownMs - (now() - e.openedAt)) : 0,
        lastError: e.lastError
      }))
  }
}

export class CircuitBreaker extends Context.Service<CircuitBreaker, CircuitBreakerShape>()("polyproxy/CircuitBreaker") {
  static readonly layer = (options: BreakerOptions) => Layer.sync(CircuitBreaker, () => makeCircuitBreaker(options))
  /** Never opens: for specs of other modules. */
  static readonly layerTest = CircuitBreaker.layer({ failureThreshold: 0, cooldown: 0 })
}
