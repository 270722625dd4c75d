// The HTTP listener: a reverse proxy that routes each request by its Host (HTTP/1.x, WebSocket upgrades, HTTP/2 over
// h2c and TLS+ALPN with per-tenant certificates). Unlike the byte-level listeners it works per request, so it runs
// its own servers (accept.ts) on the shared accept phase (src/pipeline/accept.ts: the bind with SO_REUSEPORT in
// workers, the PROXY header); Effect starts it, stops it and answers route lookups, and the requests themselves are
// plain Node callbacks (docs/architecture.md, "HTTP").
import * as http2 from "node:http2"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { type ProxyError, proxyError } from "../../domain/ProxyError.ts"
import { listen, proxyProtocolIn } from "../../pipeline/accept.ts"
import { Log } from "../../services/Log.ts"
import { Metrics } from "../../services/Metrics.ts"
import { Resolver } from "../../services/Resolver.ts"
import { RoutingCache } from "../../services/RoutingCache.ts"
import type { Admission } from "../Admission.ts"
import type { RunningListener } from "../Listener.ts"
import type { ProtocolContext } from "../ProtocolContext.ts"
import { plainServer, tlsServer } from "./accept.ts"
import { serveHttp2 } from "./h2.ts"
import { Routes } from "./routes.ts"
import { type Hooks, HttpRuntime } from "./runtime.ts"
import { httpSettings } from "./settings.ts"
import { listenerPools } from "./upstream.ts"

export interface HttpTimeouts {
  /**
   * Seconds a request head may take from its first byte (slow-loris), and a new connection may stay silent; also
   * the TLS handshake limit.
   */
  readonly handshake: number
  /** Seconds to connect to a backend (a route's own `timeout` does not apply: pools are per address). */
  readonly connect: number
  /** Seconds of silence after which an upgraded (WebSocket) connection is closed; 0 = never. */
  readonly idle: number
}

/** Starts the HTTP listener; the handle lets the composition root drain it with the others. */
export const startHttpListener = (
  ctx: ProtocolContext,
  timeouts: HttpTimeouts,
  admission?: Admission
): Effect.Effect<RunningListener, ProxyError, Scope.Scope | RoutingCache | Resolver | Metrics | Log> =>
  Effect.gen(function* () {
    const context = yield* Effect.context<RoutingCache | Resolver | Metrics | Log>()
    const cache = Context.get(context, RoutingCache)
    const resolver = Context.get(context, Resolver)
    const log = Context.get(context, Log)
    const metrics = Context.get(context, Metrics).listener(ctx.name, ctx.listener.protocol ?? "http")
    const runFork = Effect.runForkWith(context)

    const settings = httpSettings(ctx, timeouts)
    // From the BackendPool service, which consults the CircuitBreaker (both optional for embedders' own layers).
    const pools = yield* listenerPools(settings)
    const routes = new Routes(context, cache, pools, {
      cacheTtl: ctx.config.cache.ttl,
      telemetry: settings.telemetry,
      wakeLockSeconds: ctx.config.coldStart.timeout,
      ...(settings.fixedBackend ? { fixedBackend: settings.fixedBackend } : {})
    })
    const onConnect = resolver.onConnect
    const onDisconnect = resolver.onDisconnect
    const hooks: Hooks | undefined =
      onConnect === undefined && onDisconnect === undefined
        ? undefined
        : {
            connected: (resourceId, info) => {
              if (onConnect !== undefined) runFork(onConnect(resourceId, info))
            },
            disconnected: (resourceId, endpoint, info, bytesFromClient, bytesFromBackend, durationMs) => {
              if (onDisconnect !== undefined) {
                runFork(onDisconnect({ ...info, resourceId, endpoint, bytesFromClient, bytesFromBackend, durationMs }))
              }
            }
          }
    const rt = new HttpRuntime(settings, log, metrics, routes, pools, hooks, ctx.listener.maxConnections, admission)

    const h2 = http2.createServer({
      settings: { maxHeaderListSize: settings.maxHeaderSize },
      maxSessionMemory: 32
    })
    h2.setTimeout(Math.max(settings.keepAliveMs, 60_000))
    serveHttp2(h2, rt)
    rt.h2 = h2

    const pp = proxyProtocolIn(ctx.listener, ctx.name)
    const serverTls = ctx.tls
    const { server, destroyPending } =
      serverTls === undefined
        ? plainServer(rt, pp)
        : yield* Effect.try({
            try: () => tlsServer(rt, serverTls, pp, log),
            catch: (e) =>
              proxyError("INTERNAL", "internal", `listeners.${ctx.name}.certificates: ${(e as Error).message}`)
          })
    // A failed bind is the start's error (the caller's), not a log line of its own: only a listening server's count.
    server.on("error", (err) => {
      if (server.listening) log.error("listener error", { listener: ctx.name, message: err.message })
    })
    const address = yield* listen(server, ctx.listener.host, ctx.listener.port)
    log.info("listening", {
      listener: ctx.name,
      host: address.address,
      port: address.port,
      tls: ctx.tls !== undefined,
      proxyProtocol: pp !== undefined,
      h2: ctx.tls !== undefined ? "alpn" : settings.h2c ? "h2c" : "off"
    })

    const running: RunningListener = {
      name: ctx.name,
      host: address.address,
      port: address.port,
      open: () => rt.open.size,
      stopAccepting: () => {
        server.close()
        rt.drain()
      },
      whenIdle: () => rt.whenIdle(),
      destroyAll: () => {
        destroyPending()
        for (const socket of rt.open) socket.destroy()
      }
    }
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        server.close()
        running.destroyAll()
        pools.close()
        rt.h2Sessions.close()
      })
    )
    return running
  })
