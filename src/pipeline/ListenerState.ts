// One byte listener's state, read by every phase of src/pipeline: its protocol, settings and services, and the
// connections it holds. One object per listener, passed to the phase functions: a connection costs no closure for
// them, whichever path it takes.

import type * as net from "node:net"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type { ListenerConfig } from "../config/Config.ts"
import { breakerKey, type VettedEndpoint } from "../domain/Endpoint.ts"
import { type ProxyError, proxyError } from "../domain/ProxyError.ts"
import type { ConnectionInfo, Route } from "../domain/Route.ts"
import type { Admission } from "../listeners/Admission.ts"
import type { Protocol, RelayWatch } from "../listeners/Protocol.ts"
import type { RelayOptions, RelayTotals } from "../relay/relay.ts"
import { CircuitBreaker } from "../services/CircuitBreaker.ts"
import { ColdStart } from "../services/ColdStart.ts"
import { Log } from "../services/Log.ts"
import { Metrics } from "../services/Metrics.ts"
import { Resolver } from "../services/Resolver.ts"
import { RoutingCache } from "../services/RoutingCache.ts"
import { SharedCache } from "../services/SharedCache.ts"
import { type ProxyProtocolIn, proxyProtocolIn } from "./accept.ts"
import type { Connection } from "./Connection.ts"
import { relayClosed } from "./close.ts"
import { makeWaking, type Waking } from "./coldStart.ts"

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

/** The services a byte listener runs with. */
export type ListenerServices = RoutingCache | Resolver | Metrics | Log | CircuitBreaker | ColdStart | SharedCache

/** What the close phase needs of one relayed connection (the relay hands it back when both sockets are gone). */
export interface RelayState {
  readonly accepted: net.Socket
  readonly route: Route
  readonly who: ConnectionInfo
  readonly started: number
  readonly watch: RelayWatch | undefined
}

export class ListenerState {
  readonly protocol: Protocol
  readonly config: ListenerConfig
  readonly timeouts: ListenerTimeouts
  readonly admission: Admission
  /** The listener's name (logs, metrics) and its protocol label, resolved once so no connection pays for it. */
  readonly name: string
  readonly label: string
  readonly cache: RoutingCache["Service"]
  readonly resolver: Resolver["Service"]
  readonly breaker: CircuitBreaker["Service"]
  readonly log: Log["Service"]
  readonly debug: boolean
  readonly allMetrics: Metrics["Service"]
  readonly metrics: ReturnType<Metrics["Service"]["listener"]>
  readonly waking: Waking
  readonly runFork: ReturnType<typeof Effect.runForkWith<ListenerServices>>
  readonly logConnections: boolean
  readonly logSample: number
  /** Accepted socket -> its resource once known (for the per-resource limit), "" before. */
  readonly open = new Map<net.Socket, string>()
  /** Connections between accept and relay start (identify, resolve, …, replay), whichever path carries them. */
  readonly handshaking = new Set<Connection>()
  idleWaiters: Array<() => void> = []
  readonly handshakeMs: number
  /** identify did not end within timeouts.handshake (the client's doing: a slow-loris, a client that never spoke). */
  readonly handshakeTimeout: ProxyError
  /** identify's deadline, built once for every connection (`Effect.timeoutOrElse`'s options). */
  readonly identifyDeadline: { readonly duration: number; readonly orElse: () => Effect.Effect<never, ProxyError> }
  /**
   * The deadline of identify's idle rest (`Identified.next`: a client logged in, not yet routed), timeouts.idle as
   * for a relayed client; undefined when timeouts.idle is 0. Past it the client is closed without a word, as a
   * relayed idle one is (and as MariaDB does at wait_timeout).
   */
  readonly nextDeadline:
    | { readonly duration: number; readonly orElse: () => Effect.Effect<never, ProxyError> }
    | undefined
  /** One options object for every relay of this listener. */
  readonly relayOptions: RelayOptions
  /** One close handler for every relay of this listener (close.ts); the facts of each ride on the relay. */
  readonly onRelayClosed: (totals: RelayTotals, state: RelayState) => void
  /** The PROXY protocol settings when the listener reads PROXY headers. */
  readonly pp: ProxyProtocolIn | undefined
  /** Nothing reads the backend but the relay (no replay, no watcher): it may read into the relay's shared buffer. */
  readonly relayOnly: boolean
  /** The fiber-free path's one resource: a protocol with nothing to read, replay or watch (fast.ts). */
  readonly fixedRoute: string | undefined
  /** identify in the callback form, for the fiber-free path (not after a PROXY header: that is read in the fiber). */
  readonly identifyNow: Protocol["identifyNow"]
  /**
   * Nothing reads the accepted socket before the relay (it is accepted paused) nor watches it: unless TLS replaced
   * it, it may read into the shared buffer too.
   */
  readonly clientRelayOnly: boolean
  sharedReadsUnavailable = false
  /** Connections that took the fiber-free path so far. */
  fastConnections = 0
  /**
   * The client's address costs a getpeername per connection. On the fiber-free path only the connection log, the
   * Resolver's hooks, a refusal and a PROXY header for the backend read it: without the first two it is read (from
   * the still open socket) only when one of the others happens, and the relay holds `unreadPeer`, which nothing reads.
   */
  readonly peerRead: boolean
  readonly unreadPeer: ConnectionInfo
  // The breaker's key of the last target seen: a fixed route dials the same one every time.
  private lastTarget: VettedEndpoint | undefined = undefined
  private lastKey = ""

