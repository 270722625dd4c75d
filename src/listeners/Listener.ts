// The shared accept loop: accept -> identify -> resolve -> vet -> admit -> connect -> replay -> relay -> close.
// A short fiber runs the handshake phases and ends; the relay that follows is plain Node callbacks. A listener whose
// protocol reads nothing (tcp with a fixed route), or only peeks with callbacks (tcp `route: sni`: `identifyNow`),
// skips the fiber while its route is cached: see `connectNow`.

import cluster from "node:cluster"
import * as net from "node:net"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import { decodeProxyHeader, encodeProxyHeader } from "../codec/proxy/ProxyHeader.ts"
import type { ListenerConfig } from "../config/Config.ts"
import { formatEndpoint, type VettedEndpoint } from "../domain/Endpoint.ts"
import { type ProxyError, proxyError, withProps } from "../domain/ProxyError.ts"
import type { ConnectionInfo, Route } from "../domain/Route.ts"
import { cidrListContains, parseCidrList } from "../domain/SpecialRanges.ts"
import { errorPlaceholder, type RelayTotals, readIntoShared, relay } from "../relay/relay.ts"
import { CircuitBreaker } from "../services/CircuitBreaker.ts"
import { ColdStart } from "../services/ColdStart.ts"
import { Log } from "../services/Log.ts"
import { Metrics } from "../services/Metrics.ts"
import { Resolver } from "../services/Resolver.ts"
import { RoutingCache } from "../services/RoutingCache.ts"
import { SharedCache } from "../services/SharedCache.ts"
import { type Admission, limitReached } from "./Admission.ts"
import { cancelDial, type DialWaiter, dial, dialNow } from "./dial.ts"
import { setOnListeningSocket, tcpKeepAlive } from "./keepAlive.ts"
import type { ClientConnection, Identified, Protocol, RelayWatch } from "./Protocol.ts"
import { readFrame } from "./readFrame.ts"
import { logRefusal, newRef } from "./refusal.ts"

export interface ListenerLogging {
  /** One info line per proxied connection when it closes. */
  readonly connections: boolean
  /** Fraction of those lines written (0..1), for high connection rates. */
  readonly sample: number
}

export interface ListenerTimeouts {
  /** Seconds for identify (the client's handshake), and for replay (the backend's); 0 = none. */
  readonly handshake: number
  /** Seconds for the dial (a route's `timeout` overrides it); 0 = the kernel's own limit. */
  readonly connect: number
  /** Seconds a relayed connection may go without traffic; 0 = no limit. */
  readonly idle: number
  /** Seconds a half-closed relay may go without a byte the other way; 0 = no limit. Default 60. */
  readonly halfClose?: number | undefined
}

export interface RunningListener {
  readonly name: string
  readonly host: string
  readonly port: number
  /** Connections open now (handshaking or relaying). */
  readonly open: () => number
  /** Stop accepting; open connections go on. */
  readonly stopAccepting: () => void
  /** Resolves when no connection is open. */
  readonly whenIdle: () => Promise<void>
  /** Ends whatever is still open (after the drain deadline). */
  readonly destroyAll: () => void
  /** For the admin dashboard, counted when asked (one pass over the open connections, nothing per connection). */
  readonly census?: () => ListenerCensus
  /** Connections that took the fiber-free path so far (see `connectNow`). */
  readonly fastConnections?: () => number
}

export interface ListenerCensus {
  /** Open connections per resource, once identified. */
  readonly resources: ReadonlyMap<string, number>
  /** Bytes the open connections' client sockets have read and written so far (not yet in the byte counters). */
  readonly bytesRead: number
  readonly bytesWritten: number
}

/** How long a refused client gets to read our error before the socket is destroyed. */
const refuseGraceMs = 2_000

// Shared handlers: found through `this`, so accepting a connection allocates no closures for them.
// Until the relay attaches its own listener and drops this one (a listener per event, not an array of two).
const ignoreError = errorPlaceholder(() => {})
function destroySelf(this: net.Socket) {
  this.destroy()
}

