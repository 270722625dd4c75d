// Composition root: config + services + listeners + admin, started together and drained together.

import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import { type ListenerStatus, startAdmin } from "./admin/AdminServer.ts"
import { mergeStats, processView, redactConfig, version } from "./admin/dashboard/data.ts"
import { type PoolRow, poolRows } from "./admin/pools.ts"
import type { Config, ListenerName } from "./config/Config.ts"
import { formatEndpoint } from "./domain/Endpoint.ts"
import { type ProxyError, proxyError } from "./domain/ProxyError.ts"
import { Admission } from "./listeners/Admission.ts"
import { setTcpKeepAlive } from "./listeners/keepAlive.ts"
import type { RunningListener } from "./listeners/Listener.ts"
import { type ListenerManifest, type ListenerServices, protocolListener } from "./listeners/manifest.ts"
import { MysqlSessions } from "./listeners/mysql/sessions.ts"
import { CancelKeys } from "./listeners/postgres/CancelKeys.ts"
import { readFrame } from "./listeners/readFrame.ts"
import { clientText } from "./listeners/refusal.ts"
import { builtinListeners, ListenerRegistry } from "./listeners/registry.ts"
import { setSourceAddresses } from "./listeners/sourceAddress.ts"
import { startNamed } from "./listeners/start.ts"
import { FirstBytes, type FirstBytesExtractor } from "./listeners/tcp/firstBytes.ts"
import { reloadServerTls, type ServerTls } from "./listeners/tls.ts"
import { BackendPool } from "./services/BackendPool.ts"
import { type BackendHealth, CircuitBreaker } from "./services/CircuitBreaker.ts"
import { ColdStart } from "./services/ColdStart.ts"
import { Log } from "./services/Log.ts"
import { Metrics } from "./services/Metrics.ts"
import { Resolver } from "./services/Resolver.ts"
import { RoutingCache, type RoutingCacheNeeds } from "./services/RoutingCache.ts"
import { configuredResolver, staticResolver } from "./services/resolvers/configured.ts"
import { SharedCache } from "./services/SharedCache.ts"
import { SsrfGuard } from "./services/SsrfGuard.ts"

// The first-bytes and listener-type extension points, for the package's public API (src/index.ts imports no listener
// itself).
export {
  builtinListeners,
  clientText,
  configuredResolver,
  FirstBytes,
  type FirstBytesExtractor,
  ListenerRegistry,
  protocolListener,
  readFrame,
  staticResolver
}

/** What the admin API can ask of one proxy process (the cluster primary asks each worker the same). */
export interface ReloadReport {
  readonly applied: ReadonlyArray<string>
  /** Changed keys that only take effect after a restart. */
  readonly needsRestart: ReadonlyArray<string>
}

export interface AdminOps {
  /** Hot reload: apply a new, already validated config without dropping a connection. */
  readonly reload: (next: Config) => Promise<ReloadReport>
  /** Re-read the config source, refuse it with the reason if invalid (the running config stays), else reload. */
  readonly reloadFromSource: () => Promise<ReloadReport>
  readonly backends: () => ReadonlyArray<BackendHealth>
  readonly stats: () => Promise<Record<string, unknown>>
  /** GET /admin/pools: this process's server-connection pools (PostgreSQL, MySQL). */
  readonly pools: () => ReadonlyArray<PoolRow>
  readonly purge: (resourceId: string) => Promise<void>
  readonly drain: () => void
}

export interface ProxyHandle {
  readonly listeners: ReadonlyArray<RunningListener>
  /** Each listener by name with its type, protocol label, address and open connections (/readyz). */
  readonly status: () => ReadonlyArray<ListenerStatus>
  readonly admin: { readonly host: string; readonly port: number } | undefined
  readonly ops: AdminOps
}

