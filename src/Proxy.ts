// Composition root: config + services + listeners + admin, started together and drained together.

import * as fs from "node:fs"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { startAdmin } from "./admin/AdminServer.ts"
import type { Config, ListenerName } from "./config/Config.ts"
import { type ProxyError, proxyError } from "./domain/ProxyError.ts"
import { Admission } from "./listeners/Admission.ts"
import { httpProtocolContext, startHttpListener } from "./listeners/http/HttpListener.ts"
import { type RunningListener, startListener } from "./listeners/Listener.ts"
import type { ProtocolContext } from "./listeners/ProtocolContext.ts"
import { CancelKeys } from "./listeners/postgres/CancelKeys.ts"
import { protocols } from "./listeners/registry.ts"
import { loadServerTls } from "./listeners/tls.ts"
import { type BackendHealth, CircuitBreaker } from "./services/CircuitBreaker.ts"
import { ColdStart } from "./services/ColdStart.ts"
import { Log } from "./services/Log.ts"
import { Metrics } from "./services/Metrics.ts"
import { Resolver } from "./services/Resolver.ts"
import { RoutingCache } from "./services/RoutingCache.ts"
import { SsrfGuard } from "./services/SsrfGuard.ts"

/** What the admin API can ask of one proxy process (the cluster primary asks each worker the same). */
export interface AdminOps {
  readonly backends: () => ReadonlyArray<BackendHealth>
  readonly stats: () => Promise<Record<string, unknown>>
  readonly purge: (resourceId: string) => Promise<void>
  readonly drain: () => void
}

export interface ProxyHandle {
  readonly listeners: ReadonlyArray<RunningListener>
  readonly admin: { readonly host: string; readonly port: number } | undefined
  readonly ops: AdminOps
}

/** Builds the protocol of one configured listener, loading its TLS files once. */
const protocolFor = Effect.fnUntraced(function* (
  name: ListenerName,
  config: Config,
  shared: ProtocolContext["shared"]
) {
  const listener = config.listeners[name]!
  const factory = protocols[name]
  if (factory === undefined) {
    return yield* proxyError("INTERNAL", "internal", `listeners.${name}: this protocol is not implemented yet`)
  }
  const tlsFiles = listener.tls ?? config.tls
  const upstream = listener.upstreamTls
  const upstreamCa = upstream?.ca
  return factory({
    name,
    listener,
    config,
    tls: tlsFiles ? yield* loadServerTls(tlsFiles, `listeners.${name}.tls`) : undefined,
    upstreamTls: upstream && {
      rejectUnauthorized: upstream.rejectUnauthorized,
      ca:
        upstreamCa === undefined
          ? undefined
          : yield* Effect.try({
              try: () => fs.readFileSync(upstreamCa),
              catch: (e) =>
                proxyError("INTERNAL", "internal", `listeners.${name}.upstreamTls.ca: ${(e as Error).message}`)
            })
    },
    shared
  })
})

/** The resolver from the config file's `routes`: the embedded default. */
export const staticResolver = (config: Config): Layer.Layer<Resolver> => Resolver.layerStatic(config.routes)

/** The resolver the config's `resolver` section names (static when absent). */
export const configuredResolver = (config: Config): Layer.Layer<Resolver, unknown> => {
  const r = config.resolver
  switch (r?.type) {
    case "redis":
      // Loaded on demand: ioredis is not worth its memory in every worker of a proxy that never talks to Redis.
      return Layer.unwrap(
        Effect.map(
          Effect.promise(() => import("./services/resolvers/RedisResolver.ts")),
          (m) => m.layer({ url: r.url, key: r.key, commandTimeout: r.timeout })
        )
      )
    case "http":
      return Layer.unwrap(
        Effect.map(
          Effect.promise(() => import("./services/resolvers/HttpResolver.ts")),
          (m) =>
            m.layer({
              url: r.url,
              token: r.token,
              timeout: r.timeout,
              retries: r.retries,
              failureThreshold: r.failureThreshold,
              cooldown: r.cooldown,
              wakeUrl: r.wakeUrl
            })
        )
      )
    default:
      return staticResolver(config)
  }
}

/** Every service the listeners need, from config. Pass your own Resolver layer to replace the configured one. */
export const servicesLayer = (
  config: Config,
  resolver: Layer.Layer<Resolver, unknown> = configuredResolver(config)
) => {
  const base = Layer.mergeAll(
    resolver,
    SsrfGuard.layer({ allow: config.ssrf.allow }),
    Metrics.layer,
    CircuitBreaker.layer(config.breaker),
    ColdStart.layer(config.coldStart)
  )
  const cache = RoutingCache.layer({
    ttl: config.cache.ttl,
    negativeTtl: config.cache.negativeTtl,
    maxEntries: config.cache.maxEntries,
    resolveTimeout: config.timeouts.resolve
  })
  return Layer.provideMerge(cache, base)
}

