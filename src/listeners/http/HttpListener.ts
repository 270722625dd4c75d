// The HTTP listener: a reverse proxy that routes each request by its Host (HTTP/1.x, WebSocket upgrades, HTTP/2 over
// h2c and TLS+ALPN with per-tenant certificates). Unlike the byte-level listeners it works per request, so it runs
// its own servers instead of the shared accept loop; Effect starts it, stops it and answers route lookups, and the
// requests themselves are plain Node callbacks (see ARCHITECTURE.md, "relay").
import * as http2 from "node:http2"
import * as net from "node:net"
import * as tls from "node:tls"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { SniCertificate } from "../../config/Config.ts"
import { type ProxyError, proxyError } from "../../domain/ProxyError.ts"
import { CircuitBreaker } from "../../services/CircuitBreaker.ts"
import { Log } from "../../services/Log.ts"
import { Metrics } from "../../services/Metrics.ts"
import { Resolver } from "../../services/Resolver.ts"
import { RoutingCache } from "../../services/RoutingCache.ts"
import type { Admission } from "../Admission.ts"
import type { RunningListener } from "../Listener.ts"
import type { ProtocolContext } from "../ProtocolContext.ts"
import type { ServerTls } from "../tls.ts"
import { failure, failureResponse } from "./failure.ts"
import { H1Conn } from "./h1.ts"
import { serveHttp2 } from "./h2.ts"
import { Routes } from "./routes.ts"
import { type Hooks, HttpRuntime } from "./runtime.ts"
import { httpSettings } from "./settings.ts"
import { loadSni } from "./sni.ts"
import { type BreakerHooks, Pools } from "./upstream.ts"

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

function ignore() {}

const listen = (server: net.Server, host: string, port: number) =>
  Effect.callback<net.AddressInfo, ProxyError>((resume) => {
    const onError = (err: NodeJS.ErrnoException) =>
      resume(
        Effect.fail(proxyError("INTERNAL", "internal", `cannot listen on ${host}:${port}: ${err.code ?? err.message}`))
      )
    server.once("error", onError)
    server.listen({ host, port, backlog: 4096 }, () => {
      server.off("error", onError)
      resume(Effect.succeed(server.address() as net.AddressInfo))
    })
  })

/** The SNI certificates of `serverTls`: each gets the listener's options (client CA, profile) with its own pair. */
const sniFor = (certificates: ReadonlyArray<SniCertificate>, serverTls: ServerTls, options: tls.SecureContextOptions) =>
  loadSni(
    certificates,
    (pem) => tls.createSecureContext({ ...options, cert: pem.cert, key: pem.key }),
    // Read on every handshake: a hot reload swaps renewed files in there.
    () => serverTls.context
  )

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
    // The breaker is optional here: embedders that build their own layers may leave it out.
    const breakerOption = yield* Effect.serviceOption(CircuitBreaker)
    const breaker: BreakerHooks | undefined = Option.isSome(breakerOption) ? breakerOption.value : undefined

    const settings = httpSettings(ctx, timeouts)
    const pools = new Pools(settings, breaker)
    const routes = new Routes(context, cache, pools, {
      cacheTtl: ctx.config.cache.ttl,
      telemetry: settings.telemetry,
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

    /** Over a limit: one JSON 503 on HTTP/1.x, then the socket goes. */
    const refuseSocket = (socket: net.Socket, why: string, h2Socket: boolean) => {
      const f = rt.refused(
        failure(503, "UNAVAILABLE", "internal", why, { retryAfter: 1, clientMessage: why }),
        `${socket.remoteAddress}:${socket.remotePort}`,
        "",
        ""
      )
      socket.on("error", ignore)
      socket.once("close", () => metrics.closed(socket.bytesRead, 0))
      if (h2Socket) socket.destroy()
      else socket.end(failureResponse(f, true, false))
      socket.setTimeout(2_000, () => socket.destroy())
    }

    let server: net.Server
    if (ctx.tls !== undefined) {
      const serverTls = ctx.tls
      const certificates = ctx.listener.http?.certificates ?? []
      let sni = yield* Effect.try({
        try: () => sniFor(certificates, serverTls, serverTls.options),
        catch: (e) => proxyError("INTERNAL", "internal", `listeners.${ctx.name}.certificates: ${(e as Error).message}`)
      })
      const secure = tls.createServer(
        {
          ...serverTls.options,
          requestCert: serverTls.requireClientCert,
          rejectUnauthorized: serverTls.requireClientCert,
          ALPNProtocols: ["h2", "http/1.1"],
          allowHalfOpen: true,
          ...(settings.headMs > 0 ? { handshakeTimeout: settings.headMs } : {}),
          SNICallback: (servername, cb) => sni.callback(servername, cb)
        },
        (socket) => {
          // tls.Server already refused unverified certificates; this holds should its checks ever change (fail closed).
          if (serverTls.requireClientCert && socket.authorized !== true) {
            metrics.refused("forbidden")
            return socket.destroy()
          }
          const isH2 = socket.alpnProtocol === "h2"
          const why = rt.admit(socket)
          if (why !== undefined) return refuseSocket(socket, why, isH2)
          if (!isH2) {
            new H1Conn(socket, rt)
            return
          }
          socket.on("error", ignore)
          socket.once("close", () => rt.forget(socket, 0))
          h2.emit("connection", socket)
        }
      )
      secure.on("tlsClientError", (err, socket) => {
        metrics.refused("forbidden")
        log.debug("tls handshake failed", {
          listener: ctx.name,
          client: `${socket.remoteAddress}:${socket.remotePort}`,
          message: err.message
        })
      })
      serverTls.onReload = (next) => {
        // Everything that can fail first (the SNI files), then the swap.
        const nextSni = sniFor(certificates, serverTls, next.options)
        secure.setSecureContext(next.options)
        // tls.Server hands these two to each new TLSSocket (and setSecureContext leaves them alone).
        Object.assign(secure, { requestCert: next.requireClientCert, rejectUnauthorized: next.requireClientCert })
        sni = nextSni
      }
      server = secure
    } else {
      server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
        const why = rt.admit(socket)
        if (why !== undefined) return refuseSocket(socket, why, false)
        new H1Conn(socket, rt)
      })
    }
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