  constructor(
    protocol: Protocol,
    config: ListenerConfig,
    timeouts: ListenerTimeouts,
    admission: Admission,
    logging: ListenerLogging,
    wakeLockSeconds: number,
    context: Context.Context<ListenerServices>
  ) {
    this.protocol = protocol
    this.config = config
    this.timeouts = timeouts
    this.admission = admission
    this.name = protocol.name
    this.label = config.protocol ?? protocol.name
    this.cache = Context.get(context, RoutingCache)
    this.resolver = Context.get(context, Resolver)
    this.breaker = Context.get(context, CircuitBreaker)
    this.log = Context.get(context, Log)
    this.debug = this.log.enabled("debug")
    this.allMetrics = Context.get(context, Metrics)
    this.metrics = this.allMetrics.listener(protocol.name, this.label)
    this.waking = makeWaking(
      this.cache,
      Context.get(context, ColdStart),
      Context.get(context, SharedCache),
      this.resolver,
      wakeLockSeconds,
      this.breaker
    )
    this.runFork = Effect.runForkWith(context)
    this.logConnections = logging.connections
    this.logSample = logging.sample
    this.handshakeMs = timeouts.handshake * 1000
    const handshakeTimeout = proxyError(
      "HANDSHAKE_TIMEOUT",
      "client",
      `client did not complete its handshake within ${timeouts.handshake}s`
    )
    this.handshakeTimeout = handshakeTimeout
    this.identifyDeadline = { duration: this.handshakeMs, orElse: () => Effect.fail(handshakeTimeout) }
    const idleTimeout = proxyError(
      "HANDSHAKE_TIMEOUT",
      "client",
      `client logged in but named no resource within ${timeouts.idle}s (timeouts.idle)`,
      { quiet: true }
    )
    this.nextDeadline =
      timeouts.idle > 0 ? { duration: timeouts.idle * 1000, orElse: () => Effect.fail(idleTimeout) } : undefined
    this.onRelayClosed = (totals, state) => relayClosed(this, totals, state)
    this.relayOptions = { idleTimeoutMs: timeouts.idle * 1000, halfCloseMs: (timeouts.halfClose ?? 60) * 1000 }
    this.pp = proxyProtocolIn(config, protocol.name)
    this.relayOnly = protocol.replay === undefined && protocol.relaying === undefined
    this.fixedRoute =
      protocol.fixedRoute !== undefined && !protocol.readsHandshake && !config.proxyProtocol && this.relayOnly
        ? protocol.fixedRoute
        : undefined
    this.identifyNow = config.proxyProtocol ? undefined : protocol.identifyNow
    this.clientRelayOnly = !protocol.readsHandshake && !config.proxyProtocol && protocol.relaying === undefined
    this.peerRead =
      logging.connections || this.resolver.onConnect !== undefined || this.resolver.onDisconnect !== undefined
    this.unreadPeer = { protocol: protocol.name, remoteAddress: "", remotePort: 0 }
  }

  /** The breaker's key of `target` (`breakerKey`), remembered for the next connection to the same one. */
  keyOf(target: VettedEndpoint): string {
    if (target !== this.lastTarget) {
      this.lastTarget = target
      this.lastKey = breakerKey(target)
    }
    return this.lastKey
  }

  clientInfo(socket: net.Socket): ConnectionInfo {
    return { protocol: this.name, remoteAddress: socket.remoteAddress ?? "", remotePort: socket.remotePort ?? 0 }
  }
}