/**
 * Starts every configured listener and the admin endpoint. When the scope closes, listeners stop accepting,
 * open connections get up to `timeouts.drain` seconds to finish, and whatever is left is closed.
 */
export const startProxy = Effect.fnUntraced(function* (config: Config, cancelKeys: CancelKeys = new CancelKeys()) {
  const log = yield* Log
  const metrics = yield* Metrics
  let ready = false
  const listeners: Array<RunningListener> = []

  const shared = { cancelKeys }
  const admission = new Admission(config.limits)
  for (const name of Object.keys(config.listeners) as Array<ListenerName>) {
    // HTTP works per request with its own servers, not as a Protocol of the shared byte listener.
    if (name === "http") {
      listeners.push(yield* startHttpListener(yield* httpProtocolContext(config, shared), config.timeouts, admission))
      continue
    }
    const protocol = yield* protocolFor(name, config, shared)
    listeners.push(yield* startListener(protocol, config.listeners[name]!, config.timeouts, admission, config.log))
  }

  const breaker = yield* CircuitBreaker
  const cache = yield* RoutingCache
  const resolver = yield* Resolver
  const coldStart = yield* ColdStart
  const ops: AdminOps = {
    backends: () => breaker.snapshot(),
    stats: async () => ({
      pid: process.pid,
      connections: Object.fromEntries(listeners.map((l) => [l.name, l.open()])),
      cache: await Effect.runPromise(cache.stats),
      coldStartWaiting: Object.fromEntries(coldStart.waiting()),
      resolver: await Effect.runPromise(resolver.getStats)
    }),
    purge: (resourceId) => Effect.runPromise(cache.purge(resourceId)),
    drain: () => {
      ready = false
      for (const l of listeners) l.stopAccepting()
      log.info("draining on request (POST /admin/drain)", { connections: listeners.reduce((n, l) => n + l.open(), 0) })
    }
  }
  const admin =
    config.admin === undefined
      ? undefined
      : yield* startAdmin(config.admin.host, config.admin.port, {
          ready: () => ready,
          listeners: () =>
            Object.fromEntries(listeners.map((l) => [l.name, { host: l.host, port: l.port, open: l.open() }])),
          metrics: () => Effect.runPromise(metrics.prometheus),
          backends: ops.backends,
          stats: ops.stats,
          purge: ops.purge,
          drain: ops.drain,
          token: config.admin.token
        })
  if (admin) log.info("admin listening", { host: admin.host, port: admin.port, paths: "/healthz /readyz /metrics" })
  // Registered last so it runs first: readiness turns 503 and the admin endpoint keeps answering while the listeners
  // drain; their own finalizers then only close what is left.
  yield* Effect.addFinalizer(() =>
    Effect.promise(async () => {
      ready = false
      for (const l of listeners) l.stopAccepting()
      const open = listeners.reduce((n, l) => n + l.open(), 0)
      if (open === 0) return
      log.info("draining", { connections: open, timeoutSeconds: config.timeouts.drain })
      let timer: NodeJS.Timeout | undefined
      const deadline = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), config.timeouts.drain * 1000)
      })
      const outcome = await Promise.race([Promise.all(listeners.map((l) => l.whenIdle())), deadline])
      clearTimeout(timer)
      if (outcome === "timeout") {
        log.warn("drain timeout, closing remaining connections", {
          connections: listeners.reduce((n, l) => n + l.open(), 0)
        })
        for (const l of listeners) l.destroyAll()
      } else log.info("drained")
    })
  )

  ready = true
  return { listeners, admin: admin && { host: admin.host, port: admin.port }, ops } satisfies ProxyHandle
})

export interface RunOptions {
  /** Your Resolver; default: the static `routes` of the config. */
  readonly resolver?: Layer.Layer<Resolver, unknown>
  /** Log sink; default: stdout per `config.log`. */
  readonly log?: Layer.Layer<Log>
  /** Postgres cancel keys; a cluster worker passes one backed by the primary's table. */
  readonly cancelKeys?: CancelKeys
}

/**
 * Builds the services in the caller's scope and starts the proxy in it: closing that scope drains and stops
 * everything. This is what `polyproxy serve` runs, and what an embedding program or a spec runs.
 */
export const runProxy = (
  config: Config,
  options: RunOptions = {}
): Effect.Effect<ProxyHandle, ProxyError, Scope.Scope> =>
  Effect.gen(function* () {
    const layer = Layer.merge(servicesLayer(config, options.resolver), options.log ?? Log.layer(config.log))
    const context = yield* Layer.build(layer).pipe(
      Effect.mapError((e) =>
        typeof e === "object" && e !== null && (e as ProxyError)._tag === "ProxyError"
          ? (e as ProxyError)
          : proxyError("INTERNAL", "internal", `cannot start services: ${String(e)}`)
      )
    )
    return yield* startProxy(config, options.cancelKeys).pipe(Effect.provideContext(context))
  })
