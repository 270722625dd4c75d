// A worker process of `workers: N`: runs the listeners (each port bound with SO_REUSEPORT), no admin endpoint of its
// own, and answers the primary's questions: metrics, listener status, its pooled clients' cancel and KILL targets;
// asks it for other workers' sessions (Postgres cancel keys, MySQL connection ids).

import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type { Config } from "../config/Config.ts"
import { killClaimDone } from "../listeners/mysql/killClaim.ts"
import { killAskedElsewhere } from "../listeners/mysql/killTap.ts"
import {
  type IdSlot,
  type MysqlSessionRecord,
  MysqlSessions,
  type SharedMysqlSessions
} from "../listeners/mysql/sessions.ts"
import { CancelKeys, type SharedCancelKeys } from "../listeners/postgres/CancelKeys.ts"
import { pooledCancelDone, pooledCancelLent, setPooledKeySlot } from "../listeners/postgres/pool/pooledKeys.ts"
import { type ProxyHandle, runProxy } from "../Proxy.ts"
import { metricsText } from "../services/Metrics.ts"
import { SharedCache } from "../services/SharedCache.ts"
import type { FromPrimary, FromWorker, ListenerStatus } from "./messages.ts"

/**
 * How long a question to the primary waits for its answer: a cancel request is then dropped, as an unknown key would
 * be, and a MySQL KILL answered as for an unknown id.
 */
const lookupTimeoutMs = 2_000

const send = (m: FromWorker) => {
  if (process.connected) process.send?.(m)
}

const statusOf = (handle: ProxyHandle | undefined): ReadonlyArray<ListenerStatus> => handle?.status() ?? []

export const runWorker = (config: Config, configSource?: () => Config): void => {
  /** Questions to the primary waiting for their answer, by id. */
  const pending = new Map<number, (m: FromPrimary) => void>()
  let nextId = 1
  /** Asks the primary; `fallback` when no answer comes within lookupTimeoutMs. */
  const ask = <A>(question: (id: number) => FromWorker, read: (m: FromPrimary) => A, fallback: A) =>
    new Promise<A>((resolve) => {
      const id = nextId++
      const timer = setTimeout(() => {
        if (pending.delete(id)) resolve(fallback)
      }, lookupTimeoutMs)
      pending.set(id, (m) => {
        clearTimeout(timer)
        resolve(read(m))
      })
      send(question(id))
    })
  // Without Redis the primary holds the wake-up lock, so one worker wakes a cold backend, not one per worker.
  const claimWake = (key: string, ttlSeconds: number) =>
    ask(
      (id) => ({ t: "wake?", id, key, ttlMs: Math.round(ttlSeconds * 1000) }),
      (m) => m.t === "wake=" && m.mine,
      true
    )
  const shared: SharedCancelKeys = {
    add: (key, target) => send({ t: "ck+", key, target }),
    remove: (key) => send({ t: "ck-", key }),
    lookup: (key) =>
      ask(
        (id) => ({ t: "ck?", id, key }),
        (m) => (m.t === "ck=" ? (m.found ?? undefined) : undefined),
        undefined
      ),
    done: (key, hold) => send({ t: "pk-", key, hold })
  }
  const sharedSessions: SharedMysqlSessions = {
    add: (proxyId, session) => send({ t: "ms+", proxyId, session }),
    remove: (proxyId) => send({ t: "ms-", proxyId }),
    lookup: (proxyId, kill) =>
      ask(
        (id) => ({ t: "ms?", id, proxyId, kill }),
        (m) => (m.t === "ms=" ? (m.session ?? undefined) : undefined),
        undefined as MysqlSessionRecord | undefined
      ),
    done: (proxyId, hold) => send({ t: "mk-", proxyId, hold })
  }
  // This worker's share of the MySQL connection ids and of the pooled Postgres clients' process ids, by its place
  // among the workers (kept across restarts). Without an answer it counts through all of them from its random start:
  // an id another worker has handed out too is then unlikely, no longer impossible (and a cancel of a pooled client
  // that lands on another worker may be asked of the wrong one: dropped).
  const whole: IdSlot = { index: 0, count: 1 }
  const idSlot = ask(
    (id) => ({ t: "slot?", id }),
    (m): IdSlot => (m.t === "slot=" ? { index: m.index, count: m.count } : whole),
    whole
  )

  let handle: ProxyHandle | undefined
  let mysqlSessions: MysqlSessions | undefined
  const fiber = Effect.runFork(
    Effect.scoped(
      Effect.gen(function* () {
        const slot = yield* Effect.promise(() => idSlot)
        setPooledKeySlot(slot)
        mysqlSessions = new MysqlSessions(sharedSessions, slot)
        handle = yield* runProxy(
          { ...config, admin: undefined, workers: 1 },
          {
            cancelKeys: new CancelKeys(shared),
            mysqlSessions,
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
      case "pk?":
        send({ t: "pk=", id: m.id, found: pooledCancelLent(m.key) ?? null })
        return
      case "pk-":
        pooledCancelDone(m.hold)
        return
      case "mk-":
        killClaimDone(m.hold)
        return
      case "mk?": {
        const found = mysqlSessions === undefined ? undefined : killAskedElsewhere(mysqlSessions, m.proxyId, m.kill)
        send({ t: "mk=", id: m.id, session: found ?? null })
        return
      }
      case "wake=":
      case "ck=":
      case "ms=":
      case "slot=": {
        const answer = pending.get(m.id)
        pending.delete(m.id)
        answer?.(m)
        return
      }
      case "admin?": {
        const ops = handle?.ops
        const answer = (result: unknown) => send({ t: "admin", id: m.id, result })
        if (ops === undefined) return answer({ error: "starting" })
        if (m.op === "backends") return answer(ops.backends())
        if (m.op === "pools") return answer(ops.pools())
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
