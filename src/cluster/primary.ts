// The primary process of `workers: N`: forks the workers (each binds every listening port itself with SO_REUSEPORT;
// the primary accepts no client connection), restarts a worker that dies, serves the admin endpoint with every
// worker's metrics summed, keeps the cluster-wide Postgres cancel-key and MySQL session tables (and hands a cancel or
// a KILL of a pooled client to the worker holding that client), and drains every worker on SIGTERM/SIGINT.
import cluster, { type Worker } from "node:cluster"
import * as net from "node:net"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import { type ListenerInfo, startAdmin } from "../admin/AdminServer.ts"
import { mergeBackends, mergeStats, redactConfig, version } from "../admin/dashboard/data.ts"
import { mergePools } from "../admin/pools.ts"
import type { Config } from "../config/Config.ts"
import { envName } from "../config/env.ts"
import type { VettedEndpoint } from "../domain/Endpoint.ts"
import { type MysqlSessionRecord, proxyIdOwner } from "../listeners/mysql/sessions.ts"
import type { SharedCancel } from "../listeners/postgres/CancelKeys.ts"
import { pooledKeyOwner } from "../listeners/postgres/pool/pooledKeys.ts"
import type { BackendHealth } from "../services/CircuitBreaker.ts"
import { makeLog } from "../services/Log.ts"
import { metricsText } from "../services/Metrics.ts"
import { sumPrometheus } from "./aggregate.ts"
import type { AdminOp, FromPrimary, FromWorker, ListenerStatus } from "./messages.ts"

/** A worker that dies this soon after starting is crash-looping: wait before the next restart, doubling up to 30 s. */
const healthyAfterMs = 10_000
const maxBackoffMs = 30_000
/** A worker that does not answer a metrics or status question within this is left out of that answer. */
const askTimeoutMs = 2_000

const restarts = Metric.counter("polyproxy_worker_restarts_total", {
  description: "Worker processes restarted after dying",
  incremental: true
})
const workersUp = Metric.gauge("polyproxy_workers", { description: "Worker processes running and ready" })
const ctx = Context.empty()

/**
 * A table the workers fill for each other (Postgres cancel keys, MySQL sessions): each entry lives as long as the
 * worker that added it.
 */
class WorkerTable<K, V> {
  private readonly entries = new Map<K, { readonly value: V; readonly worker: number }>()
  set(key: K, value: V, worker: number): void {
    this.entries.set(key, { value, worker })
  }
  delete(key: K): void {
    this.entries.delete(key)
  }
  get(key: K): V | undefined {
    return this.entries.get(key)?.value
  }
  dropWorker(worker: number): void {
    for (const [key, e] of this.entries) if (e.worker === worker) this.entries.delete(key)
  }
}

interface Slot {
  /** Its place among the workers, kept by the workers that replace it (their share of MySQL connection ids). */
  readonly index: number
  worker: Worker
  ready: boolean
  /** One of this slot's workers has been ready: later deaths are restarts, not a failed start. */
  started: boolean
  startedAt: number
  backoffMs: number
  listeners: ReadonlyArray<ListenerStatus>
}

/**
 * Workers bind each port themselves (SO_REUSEPORT), so "port 0" must mean one port for all of them: pick it here and
 * hand it down as the environment override the workers' config loading already honours.
 */
const fixedPorts = async (config: Config): Promise<Record<string, string>> => {
  const env: Record<string, string> = {}
  for (const [name, l] of Object.entries(config.listeners)) {
    if (l === undefined || l.port !== 0) continue
    const port = await new Promise<number>((resolve, reject) => {
      const probe = net.createServer()
      probe.once("error", reject)
      probe.listen({ host: l.host, port: 0, exclusive: true }, () => {
        const p = (probe.address() as net.AddressInfo).port
        probe.close(() => resolve(p))
      })
    })
    env[envName(`listeners.${name}.port`)] = String(port)
  }
  return env
}