/**
 * In a cluster worker each process binds the port itself with SO_REUSEPORT and the kernel spreads connections: no
 * primary accepting and handing sockets over IPC (node:cluster's default costs ≈ 0.05 CPU s per 1k connections in
 * the primary, and balances unevenly). The primary fixes port 0 to one real port for all workers beforehand.
 */
const reusePort = cluster.isWorker

const listen = (server: net.Server, host: string, port: number) =>
  Effect.callback<net.AddressInfo, ProxyError>((resume) => {
    const onError = (err: NodeJS.ErrnoException) =>
      resume(
        Effect.fail(proxyError("INTERNAL", "internal", `cannot listen on ${host}:${port}: ${err.code ?? err.message}`))
      )
    server.once("error", onError)
    server.listen({ host, port, backlog: 4096, reusePort, exclusive: reusePort }, () => {
      server.off("error", onError)
      resume(Effect.succeed(server.address() as net.AddressInfo))
    })
  })

const withResource = (e: ProxyError, resourceId: string) => withProps(e, { resourceId })

/** What the close handler needs of one relayed connection. */
interface RelayState {
  readonly accepted: net.Socket
  readonly route: Route
  readonly who: ConnectionInfo
  readonly started: number
  readonly watch: RelayWatch | undefined
}

/** A route for a connection whose backend is already known (identify found it), for logs and hooks. */
const directRoute = (resourceId: string, target: VettedEndpoint): Route => ({
  resourceId,
  endpoint: { host: target.host, port: target.port },
  metadata: {}
})