/** Every service the listeners need, from config. Pass your own Resolver layer to replace the configured one. */
export const servicesLayer = (
  config: Config,
  resolver: Layer.Layer<Resolver, unknown> = configuredResolver(config),
  /** Cross-process state when there is no Redis (a cluster worker passes one backed by its primary). */
  local: Layer.Layer<SharedCache> = SharedCache.layerNone,
  /** Your RoutingCache; default: the built-in one with the config's `cache` settings. */
  routingCache: Layer.Layer<RoutingCache, unknown, RoutingCacheNeeds> = RoutingCache.layer(
    RoutingCache.optionsFrom(config)
  ),
  /** Your BackendPool (it may use the CircuitBreaker); default: the built-in pools. */
  backendPool: Layer.Layer<BackendPool, unknown, CircuitBreaker> = BackendPool.layer()
) => {
  const base = Layer.mergeAll(
    resolver,
    // ssrf.disabled: every address is allowed; the guard still resolves a name once and pins the IP it dials.
    SsrfGuard.layer({ allow: config.ssrf.disabled ? ["0.0.0.0/0", "::/0"] : config.ssrf.allow }),
    Metrics.layerWith(config.metrics),
    CircuitBreaker.layer(config.breaker),
    ColdStart.layer(config.coldStart)
  )
  const shared = config.cache.redis ? SharedCache.layer({ url: config.cache.redis }) : local
  return Layer.provideMerge(Layer.merge(routingCache, backendPool), Layer.merge(base, shared))
}

/**
 * Starts every configured listener and the admin endpoint. When the scope closes, listeners stop accepting,
 * open connections get up to `timeouts.drain` seconds to finish, and whatever is left is closed.
 */