export const runPrimary = (config: Config, count: number, configSource?: () => Config): void => {
  void fixedPorts(config).then(
    (env) => startPrimary(config, count, configSource, env),
    (e: Error) => {
      process.stderr.write(`polyproxy: cannot start: ${e.message}\n`)
      process.exit(1)
    }
  )
}

const startPrimary = (
  config: Config,
  count: number,
  configSource: (() => Config) | undefined,
  portEnv: Record<string, string>
): void => {
  const log = makeLog(config.log)
  const slots: Array<Slot> = []
  const cancelKeys = new WorkerTable<string, VettedEndpoint>()
  const mysqlSessions = new WorkerTable<number, MysqlSessionRecord>()
  /** Cold-start wake-up locks (resource -> until, ms) when there is no Redis to hold them. */
  const wakeLocks = new Map<string, number>()
  const answers = new Map<number, (m: FromWorker) => void>()
  let nextId = 1
  let stopping = false
  let draining = false
  /** The config the dashboard shows: the file as last loaded (each worker applies it itself). */
  let shownConfig = config

  const refreshGauge = () => workersUp.updateUnsafe(slots.filter((s) => s.ready).length, ctx)

  const onMessage = (slot: Slot) => (m: FromWorker) => {
    switch (m.t) {
      case "ready":
        slot.ready = true
        slot.started = true
        slot.listeners = m.listeners
        refreshGauge()
        if (slots.every((s) => s.ready)) {
          log.info("workers ready", { workers: slots.length, listeners: m.listeners.map((l) => `${l.name}:${l.port}`) })
        }
        return
      case "ck+":
        return cancelKeys.set(m.key, m.target, slot.worker.id)
      case "ck-":
        return cancelKeys.delete(m.key)
      case "wake?": {
        const now = Date.now()
        const until = wakeLocks.get(m.key) ?? 0
        const mine = until <= now
        if (mine) {
          if (wakeLocks.size > 10_000) for (const [k, t] of wakeLocks) if (t <= now) wakeLocks.delete(k)
          wakeLocks.set(m.key, now + m.ttlMs)
        }
        slot.worker.send({ t: "wake=", id: m.id, mine } satisfies FromPrimary)
        return
      }
      case "ck?": {
        const answer = (found: SharedCancel | null) =>
          slot.worker.send({ t: "ck=", id: m.id, found } satisfies FromPrimary)
        const target = cancelKeys.get(m.key)
        if (target !== undefined) return answer({ target })
        // Perhaps a pooled client's key: its process id names the worker that issued it, which knows where that
        // client's query runs now. The asking worker has looked among its own clients already.
        const owner = slots[pooledKeyOwner(m.key, count)]
        if (owner === undefined || owner === slot) return answer(null)
        void askOne<Extract<FromWorker, { t: "pk=" }>>(owner, (id) => ({ t: "pk?", id, key: m.key })).then((r) =>
          answer(r?.found ?? null)
        )
        return
      }
      case "pk-":
      case "mk-": {
        // A claim on a pooled server connection ends in the worker that lent it (the pg key's, the MySQL client's);
        // a lost word lets it lapse there by itself.
        const owner = slots[m.t === "pk-" ? pooledKeyOwner(m.key, count) : proxyIdOwner(m.proxyId, count)]
        if (owner?.ready && owner.worker.isConnected())
          owner.worker.send({ t: m.t, hold: m.hold } satisfies FromPrimary)
        return
      }
      case "ms+":
        return mysqlSessions.set(m.proxyId, m.session, slot.worker.id)
      case "ms-":
        return mysqlSessions.delete(m.proxyId)
      case "ms?": {
        const answer = (session: MysqlSessionRecord | null) =>
          slot.worker.send({ t: "ms=", id: m.id, session } satisfies FromPrimary)
        const session = mysqlSessions.get(m.proxyId)
        if (session !== undefined) return answer(session)
        // Perhaps a pooled client's id (not mirrored): the worker that greeted it knows its server connection now,
        // and closes it if the KILL ends it while it holds none. The asking worker has looked among its own already.
        const owner = slots[proxyIdOwner(m.proxyId, count)]
        if (owner === undefined || owner === slot) return answer(null)
        void askOne<Extract<FromWorker, { t: "mk=" }>>(owner, (id) => ({
          t: "mk?",
          id,
          proxyId: m.proxyId,
          kill: m.kill
        })).then((r) => answer(r?.session ?? null))
        return
      }
      case "slot?":
        slot.worker.send({ t: "slot=", id: m.id, index: slot.index, count } satisfies FromPrimary)
        return
      default: {
        const answer = answers.get(m.id)
        answers.delete(m.id)
        answer?.(m)
      }
    }
  }

  const fork = (slot?: Slot): Slot => {
    const worker = cluster.fork(portEnv)
    const s: Slot = slot ?? {
      index: slots.length,
      worker,
      ready: false,
      started: false,
      startedAt: 0,
      backoffMs: 1_000,
      listeners: []
    }
    s.worker = worker
    s.ready = false
    s.startedAt = Date.now()
    worker.on("message", onMessage(s))
    worker.on("exit", (code, signal) => {
      s.ready = false
      refreshGauge()
      // Its sessions are gone: so are their cancel keys and connection ids.
      cancelKeys.dropWorker(worker.id)
      mysqlSessions.dropWorker(worker.id)
      if (stopping) return
      if (!s.started) {
        // The first start failed (a port in use, a TLS file, an extractor; the worker printed why): retrying cannot
        // fix that, so the whole start fails the way a single-process `serve` does, exit 1.
        stopping = true
        log.error("cannot start: a worker exited before it was ready", { pid: worker.process.pid, code, signal })
        for (const other of slots) if (!other.worker.isDead()) other.worker.process.kill("SIGKILL")
        process.exit(1)
      }
      const quick = Date.now() - s.startedAt < healthyAfterMs
      s.backoffMs = quick ? Math.min(s.backoffMs * 2, maxBackoffMs) : 1_000
      const delay = quick ? s.backoffMs : 0
      restarts.updateUnsafe(1, ctx)
      log.error("worker died, restarting", { pid: worker.process.pid, code, signal, restartInMs: delay })
      setTimeout(() => {
        if (!stopping) fork(s)
      }, delay)
    })
    return s
  }

  /** Asks one worker a question: undefined when it is not ready or does not answer in time. */
  const askOne = <A extends FromWorker>(s: Slot, question: (id: number) => FromPrimary): Promise<A | undefined> =>
    !s.ready || !s.worker.isConnected()
      ? Promise.resolve(undefined)
      : new Promise<A | undefined>((resolve) => {
          const id = nextId++
          const timer = setTimeout(() => {
            answers.delete(id)
            resolve(undefined)
          }, askTimeoutMs)
          answers.set(id, (m) => {
            clearTimeout(timer)
            resolve(m as A)
          })
          s.worker.send(question(id))
        })

  /** Asks every ready worker one question and gathers the answers that come back in time. */
  const askAll = async <A extends FromWorker>(question: (id: number) => FromPrimary): Promise<Array<A>> => {
    const got: Array<A | undefined> = await Promise.all(slots.map((s) => askOne<A>(s, question)))
    return got.filter((x): x is A => x !== undefined)
  }

  const adminAll = async (op: AdminOp, arg?: string): Promise<Array<unknown>> =>
    (
      await askAll<Extract<FromWorker, { t: "admin" }>>((id) => ({
        t: "admin?",
        id,
        op,
        ...(arg === undefined ? {} : { arg })
      }))
    ).map((m) => m.result)

  cluster.setupPrimary({ execArgv: [...process.execArgv, ...config.nodeOptions] })
  for (let i = 0; i < count; i++) slots.push(fork())
  log.info("starting workers", { workers: count })

  const adminFiber =
    config.admin === undefined
      ? undefined
      : Effect.runFork(
          Effect.scoped(
            Effect.gen(function* () {
              const ready = () => !stopping && !draining && slots.every((s) => s.ready)
              const admin = yield* startAdmin(config.admin!.host, config.admin!.port, {
                ready,
                listeners: async () => {
                  const status = await askAll<Extract<FromWorker, { t: "status" }>>((id) => ({ t: "status?", id }))
                  const merged: Record<string, ListenerInfo> = {}
                  for (const { name, ...l } of status.flatMap((s) => s.listeners)) {
                    merged[name] = { ...l, open: (merged[name]?.open ?? 0) + l.open }
                  }
                  return merged
                },
                metrics: async () => {
                  const mine = metricsText()
                  const theirs = await askAll<Extract<FromWorker, { t: "metrics" }>>((id) => ({ t: "metrics?", id }))
                  return sumPrometheus([mine, ...theirs.map((m) => m.text)])
                },
                // Every worker keeps its own breakers and cache: show each one's view, labelled.
                backends: async () => (await adminAll("backends")).flat(),
                stats: async () => ({ workers: await adminAll("stats") }),
                // Each worker keeps its own pool of a route: one row per pool, the workers' counts summed.
                pools: async () => mergePools(await adminAll("pools")),
                purge: async (id) => void (await adminAll("purge", id)),
                drain: async () => {
                  draining = true
                  await adminAll("drain")
                },
                reload: () => reload(),
                // The workers' /admin/stats and breakers, summed: asked only while a dashboard polls.
                dashboard: async () => {
                  const [stats, backends, pools] = await Promise.all([
                    adminAll("stats"),
                    adminAll("backends"),
                    adminAll("pools")
                  ])
                  return {
                    version: version(),
                    now: Date.now(),
                    uptimeSeconds: Math.round(process.uptime()),
                    ready: ready(),
                    ...mergeStats(stats),
                    backends: mergeBackends(backends.filter((b): b is Array<BackendHealth> => Array.isArray(b))),
                    pools: mergePools(pools),
                    config: redactConfig(shownConfig)
                  }
                },
                token: config.admin!.token,
                allowedHosts: config.admin!.allowedHosts,
                log
              })
              log.info("admin listening", {
                host: admin.host,
                port: admin.port,
                paths: "/healthz /readyz /metrics",
                workers: count
              })
              return yield* Effect.never
            })
          )
        )
  adminFiber?.addObserver((exit) => {
    if (Exit.isFailure(exit) && !stopping) {
      log.error("admin endpoint failed", { cause: String(exit.cause) })
      process.exit(1)
    }
  })

  /** Validates once here (one clear refusal), then every worker re-reads and applies the file itself. */
  const reload = async () => {
    if (configSource === undefined) throw new Error("no config file to re-read (started without one)")
    try {
      shownConfig = configSource()
    } catch (e) {
      log.error("config reload refused, keeping the running config", { reason: (e as Error).message })
      throw e
    }
    const reports = await adminAll("reload")
    log.info("config reloaded in every worker", { workers: reports.length })
    return { workers: reports }
  }
  process.on("SIGHUP", () => void reload().catch(() => {}))

  let signals = 0
  const stop = (signal: string) => {
    if (++signals > 1) {
      for (const s of slots) s.worker.process.kill("SIGKILL")
      process.exit(0)
    }
    stopping = true
    log.info("stopping workers", { signal, drainSeconds: config.timeouts.drain })
    for (const s of slots) if (s.worker.isConnected()) s.worker.send({ t: "shutdown" } satisfies FromPrimary)
    // Workers drain within timeouts.drain; a worker stuck past that (and a margin) is killed.
    const deadline = setTimeout(
      () => {
        for (const s of slots) if (!s.worker.isDead()) s.worker.process.kill("SIGKILL")
      },
      config.timeouts.drain * 1000 + 5_000
    )
    deadline.unref()
    const check = () => {
      if (slots.every((s) => s.worker.isDead())) {
        adminFiber?.interruptUnsafe()
        log.info("stopped")
        process.exit(0)
      }
    }
    for (const s of slots) s.worker.once("exit", check)
    check()
  }
  process.on("SIGTERM", () => stop("SIGTERM"))
  process.on("SIGINT", () => stop("SIGINT"))
}