/** Starts one listener for `protocol`. The returned handle lets the composition root drain all listeners together. */
export const startListener = Effect.fnUntraced(function* (
  protocol: Protocol,
  config: ListenerConfig,
  timeouts: ListenerTimeouts,
  admission: Admission,
  logging: ListenerLogging = { connections: true, sample: 1 },
  wakeLockSeconds = 30
) {
  const logConnections = logging.connections
  const logSample = logging.sample
  const context = yield* Effect.context<
    RoutingCache | Resolver | Metrics | Log | CircuitBreaker | ColdStart | SharedCache
  >()
  const shared = Context.get(context, SharedCache)
  const cache = Context.get(context, RoutingCache)
  const resolver = Context.get(context, Resolver)
  const breaker = Context.get(context, CircuitBreaker)
  const coldStart = Context.get(context, ColdStart)
  const log = Context.get(context, Log)
  const debug = log.enabled("debug")
  // The protocol label, resolved once here so no connection pays for it.
  const label = config.protocol ?? protocol.name
  const allMetrics = Context.get(context, Metrics)
  const metrics = allMetrics.listener(protocol.name, label)
  const runFork = Effect.runForkWith(context)
  // Accepted socket -> its resource once known (for the per-resource limit), "" before.
  const open = new Map<net.Socket, string>()
  const handshakes = new Set<Fiber.Fiber<unknown, unknown>>()
  let idleWaiters: Array<() => void> = []
  const handshakeMs = timeouts.handshake * 1000
  // One options object for every relay of this listener.
  const relayOptions = { idleTimeoutMs: timeouts.idle * 1000, halfCloseMs: (timeouts.halfClose ?? 60) * 1000 }
  const trustedList = config.proxyProtocol ? parseCidrList(config.trustedProxies) : undefined
  const trusted = typeof trustedList === "string" ? undefined : trustedList
  // Nothing reads the backend but the relay (no replay, no watcher): it may read into the relay's shared buffer.
  const relayOnly = protocol.replay === undefined && protocol.relaying === undefined
  // The fiber-free path needs a protocol with nothing to read, replay or watch, and one resource for every connection.
  const fixedRoute =
    protocol.fixedRoute !== undefined && !protocol.readsHandshake && !config.proxyProtocol && relayOnly
      ? protocol.fixedRoute
      : undefined
  // Nothing reads the accepted socket before the relay (it is accepted paused) nor watches it: unless TLS replaced it,
  // it may read into the shared buffer too.
  const clientRelayOnly = !protocol.readsHandshake && !config.proxyProtocol && protocol.relaying === undefined
  let sharedReadsUnavailable = false
  let fastConnections = 0

  const forget = (socket: net.Socket) => {
    const resource = open.get(socket)
    if (resource === undefined) return
    open.delete(socket)
    admission.leave()
    if (resource !== "") admission.leaveResource(resource)
    if (open.size === 0 && idleWaiters.length > 0) {
      for (const w of idleWaiters) w()
      idleWaiters = []
    }
  }

  /** `accepted` is what the listener tracks; `client` is where the answer goes (a TLSSocket after an upgrade). */
  const refuse = (accepted: net.Socket, client: net.Socket, error: ProxyError, info: ConnectionInfo) => {
    metrics.refused(error.reason.toLowerCase())
    metrics.closed(accepted.bytesRead, 0)
    // The client's answer and the log line carry the same ref; the detail stays in the log (refusal.ts).
    const refused = withProps(error, { ref: newRef() })
    logRefusal(log, "connection refused", refused, {
      listener: protocol.name,
      protocol: label,
      client: `${info.remoteAddress}:${info.remotePort}`
    })
    forget(accepted)
    if (client.destroyed || accepted.destroyed) return
    if (refused.quiet) client.end()
    else protocol.refuse(client, refused)
    accepted.setTimeout(refuseGraceMs, destroySelf)
  }

  /** The PROXY protocol header of a trusted load balancer: the real client's address replaces the balancer's. */
  const readProxyHeader = (conn: ClientConnection, info: ConnectionInfo) =>
    Effect.map(readFrame(conn.client, decodeProxyHeader, 2_100), (read): ConnectionInfo => {
      if (read.rest.length > 0) conn.client.unshift(read.rest)
      const h = read.value
      return h.command === "PROXY" && h.source !== undefined
        ? { ...info, remoteAddress: h.source.address, remotePort: h.source.port }
        : info
    })

  const clientPart = (conn: ClientConnection, accepted: ConnectionInfo) =>
    config.proxyProtocol
      ? Effect.flatMap(readProxyHeader(conn, accepted), (info) =>
          Effect.map(protocol.identify(conn), (identified) => ({ info, identified }))
        )
      : Effect.map(protocol.identify(conn), (identified) => ({ info: accepted, identified }))

  // identify -> resolve -> vet -> connect -> replay, all bounded; ends once the relay can start.
  const handshake = Effect.fnUntraced(function* (conn: ClientConnection, accepted: ConnectionInfo, socket: net.Socket) {
    const { info, identified } = yield* timed(clientPart(conn, accepted))
    const who: ConnectionInfo =
      identified.tlsSubject === undefined && identified.sni === undefined
        ? info
        : { ...info, tlsSubject: identified.tlsSubject, sni: identified.sni }
    const limited = identified.target === undefined ? admission.enterResource(identified.resourceId) : undefined
    if (limited) return yield* withResource(limited, identified.resourceId)
    if (identified.target === undefined && open.has(socket)) open.set(socket, identified.resourceId)
    return yield* connect(identified, who).pipe(
      Effect.mapError((e) => (e.resourceId === undefined ? withResource(e, identified.resourceId) : e))
    )
  })

  /** The client's part of the handshake is bounded by timeouts.handshake (slow-loris). */
  const timed = <A>(effect: Effect.Effect<A, ProxyError>): Effect.Effect<A, ProxyError> =>
    handshakeMs <= 0
      ? effect
      : effect.pipe(
          Effect.timeoutOrElse({
            duration: handshakeMs,
            orElse: () => Effect.fail(handshakeTimeout())
          })
        )
  const handshakeTimeout = () =>
    proxyError("HANDSHAKE_TIMEOUT", "client", `client did not complete its handshake within ${timeouts.handshake}s`)

  /**
   * replay (the backend's part of the handshake: upstream TLS, the login, the backend's first answer) is bounded by
   * timeouts.handshake, so a backend that accepts and never answers cannot hold the client for ever; a protocol that
   * bounds its own waits (`boundsReplay`) gets this only as a backstop behind them.
   */
  const backendTimed = <A>(effect: Effect.Effect<A, ProxyError>, route: Route): Effect.Effect<A, ProxyError> => {
    if (handshakeMs <= 0) return effect
    const seconds = protocol.boundsReplay
      ? timeouts.handshake + (route.timeout ?? timeouts.connect)
      : timeouts.handshake
    return effect.pipe(
      Effect.timeoutOrElse({
        duration: seconds * 1000,
        orElse: () => {
          const message = `backend did not complete its handshake within ${seconds}s`
          return Effect.fail(proxyError("CONNECT_FAILED", "backend", message, { clientMessage: message }))
        }
      })
    )
  }

  // One wake per cold period across every process and pod sharing Redis (each process already asks only once).
  const wake = (resourceId: string) =>
    Effect.flatMap(shared.claimWake(resourceId, wakeLockSeconds), (mine) =>
      !mine ? Effect.void : resolver.wake ? resolver.wake(resourceId) : resolver.track(resourceId)
    )

  /** resolve, holding the client while the Resolver reports the backend cold (UNAVAILABLE with retry-after). */
  const resolve = (resourceId: string, who: ConnectionInfo) =>
    cache.get(resourceId, who).pipe(
      Effect.catchIf(
        (e) => e.reason === "UNAVAILABLE" && e.source === "resolver" && e.retryAfter !== undefined,
        () =>
          Effect.andThen(
            coldStart.await(
              resourceId,
              wake(resourceId),
              Effect.andThen(cache.purgeLocal(resourceId), cache.get(resourceId, who))
            ),
            cache.get(resourceId, who)
          )
      )
    )

  /** connect, through the backend's circuit breaker; a wakeable route that refuses is treated as asleep. */
  const connectTo = (
    resourceId: string,
    route: Route,
    target: VettedEndpoint
  ): Effect.Effect<net.Socket, ProxyError> => {
    const key = `${target.ip}:${target.port}`
    const timeoutMs = (route.timeout ?? timeouts.connect) * 1000
    const attempt = Effect.suspend(() => {
      const gate = breaker.admit(key)
      if (!gate.ok) {
        return Effect.fail(
          proxyError("UNAVAILABLE", "backend", `backend ${formatEndpoint(target)} is failing (circuit open)`, {
            retryAfter: gate.retryAfter
          })
        )
      }
      return dial(target, timeoutMs, relayOnly).pipe(
        Effect.tap(() => Effect.sync(() => breaker.success(key))),
        Effect.tapError((e) => Effect.sync(() => breaker.failure(key, e.message)))
      )
    })
    if (route.metadata.wakeable !== true) return attempt
    const probe = Effect.map(dial(target, timeoutMs), (s) => {
      s.destroy()
      breaker.success(key)
    })
    return attempt.pipe(
      Effect.catchIf(
        (e) => e.reason === "CONNECT_FAILED" || (e.reason === "UNAVAILABLE" && e.source === "backend"),
        () => Effect.andThen(coldStart.await(resourceId, wake(resourceId), probe), dial(target, timeoutMs, relayOnly))
      )
    )
  }

  /** The backend wants to know who the client is: the same header a load balancer would have sent us. */
  const sendProxyHeader = (dialed: net.Socket, route: Route, target: VettedEndpoint, who: ConnectionInfo) => {
    const pp = route.metadata.proxyProtocol
    if (pp !== 1 && pp !== 2) return
    dialed.write(
      encodeProxyHeader(
        pp,
        { address: who.remoteAddress, port: who.remotePort },
        { address: dialed.remoteAddress ?? target.ip, port: target.port }
      )
    )
  }

  /** A route the cache holds and vetted already, counted as the hit cache.get would count; else resolve's way. */
  const cachedNow = (resourceId: string) => {
    const cached = cache.peekNow(resourceId)
    if (cached !== undefined) cache.hit(resourceId)
    return cached
  }

  const connect = Effect.fnUntraced(function* (identified: Identified, who: ConnectionInfo) {
    const { route, target } =
      identified.target === undefined
        ? (cachedNow(identified.resourceId) ?? (yield* resolve(identified.resourceId, who)))
        : { route: directRoute(identified.resourceId, identified.target), target: identified.target }
    const dialed = yield* connectTo(identified.resourceId, route, target)
    sendProxyHeader(dialed, route, target, who)
    let backend = dialed
    if (protocol.replay) {
      backend = yield* backendTimed(protocol.replay(identified, route, dialed), route).pipe(
        Effect.onError(() => Effect.sync(() => dialed.destroy()))
      )
    } else if (identified.replay !== undefined && identified.replay.length > 0) backend.write(identified.replay)
    return { identified, route, target, backend, who }
  })

  /** One close handler for every connection of this listener; the facts of each ride on the relay. */
  const onRelayClosed = (totals: RelayTotals, state: RelayState) => {
    const { accepted, route, who, started } = state
    state.watch?.closed()
    metrics.closed(totals.bytesFromClient, totals.bytesFromBackend)
    allMetrics.resource(route.resourceId)?.closed(totals.bytesFromClient, totals.bytesFromBackend)
    forget(accepted)
    if (!logConnections && resolver.onDisconnect === undefined) return
    const durationMs = Math.round(performance.now() - started)
    const endpoint = formatEndpoint(route.endpoint)
    if (logConnections && (logSample >= 1 || Math.random() < logSample)) {
      log.info("connection closed", {
        listener: protocol.name,
        protocol: label,
        client: `${who.remoteAddress}:${who.remotePort}`,
        resource: route.resourceId,
        backend: endpoint,
        durationMs,
        bytesFromClient: totals.bytesFromClient,
        bytesFromBackend: totals.bytesFromBackend,
        close: totals.error
          ? `error: ${totals.error.message}`
          : totals.timedOut === "idle"
            ? "idle timeout"
            : totals.timedOut === "halfClose"
              ? "half-close timeout"
              : "normal"
      })
    }
    if (resolver.onDisconnect) {
      runFork(
        resolver.onDisconnect({
          ...who,
          resourceId: route.resourceId,
          endpoint,
          bytesFromClient: totals.bytesFromClient,
          bytesFromBackend: totals.bytesFromBackend,
          durationMs
        })
      )
    }
  }

  const startRelay = (
    accepted: net.Socket,
    identified: Identified,
    backend: net.Socket,
    route: Route,
    target: VettedEndpoint,
    who: ConnectionInfo,
    started: number
  ) => {
    const client = identified.client
    if (client.destroyed || backend.destroyed) {
      client.destroy()
      backend.destroy()
      metrics.closed(client.bytesRead, backend.bytesRead)
      forget(accepted)
      return
    }
    if (resolver.onConnect) runFork(resolver.onConnect(route.resourceId, who))
    metrics.handshake(performance.now() - started)
    allMetrics.resource(route.resourceId)?.connected()
    if (debug) {
      log.debug("connection relaying", {
        listener: protocol.name,
        protocol: label,
        resource: route.resourceId,
        backend: formatEndpoint(route.endpoint)
      })
    }
    // The route's copy of the resource name is shared by all its connections; the one read from this client's
    // handshake would be held per connection for its whole life.
    if (open.get(accepted) === route.resourceId) open.set(accepted, route.resourceId)
    const watch = protocol.relaying?.(identified, backend, target)
    // Once the handshake is done only the relay reads a plain TCP socket (through `clientData` when the watcher has
    // one), unless a watcher still listens to its `data`: those go to the shared buffer.
    const clientShared =
      client === accepted && client.listenerCount("data") === 0 && readIntoShared(client, watch?.clientData)
    if (backend.listenerCount("data") === 0) readIntoShared(backend)
    if (clientRelayOnly && client === accepted && !clientShared && !sharedReadsUnavailable) {
      sharedReadsUnavailable = true
      log.debug("client sockets read into a new buffer each (this Node has no user-buffer reads for them)", {
        listener: protocol.name,
        node: process.version
      })
    }
    relay(client, backend, onRelayClosed, relayOptions, { accepted, route, who, started, watch }, watch?.clientData)
  }

  /** A connection on the fiber-free path while its backend is dialled: the dial's answer finds its facts here. */
  class FastDial implements DialWaiter {
    readonly accepted: net.Socket
    readonly route: Route
    readonly target: VettedEndpoint
    readonly key: string
    /** Undefined until something asks (`who`): see `peerRead`. */
    info: ConnectionInfo | undefined
    readonly started: number
    backend: net.Socket | undefined = undefined
    /** What identifyNow read (its replay goes to the backend first); undefined for a fixed route. */
    identified: Identified | undefined = undefined
    constructor(
      accepted: net.Socket,
      route: Route,
      target: VettedEndpoint,
      key: string,
      info: ConnectionInfo | undefined,
      started: number
    ) {
      this.accepted = accepted
      this.route = route
      this.target = target
      this.key = key
      this.info = info
      this.started = started
    }
    who(): ConnectionInfo {
      if (this.info === undefined) this.info = clientInfo(this.accepted)
      return this.info
    }
    // What connectTo, connect and the fiber's observer do after the dial, in the same order and words.
    dialed(backend: net.Socket | undefined, error: ProxyError | undefined): void {
      pendingDials.delete(this)
      const route = this.route
      if (backend === undefined) {
        const e = error as ProxyError
        breaker.failure(this.key, e.message)
        refuse(this.accepted, this.accepted, withResource(e, route.resourceId), this.who())
        return
      }
      breaker.success(this.key)
      if (route.metadata.proxyProtocol !== undefined) sendProxyHeader(backend, route, this.target, this.who())
      const identified = this.identified ?? { resourceId: route.resourceId, client: this.accepted }
      if (identified.replay !== undefined && identified.replay.length > 0) backend.write(identified.replay)
      startRelay(this.accepted, identified, backend, route, this.target, this.info ?? unreadPeer, this.started)
    }
    /** Shutdown: as an interrupted handshake fiber (no answer owed). */
    cancel(): void {
      pendingDials.delete(this)
      if (this.backend !== undefined) cancelDial(this.backend)
      this.accepted.destroy()
      metrics.closed(this.accepted.bytesRead, 0)
      forget(this.accepted)
    }
  }
  const pendingDials = new Set<FastDial>()

  // The breaker's key of the last target seen: a fixed route dials the same one every time.
  let lastTarget: VettedEndpoint | undefined
  let lastKey = ""

  /**
   * The fiber-free path (issue 11: the handshake fiber was ≈ 16 % of a new tcp connection's CPU). Taken only when
   * the route is cached and vetted already, not wakeable, its backend's breaker closed and the resource under its
   * limit: then resolve, vet and admit have nothing to wait for, and the dial's answer is a callback. Anything else
   * (first connection, expired or failed entry, open or half-open breaker, cold start, limit) returns false and
   * goes through the handshake fiber, which counts and refuses exactly as before.
   */
  const connectNow = (
    socket: net.Socket,
    resourceId: string,
    info: ConnectionInfo | undefined,
    started: number,
    identified?: Identified
  ): boolean => {
    const cached = cache.peekNow(resourceId)
    if (cached === undefined) return false
    const { route, target } = cached
    if (route.metadata.wakeable === true) return false
    if (target !== lastTarget) {
      lastTarget = target
      lastKey = `${target.ip}:${target.port}`
    }
    const key = lastKey
    if (!breaker.isClosed(key)) return false
    if (admission.enterResource(resourceId) !== undefined) return false
    open.set(socket, resourceId)
    cache.hit(resourceId)
    fastConnections++
    const pending = new FastDial(socket, route, target, key, info, started)
    pending.identified = identified
    pendingDials.add(pending)
    pending.backend = dialNow(pending, (route.timeout ?? timeouts.connect) * 1000, true)
    return true
  }

  const clientInfo = (socket: net.Socket): ConnectionInfo => ({
    protocol: protocol.name,
    remoteAddress: socket.remoteAddress ?? "",
    remotePort: socket.remotePort ?? 0
  })
  // The client's address costs a getpeername per connection. On the fiber-free path only the connection log, the
  // Resolver's hooks, a refusal and a PROXY header for the backend read it: without the first two it is read (from the
  // still open socket) only when one of the others happens, and the relay holds `unreadPeer`, which nothing reads.
  const peerRead = logConnections || resolver.onConnect !== undefined || resolver.onDisconnect !== undefined
  const unreadPeer: ConnectionInfo = { protocol: protocol.name, remoteAddress: "", remotePort: 0 }

  // TCP keep-alive on client sockets (`tcp.keepAlive`): the server option, or `tune` per socket in its place.
  const keepAlive = tcpKeepAlive()
  const onConnection = (socket: net.Socket) => {
    socket.on("error", ignoreError)
    keepAlive.tune?.(socket)
    const overLimit =
      config.maxConnections > 0 && open.size >= config.maxConnections
        ? limitReached(`listener ${protocol.name} is at its limit of ${config.maxConnections} connections`)
        : admission.enter()
    const untrusted =
      overLimit === undefined && trusted !== undefined && !cidrListContains(trusted, socket.remoteAddress ?? "")
        ? proxyError(
            "FORBIDDEN",
            "client",
            `${socket.remoteAddress} may not send a PROXY protocol header (not in listeners.${protocol.name}.trustedProxies)`
          )
        : undefined
    if (untrusted) admission.leave()
    const refusal = overLimit ?? untrusted
    if (refusal) {
      // Not tracked in `open` and nothing entered in `admission`: the refusal releases nothing.
      metrics.accepted()
      refuse(socket, socket, refusal, clientInfo(socket))
      return
    }
    metrics.accepted()
    open.set(socket, "")
    const started = performance.now()
    if (fixedRoute !== undefined && connectNow(socket, fixedRoute, peerRead ? clientInfo(socket) : undefined, started))
      return
    const info = clientInfo(socket)
    if (identifyNow !== undefined) identifyFirst(socket, info, started)
    else runHandshake(socket, info, started)
  }

  /** A peek under way on the fiber-free path (identifyNow), with its handshake deadline. */
  class Peek {
    readonly socket: net.Socket
    readonly info: ConnectionInfo
    readonly started: number
    cancel: (() => void) | undefined = undefined
    timer: NodeJS.Timeout | undefined = undefined
    constructor(socket: net.Socket, info: ConnectionInfo, started: number) {
      this.socket = socket
      this.info = info
      this.started = started
    }
    /** The peek's answer: a cached route is dialed at once; anything else goes through the fiber, as before. */
    done(identified: Identified | undefined, error: ProxyError | undefined): void {
      if (!peeks.delete(this)) return
      clearTimeout(this.timer)
      const { socket, info, started } = this
      if (identified === undefined) {
        refuse(socket, socket, error!, info)
        return
      }
      const who = identified.sni === undefined ? info : { ...info, sni: identified.sni }
      if (identified.target === undefined && connectNow(socket, identified.resourceId, who, started, identified)) return
      // The fiber reads and decodes the same bytes again (its own deadline starts now).
      if (identified.replay !== undefined) socket.unshift(identified.replay)
      runHandshake(socket, info, started)
    }
    timedOut(): void {
      this.cancel?.()
      this.done(undefined, handshakeTimeout())
    }
    /** Shutdown: as an interrupted handshake fiber (no answer owed). */
    stop(): void {
      peeks.delete(this)
      clearTimeout(this.timer)
      this.cancel?.()
      this.socket.destroy()
      metrics.closed(this.socket.bytesRead, 0)
      forget(this.socket)
    }
  }
  const peeks = new Set<Peek>()
  const identifyNow = config.proxyProtocol ? undefined : protocol.identifyNow
  const identifyFirst = (socket: net.Socket, info: ConnectionInfo, started: number) => {
    const peek = new Peek(socket, info, started)
    peeks.add(peek)
    peek.cancel = identifyNow!(socket, (identified, error) => peek.done(identified, error))
    if (handshakeMs > 0 && peeks.has(peek)) peek.timer = setTimeout(() => peek.timedOut(), handshakeMs)
  }

  const runHandshake = (socket: net.Socket, info: ConnectionInfo, started: number) => {
    const conn: ClientConnection = { client: socket }
    const fiber = runFork(handshake(conn, info, socket))
    handshakes.add(fiber)
    fiber.addObserver((exit) => {
      handshakes.delete(fiber)
      if (Exit.isSuccess(exit)) {
        const { identified, route, target, backend, who } = exit.value
        startRelay(socket, identified, backend, route, target, who, started)
        return
      }
      const reason = exit.cause.reasons[0]
      if (reason?._tag === "Fail") refuse(socket, conn.client, reason.error, info)
      else if (reason?._tag === "Die") {
        refuse(
          socket,
          conn.client,
          proxyError("INTERNAL", "internal", String(reason.defect), { cause: reason.defect }),
          info
        )
      } else {
        // Interrupted (shutdown): no answer is owed.
        conn.client.destroy()
        socket.destroy()
        metrics.closed(socket.bytesRead, 0)
        forget(socket)
      }
    })
  }

  const server = net.createServer(
    {
      allowHalfOpen: true,
      pauseOnConnect: !protocol.readsHandshake,
      noDelay: true,
      keepAlive: keepAlive.keepAlive,
      keepAliveInitialDelay: keepAlive.keepAliveInitialDelay
    },
    onConnection
  )
  // Before listen's own callback: nothing is accepted before the options are on the listening socket.
  server.once("listening", () => setOnListeningSocket(server, keepAlive))
  // A failed bind is the start's error (the caller's), not a log line of its own: only a listening server's count.
  server.on("error", (err) => {
    if (server.listening)
      log.error("listener error", { listener: protocol.name, protocol: label, message: err.message })
  })
  const address = yield* listen(server, config.host, config.port)
  log.info("listening", { listener: protocol.name, protocol: label, host: address.address, port: address.port })

  const running: RunningListener = {
    name: protocol.name,
    host: address.address,
    port: address.port,
    open: () => open.size,
    stopAccepting: () => {
      server.close()
    },
    whenIdle: () => (open.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => idleWaiters.push(resolve))),
    destroyAll: () => {
      for (const fiber of handshakes) fiber.interruptUnsafe()
      for (const pending of pendingDials) pending.cancel()
      for (const peek of peeks) peek.stop()
      for (const socket of open.keys()) socket.destroy()
    },
    census: () => {
      const resources = new Map<string, number>()
      let bytesRead = 0
      let bytesWritten = 0
      for (const [socket, resource] of open) {
        bytesRead += socket.bytesRead
        bytesWritten += socket.bytesWritten
        if (resource !== "") resources.set(resource, (resources.get(resource) ?? 0) + 1)
      }
      return { resources, bytesRead, bytesWritten }
    },
    fastConnections: () => fastConnections
  }
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      server.close()
      running.destroyAll()
    })
  )
  return running
})
