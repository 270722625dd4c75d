// Composition root: config + services + listeners + admin, started together and drained together.

import * as fs from "node:fs"
import { Effect, Layer, type Scope } from "effect"
import { startAdmin } from "./admin/AdminServer.ts"
import type { Config, ListenerName } from "./config/Config.ts"
import { type ProxyError, proxyError } from "./domain/ProxyError.ts"
import { type RunningListener, startListener } from "./listeners/Listener.ts"
import { CancelKeys } from "./listeners/postgres/CancelKeys.ts"
import { type PgRouteBy, postgresProtocol } from "./listeners/postgres/postgres.ts"
import { tcpProtocol } from "./listeners/tcp.ts"
import { loadServerTls } from "./listeners/tls.ts"
import { Log } from "./services/Log.ts"
import { Metrics } from "./services/Metrics.ts"
import { Resolver } from "./services/Resolver.ts"
import { RoutingCache } from "./services/RoutingCache.ts"
import { SsrfGuard } from "./services/SsrfGuard.ts"

export interface ProxyHandle {
  readonly listeners: ReadonlyArray<RunningListener>
  readonly admin: { readonly host: string; readonly port: number } | undefined
}

/** The protocols built so far; a listener in the config without one here is refused at startup. */
const protocolFor = Effect.fnUntraced(function* (name: ListenerName, config: Config, cancelKeys: CancelKeys) {
  const listener = config.listeners[name]!
  const tlsFiles = listener.tls ?? config.tls
  switch (name) {
    case "tcp":
      return tcpProtocol(listener.route!)
    case "postgres": {
      const upstream = listener.upstreamTls
      return postgresProtocol({
        tls: tlsFiles ? yield* loadServerTls(tlsFiles, `listeners.${name}.tls`) : undefined,
        routeBy: (listener.routeBy ?? "database") as PgRouteBy,
        upstreamTls: upstream && {
          rejectUnauthorized: upstream.rejectUnauthorized,
          ca: upstream.ca === undefined ? undefined : fs.readFileSync(upstream.ca)
        },
        cancelKeys
      })
    }
    default:
      return yield* proxyError("INTERNAL", "internal", `listeners.${name}: this protocol is not implemented yet`)
  }
})

/** The resolver from the config file's `routes`: the embedded default. */
export const staticResolver = (config: Config): Layer.Layer<Resolver> => Resolver.layerStatic(config.routes)

/** Every service the listeners need, from config. Pass your own Resolver layer to replace the static map. */
export const servicesLayer = (config: Config, resolver: Layer.Layer<Resolver, unknown> = staticResolver(config)) => {
  const base = Layer.mergeAll(resolver, SsrfGuard.layer({ allow: config.ssrf.allow }), Metrics.layer)
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
export const startProxy = Effect.fnUntraced(function* (config: Config) {
  const log = yield* Log
  const metrics = yield* Metrics
  let ready = false
  const listeners: Array<RunningListener> = []

  const cancelKeys = new CancelKeys()
  for (const name of Object.keys(config.listeners) as Array<ListenerName>) {
    const protocol = yield* protocolFor(name, config, cancelKeys)
    listeners.push(yield* startListener(protocol, config.listeners[name]!, config.timeouts))
  }

  const admin =
    config.admin === undefined
      ? undefined
      : yield* startAdmin(config.admin.host, config.admin.port, {
          ready: () => ready,
          listeners: () =>
            Object.fromEntries(listeners.map((l) => [l.name, { host: l.host, port: l.port, open: l.open() }])),
          metrics: () => Effect.runPromise(metrics.prometheus)
        })
  if (admin) log.info("admin listening", { host: admin.host, port: admin.port, paths: "/healthz /readyz /metrics" })
  if (config.workers !== 1)
    log.warn("workers: only one proxy process is supported yet; running one", { workers: config.workers })
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
  return { listeners, admin: admin && { host: admin.host, port: admin.port } } satisfies ProxyHandle
})

export interface RunOptions {
  /** Your Resolver; default: the static `routes` of the config. */
  readonly resolver?: Layer.Layer<Resolver, unknown>
  /** Log sink; default: stdout per `config.log`. */
  readonly log?: Layer.Layer<Log>
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
    return yield* startProxy(config).pipe(Effect.provideContext(context))
  })
