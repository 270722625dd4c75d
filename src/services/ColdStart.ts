// Holding clients while a sleeping backend wakes. The first client for a cold resource starts one waker (wake hook
// called once, then readiness polled with backoff); every later client for that resource waits on the same waker,
// bounded in number (maxQueue) and time (timeout). Waiting clients keep their sockets paused and their first bytes
// in memory, so nothing is lost and nothing reaches the backend twice.
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import { type ProxyError, proxyError } from "../domain/ProxyError.ts"

export interface ColdStartOptions {
  /** Seconds a client waits at most. */
  readonly timeout: number
  /** Clients waiting per resource at most. */
  readonly maxQueue: number
  /** First and longest pause between readiness checks, in ms. */
  readonly minBackoffMs?: number
  readonly maxBackoffMs?: number
}

export interface ColdStartShape {
  /**
   * Waits until `ready` succeeds for `resourceId`. `wake` runs once per cold period, whoever calls first; `ready`
   * (the first caller's) is retried with backoff until it succeeds or the timeout passes.
   */
  readonly await: (
    resourceId: string,
    wake: Effect.Effect<void>,
    ready: Effect.Effect<unknown, ProxyError>
  ) => Effect.Effect<void, ProxyError>
  /** Resources with clients waiting now, and how many. */
  readonly waiting: () => ReadonlyMap<string, number>
}

const ctx = Context.empty()
const waits = Metric.counter("polyproxy_cold_start_waits_total", {
  description: "Connections that waited for a backend to wake, by outcome",
  incremental: true
})
const wakes = Metric.counter("polyproxy_cold_start_wakes_total", {
  description: "Wake-ups started (one per cold period per resource)",
  incremental: true
})
const wakeMs = Metric.histogram("polyproxy_cold_start_duration_ms", {
  description: "Time from the first waiting client to the backend being ready",
  boundaries: Metric.exponentialBoundaries({ start: 50, factor: 2, count: 14 })
})
const waitsReady = Metric.withAttributes(waits, { outcome: "ready" })
const waitsTimeout = Metric.withAttributes(waits, { outcome: "timeout" })
const waitsRefused = Metric.withAttributes(waits, { outcome: "queue_full" })

interface Waker {
  readonly done: Deferred.Deferred<void, ProxyError>
  waiters: number
}

export const makeColdStart = (options: ColdStartOptions): ColdStartShape => {
  const minBackoff = options.minBackoffMs ?? 100
  const maxBackoff = options.maxBackoffMs ?? 2_000
  const timeoutMs = options.timeout * 1000
  const wakers = new Map<string, Waker>()

  // The proxy's own words about the resource the client named: the client reads them too.
  const unavailable = (resourceId: string, why: string) =>
    proxyError("UNAVAILABLE", "backend", `${resourceId} ${why}`, {
      retryAfter: Math.max(1, Math.ceil(options.timeout / 2)),
      clientMessage: `${resourceId} ${why}`
    })

  /** One per cold period: wake, then poll readiness until it holds or the deadline passes. */
  const runWaker = (
    resourceId: string,
    waker: Waker,
    wake: Effect.Effect<void>,
    ready: Effect.Effect<unknown, ProxyError>
  ) => {
    const started = performance.now()
    const poll = (backoff: number): Effect.Effect<void, ProxyError> =>
      Effect.flatMap(Effect.exit(ready), (exit) => {
        if (Exit.isSuccess(exit)) return Effect.void
        const left = timeoutMs - (performance.now() - started)
        if (left <= 0) return Effect.fail(unavailable(resourceId, `did not become ready within ${options.timeout}s`))
        // The last check lands on the deadline itself: a backend that wakes just in time still counts.
        return Effect.andThen(Effect.sleep(Math.min(backoff, left)), poll(Math.min(backoff * 2, maxBackoff)))
      })
    wakes.updateUnsafe(1, ctx)
    return Effect.andThen(Effect.ignore(wake), poll(minBackoff)).pipe(
      Effect.onExit((exit) =>
        Effect.sync(() => {
          wakers.delete(resourceId)
          if (Exit.isSuccess(exit)) wakeMs.updateUnsafe(performance.now() - started, ctx)
          Deferred.doneUnsafe(waker.done, exit)
        })
      )
    )
  }

  return {
    await: (resourceId, wake, ready) =>
      Effect.suspend(() => {
        let waker = wakers.get(resourceId)
        if (waker === undefined) {
          waker = { done: Deferred.makeUnsafe<void, ProxyError>(), waiters: 0 }
          wakers.set(resourceId, waker)
          Effect.runFork(runWaker(resourceId, waker, wake, ready))
        } else if (waker.waiters >= options.maxQueue) {
          waitsRefused.updateUnsafe(1, ctx)
          return Effect.fail(
            unavailable(resourceId, `is starting and ${options.maxQueue} connections already wait for it`)
          )
        }
        const w = waker
        w.waiters++
        return Deferred.await(w.done).pipe(
          Effect.timeoutOrElse({
            duration: timeoutMs,
            orElse: () => Effect.fail(unavailable(resourceId, `did not become ready within ${options.timeout}s`))
          }),
          Effect.onExit((exit) =>
            Effect.sync(() => {
              w.waiters--
              ;(Exit.isSuccess(exit) ? waitsReady : waitsTimeout).updateUnsafe(1, ctx)
            })
          )
        )
      }),
    waiting: () => new Map([...wakers].map(([id, w]) => [id, w.waiters]))
  }
}

export class ColdStart extends Context.Service<ColdStart, ColdStartShape>()("polyproxy/ColdStart") {
  static readonly layer = (options: ColdStartOptions) => Layer.sync(ColdStart, () => makeColdStart(options))
}
