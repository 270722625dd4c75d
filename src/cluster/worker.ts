// A worker process of `workers: N`: runs the listeners (ports shared through node:cluster), no admin endpoint of its
// own, and answers the primary's questions: metrics, listener status, and cancel keys of other workers' sessions.
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type { Config } from "../config/Config.ts"
import type { VettedEndpoint } from "../domain/Endpoint.ts"
import { CancelKeys, type SharedCancelKeys } from "../listeners/postgres/CancelKeys.ts"
import { type ProxyHandle, runProxy } from "../Proxy.ts"
import { metricsText } from "../services/Metrics.ts"
import { SharedCache } from "../services/SharedCache.ts"
import type { FromPrimary, FromWorker, ListenerStatus } from "./messages.ts"

/** How long a cancel request waits for the primary's answer before it is dropped, as an unknown key would be. */
const lookupTimeoutMs = 2_000

const send = (m: FromWorker) => {
  if (process.connected) process.send?.(m)
}

const statusOf = (handle: ProxyHandle | undefined): Array<ListenerStatus> =>
  (handle?.listeners ?? []).map((l) => ({ name: l.name, host: l.host, port: l.port, open: l.open() }))

export const runWorker = (config: Config, configSource?: () => Config): void => {
  const waiting = new Map<number, (target: VettedEndpoint | undefined) => void>()
  const claims = new Map<number, (mine: boolean) => void>()
  // Without Redis the primary holds the wake-up lock, so one worker wakes a cold backend, not one per worker.
  const claimWake = (key: string, ttlSeconds: number) =>
    new Promise<boolean>((resolve) => {
      const id = nextId++
      const timer = setTimeout(() => {
        if (claims.delete(id)) resolve(true)
      }, lookupTimeoutMs)
      claims.set(id, (mine) => {
        clearTimeout(timer)
        resolve(mine)
      })
      send({ t: "wake?", id, key, ttlMs: Math.round(ttlSeconds * 1000) })
    })
  let nextId = 1
  const shared: SharedCancelKeys = {
    add: (key, target) => send({ t: "ck+", key, target }),
    remove: (key) => send({ t: "ck-", key }),
    lookup: (key) =>
      new Promise((resolve) => {
        const id = nextId++
        const timer = setTimeout(() => {
          if (waiting.delete(id)) resolve(undefined)
        }, lookupTimeoutMs)
        waiting.set(id, (target) => {
          clearTimeout(timer)
          resolve(target)
        })
        send({ t: "ck?", id, key })
      })
  }

  let handle: ProxyHandle | undefined
  const fiber = Effect.runFork(
    Effect.scoped(
      Effect.gen(function* () {
        handle = yield* runProxy(
          { ...config, admin: undefined, workers: 1 },
          {
            cancelKeys: new CancelKeys(shared),
            sharedCache: SharedCache.layerWakeLock(claimWake),
            ...(configSource ? { configSource: () => ({ ...configSource(), admin: undefined, workers: 1 }) } : {})
          }
        )
        send({ t: "ready", listeners: statusOf(handle) })
        return yield* Effect.never
      })
    )
  )

  const stop = () => fiber.interruptUnsafe()
  process.on("message", (m: FromPrimary) => {
    switch (m.t) {
      case "metrics?":
        send({ t: "metrics", id: m.id, text: metricsText() })
        return
      case "status?":
        send({ t: "status", id: m.id, listeners: statusOf(handle) })
        return
      case "wake=": {
        const resolve = claims.get(m.id)
        claims.delete(m.id)
        resolve?.(m.mine)
        return
      }
      case "ck=": {
        const resolve = waiting.get(m.id)
        waiting.delete(m.id)
        resolve?.(m.target ?? undefined)
        return
      }
      case "admin?": {
        const ops = handle?.ops
        const answer = (result: unknown) => send({ t: "admin", id: m.id, result })
        if (ops === undefined) return answer({ error: "starting" })
        if (m.op === "backends") return answer(ops.backends())
        if (m.op === "drain") return answer(ops.drain())
        const work =
          m.op === "stats" ? ops.stats() : m.op === "reload" ? ops.reloadFromSource() : ops.purge(m.arg ?? "")
        void work.then(answer, (e: unknown) => answer({ error: String(e) }))
        return
      }
      case "shutdown":
        stop()
    }
  })
  // A terminal's Ctrl-C reaches the whole process group: drain as the primary would ask.
  process.on("SIGTERM", stop)
  process.on("SIGINT", stop)
  // The primary is gone (killed): nothing coordinates this worker any more.
  process.on("disconnect", stop)
  fiber.addObserver((exit) => {
    if (Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause)) process.exit(0)
    const reason = exit.cause.reasons[0]
    const message = reason?._tag === "Fail" ? (reason.error as { message?: string }).message : Cause.pretty(exit.cause)
    process.stderr.write(`polyproxy worker ${process.pid}: cannot start: ${message}\n`)
    process.exit(1)
  })
}