export const startProxy = Effect.fnUntraced(function* (
  config: Config,
  cancelKeys: CancelKeys = new CancelKeys(),
  configSource?: () => Config,
  firstBytes?: FirstBytesExtractor,
  mysqlSessions: MysqlSessions = new MysqlSessions()
) {
  let current = config
  const log = yield* Log
  const metrics = yield* Metrics
  let ready = false
  const listeners: Array<RunningListener> = []

  if (config.ssrf.disabled) {
    log.warn("SSRF guard disabled", {
      reason:
        "ssrf.disabled is true: any address a Resolver names is dialed, loopback, private ranges and cloud metadata included"
    })
  }
  const shared = { cancelKeys, mysqlSessions, firstBytes }
  const admission = new Admission(config.limits)
  const services = yield* Effect.context<ProxyServices>()
  const scope = yield* Effect.scope
  /** The running listener of each name and its TLS (replaced in place on reload). */
  const byName = new Map<ListenerName, { running: RunningListener; tls: ServerTls | undefined }>()

  /** Each running listener's type and label, as configured when it started (one removed by a reload relays on). */
  const kinds = new WeakMap<RunningListener, { readonly type: string; readonly protocol: string | undefined }>()
  const startOne = (name: ListenerName, cfg: Config) =>
    Effect.map(startNamed(name, cfg, shared, admission), (started) => {
      const { type, protocol } = cfg.listeners[name]!
      kinds.set(started.running, { type, protocol })
      return started
    })
  const status = (): Array<ListenerStatus> =>
    listeners.map((l) => ({ name: l.name, type: l.name, ...kinds.get(l), host: l.host, port: l.port, open: l.open() }))

  for (const name of Object.keys(config.listeners)) {
    const started = yield* startOne(name, config)
    byName.set(name, started)
    listeners.push(started.running)
  }

  const breaker = yield* CircuitBreaker
  const cache = yield* RoutingCache
  const resolver = yield* Resolver
  const coldStart = yield* ColdStart
  const backendPool = yield* BackendPool
  /** The backend a resource's cached route points at, for the dashboard (no lookup when none is cached). */
  const cachedBackend = (resourceId: string) => {
    const cached = Effect.runSync(cache.peek(resourceId))
    return (
      cached && {
        backend: formatEndpoint(cached.route.endpoint),
        address: `${cached.target.ip}:${cached.target.port}`
      }
    )
  }
  const ops: AdminOps = {
    backends: () => breaker.snapshot(),
    stats: async () => ({
      pid: process.pid,
      connections: Object.fromEntries(listeners.map((l) => [l.name, l.open()])),
      // Per-listener totals and the busiest resources (the dashboard's; counted now, one pass over open connections).
      ...processView(listeners, cachedBackend, (l) => kinds.get(l)),
      cache: await Effect.runPromise(cache.stats),
      coldStartWaiting: Object.fromEntries(coldStart.waiting()),
      resolver: await Effect.runPromise(resolver.getStats),
      pools: backendPool.stats()
    }),
    pools: () => poolRows(backendPool.details()),
    purge: (resourceId) => Effect.runPromise(cache.purge(resourceId)),
    drain: () => {
      ready = false
      for (const l of listeners) l.stopAccepting()
      log.info("draining on request (POST /admin/drain)", { connections: listeners.reduce((n, l) => n + l.open(), 0) })
    },
    reload: async (next) => {
      const applied: Array<string> = []
      const needsRestart: Array<string> = []
      const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b)
      if (!same(next.routes, current.routes)) {
        if (resolver.replaceRoutes) {
          resolver.replaceRoutes(next.routes)
          applied.push("routes")
        } else needsRestart.push("routes (the configured resolver is not the static one)")
      }
      if (!same(next.limits, current.limits)) {
        admission.update(next.limits)
        applied.push("limits")
      }
      if (!same(next.upstream, current.upstream)) {
        setSourceAddresses(next.upstream.sourceAddresses)
        applied.push("upstream")
      }
      for (const key of [
        "workers",
        "admin",
        "cache",
        "ssrf",
        "timeouts",
        "breaker",
        "coldStart",
        "resolver",
        "log",
        "tcp"
      ] as const) {
        if (!same(next[key], current[key])) needsRestart.push(key)
      }
      const names = new Set([...Object.keys(current.listeners), ...Object.keys(next.listeners)])
      for (const name of names) {
        const before = current.listeners[name]
        const after = next.listeners[name]
        const live = byName.get(name)
        if (after === undefined) {
          // Removed: stop accepting; its open connections finish on their own.
          live?.running.stopAccepting()
          byName.delete(name)
          applied.push(`listeners.${name} stopped`)
          continue
        }
        // TLS files and the HTTP listener's per-name certificates reload in place (below): not part of the shape.
        const { tls: _t, ...shapeBefore } = before ?? ({} as Partial<typeof after>)
        const { tls: _u, ...shapeAfter } = after
        if (shapeBefore.http) shapeBefore.http = { ...shapeBefore.http, certificates: [] }
        if (shapeAfter.http) shapeAfter.http = { ...shapeAfter.http, certificates: [] }
        // The TLS a listener serves with is its own `tls`, else the top-level one: compare what it really uses.
        const tlsBefore = before?.tls ?? current.tls
        const tlsAfter = after.tls ?? next.tls
        if (
          live === undefined ||
          !same(shapeBefore, shapeAfter) ||
          (tlsBefore === undefined) !== (tlsAfter === undefined)
        ) {
          const started = await Effect.runPromise(
            startOne(name, next).pipe(Effect.provideContext(services), Scope.provide(scope))
          )
          live?.running.stopAccepting()
          byName.set(name, started)
          listeners.push(started.running)
          applied.push(
            `listeners.${name} ${live ? "restarted" : "started"} on ${started.running.host}:${started.running.port}`
          )
          continue
        }
        // Same listener: re-read its certificate files (renewed certificates) and apply requireClientCert, the CA and
        // the profile to the next handshakes, in place (a restart could not rebind a fixed port that is still open).
        if (live.tls && tlsAfter) {
          await Effect.runPromise(
            reloadServerTls(live.tls, tlsAfter, `listeners.${name}.tls`, after.http?.certificates)
          )
          applied.push(`listeners.${name}.tls reloaded`)
        }
      }
      await Effect.runPromise(cache.purgeAll)
      current = next
      log.info("config reloaded", { applied, needsRestart })
      return { applied, needsRestart }
    },
    reloadFromSource: async () => {
      if (configSource === undefined) throw new Error("no config file to re-read (started without one)")
      let next: Config
      try {
        next = configSource()
      } catch (e) {
        log.error("config reload refused, keeping the running config", { reason: (e as Error).message })
        throw e
      }
      return ops.reload(next)
    }
  }
  const admin =
    config.admin === undefined
      ? undefined
      : yield* startAdmin(config.admin.host, config.admin.port, {
          ready: () => ready,
          listeners: () => Object.fromEntries(status().map(({ name, ...info }) => [name, info])),
          metrics: () => Effect.runPromise(metrics.prometheus),
          backends: ops.backends,
          stats: ops.stats,
          pools: ops.pools,
          purge: ops.purge,
          drain: ops.drain,
          reload: ops.reloadFromSource,
          dashboard: async () => ({
            version: version(),
            now: Date.now(),
            uptimeSeconds: Math.round(process.uptime()),
            ready,
            ...mergeStats([await ops.stats()]),
            backends: ops.backends(),
            pools: ops.pools(),
            config: redactConfig(current)
          }),
          token: config.admin.token,
          allowedHosts: config.admin.allowedHosts,
          log
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
  return { listeners, status, admin: admin && { host: admin.host, port: admin.port }, ops } satisfies ProxyHandle
})

type ProxyServices = ListenerServices | ListenerRegistry

export interface RunOptions {
  /** Your Resolver; default: the static `routes` of the config. */
  readonly resolver?: Layer.Layer<Resolver, unknown>
  /** Log sink; default: stdout per `config.log`. */
  readonly log?: Layer.Layer<Log>
  /** Postgres cancel keys; a cluster worker passes one backed by the primary's table. */
  readonly cancelKeys?: CancelKeys
  /** MySQL connection ids and their sessions (KILL); a cluster worker passes one backed by the primary's table. */
  readonly mysqlSessions?: MysqlSessions
  /** Cross-process state when `cache.redis` is not set; a cluster worker passes one backed by its primary. */
  readonly sharedCache?: Layer.Layer<SharedCache>
  /** Your RoutingCache (it may use the Resolver, SsrfGuard, Metrics and SharedCache); default: the built-in one. */
  readonly routingCache?: Layer.Layer<RoutingCache, unknown, RoutingCacheNeeds>
  /** Your BackendPool (the HTTP listeners' backend connections; it may use the CircuitBreaker); default: built-in. */
  readonly backendPool?: Layer.Layer<BackendPool, unknown, CircuitBreaker>
  /** Re-reads the config for a hot reload (SIGHUP, POST /admin/reload); throws ConfigError when invalid. */
  readonly configSource?: () => Config
  /**
   * Routes every tcp listener by the client's first bytes, whatever its `route` says: a plain function, or a layer
   * of the FirstBytes service (built in the proxy's scope).
   */
  readonly firstBytes?: FirstBytesExtractor | Layer.Layer<FirstBytes, unknown>
  /**
   * Listener types of your own beside the built-in ones (decode the config with the same: `decodeConfig(raw, dir,
   * { listeners })`), or a layer of the ListenerRegistry.
   */
  readonly listeners?: ReadonlyArray<ListenerManifest> | Layer.Layer<ListenerRegistry>
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
    setSourceAddresses(config.upstream.sourceAddresses)
    setTcpKeepAlive(config.tcp.keepAlive)
    const layer = Layer.mergeAll(
      servicesLayer(config, options.resolver, options.sharedCache, options.routingCache, options.backendPool),
      options.log ?? Log.layer(config.log),
      Layer.isLayer(options.listeners)
        ? (options.listeners as Layer.Layer<ListenerRegistry>)
        : ListenerRegistry.layer(options.listeners as ReadonlyArray<ListenerManifest> | undefined)
    )
    const context = yield* Layer.build(layer).pipe(
      Effect.mapError((e) =>
        typeof e === "object" && e !== null && (e as ProxyError)._tag === "ProxyError"
          ? (e as ProxyError)
          : proxyError("INTERNAL", "internal", `cannot start services: ${String(e)}`)
      )
    )
    const extractor = Layer.isLayer(options.firstBytes)
      ? yield* Layer.build(options.firstBytes as Layer.Layer<FirstBytes, unknown>).pipe(
          Effect.map((built) => Context.get(built, FirstBytes).extract),
          Effect.mapError((e) => proxyError("INTERNAL", "internal", `cannot build the FirstBytes layer: ${String(e)}`))
        )
      : (options.firstBytes as FirstBytesExtractor | undefined)
    return yield* startProxy(config, options.cancelKeys, options.configSource, extractor, options.mysqlSessions).pipe(
      Effect.provideContext(context)
    )
  })
