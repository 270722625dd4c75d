// What every client connection of one HTTP listener shares: settings, routes, backend pools, the open-connection set
// (for limits and drain), one place where refusals are counted and logged, and the per-request admit (limits and
// metrics per resource) and cold start of a wakeable route.
import type * as http2 from "node:http2"
import type * as net from "node:net"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type { ConnectionInfo } from "../../domain/Route.ts"
import { asleep } from "../../pipeline/coldStart.ts"
import type { LogShape } from "../../services/Log.ts"
import type { ListenerMetrics } from "../../services/Metrics.ts"
import type { Admission } from "../Admission.ts"
import { logRefusal, newRef } from "../refusal.ts"
import { type Failure, fromCause, fromProxyError } from "./failure.ts"
import { H2Sessions } from "./h2upstream.ts"
import type { RouteEntry, Routes } from "./routes.ts"
import type { HttpSettings } from "./settings.ts"
import type { Exchange, Pools } from "./upstream.ts"

export interface Hooks {
  readonly connected: (resourceId: string, info: ConnectionInfo) => void
  readonly disconnected: (
    resourceId: string,
    endpoint: string,
    info: ConnectionInfo,
    bytesFromClient: number,
    bytesFromBackend: number,
    durationMs: number
  ) => void
}

/**
 * A request's hold on its resource, kept on the client's own object (HTTP/1.x connection, HTTP/2 stream): no
 * allocation per request.
 */
export interface ResourceHolder {
  /** The route of the request that holds its resource now, or null. */
  held: RouteEntry | null
  /** The holder's byte counts when its last hold ended: the next request's bytes are counted from there. */
  heldFromClient: number
  heldFromBackend: number
}

export class HttpRuntime {
  readonly settings: HttpSettings
  readonly log: LogShape
  readonly metrics: ListenerMetrics
  readonly routes: Routes
  readonly pools: Pools
  readonly hooks: Hooks | undefined
  readonly maxConnections: number
  readonly admission: Admission | undefined
  /** Client sockets (HTTP/1.x and the sockets under HTTP/2 sessions), for limits and drain. */
  readonly open = new Set<net.Socket>()
  /** Called once when the listener drains (HTTP/2 sessions send GOAWAY). */
  readonly onDrain = new Set<() => void>()
  draining = false
  /** Takes over sockets that speak HTTP/2 (h2c prior knowledge, or ALPN h2). */
  h2: http2.Http2Server | undefined = undefined
  /** Sessions to HTTP/2 backends (routes with metadata.protocol h2 / h2c). */
  readonly h2Sessions = new H2Sessions()
  private idleWaiters: Array<() => void> = []
  /** Exchanges of wakeable routes sent and not yet woken for, with their route (see `wakes`). */
  private readonly sleepers = new WeakMap<Exchange, RouteEntry>()

  constructor(
    settings: HttpSettings,
    log: LogShape,
    metrics: ListenerMetrics,
    routes: Routes,
    pools: Pools,
    hooks: Hooks | undefined,
    maxConnections: number,
    admission: Admission | undefined
  ) {
    this.settings = settings
    this.log = log
    this.metrics = metrics
    this.routes = routes
    this.pools = pools
    this.hooks = hooks
    this.maxConnections = maxConnections
    this.admission = admission
  }

  /** Admits a new client socket, or says why not (the caller answers 503; the words are the client's to read). */
  admit(socket: net.Socket): string | undefined {
    this.metrics.accepted()
    if (this.maxConnections > 0 && this.open.size >= this.maxConnections) {
      return `listener ${this.settings.name} is at its limit of ${this.maxConnections} connections`
    }
    const refused = this.admission?.enter()
    if (refused !== undefined) return refused.message
    this.open.add(socket)
    return undefined
  }

  /** A client socket closed. `admitted`: it had been let in (and counted against the limits). */
  forget(socket: net.Socket, bytesFromBackend: number): void {
    this.metrics.closed(socket.bytesRead, bytesFromBackend)
    if (!this.open.delete(socket)) return
    this.admission?.leave()
    if (this.open.size === 0 && this.idleWaiters.length > 0) {
      for (const w of this.idleWaiters) w()
      this.idleWaiters = []
    }
  }

  whenIdle(): Promise<void> {
    return this.open.size === 0 ? Promise.resolve() : new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  /** Idle HTTP/1.x connections close at once, busy ones after their answer; HTTP/2 sessions go away gracefully. */
  drain(): void {
    this.draining = true
    for (const socket of this.open) (socket as net.Socket & { _h1?: { draining(): void } })._h1?.draining()
    for (const f of this.onDrain) f()
  }

  /** Counts and logs a refusal; answer the client with what it returns (the same ref as the log line). */
  refused(f: Failure, client: string, method: string, target: string): Failure {
    this.metrics.refused(f.reason.toLowerCase())
    const sent = { ...f, ref: newRef() }
    logRefusal(this.log, "request refused", sent, {
      listener: this.settings.name,
      client,
      method,
      target,
      status: f.status
    })
    return sent
  }

  /**
   * admit, per request: a request routed to a resource holds one of its `limits.perResource` places and counts once
   * in its per-resource metrics until `release` (its answer ended, its tunnel closed or its client left), as nginx's
   * limit_conn counts HTTP requests in flight. Returns the refusal (503, Retry-After) at the limit; nothing is held.
   */
  hold(h: ResourceHolder, entry: RouteEntry): Failure | undefined {
    const refused = this.admission?.enterResource(entry.route.resourceId)
    if (refused !== undefined) return fromProxyError(refused, entry.route.resourceId)
    h.held = entry
    entry.metrics?.connected()
    return undefined
  }

  /** The holder's request ended (no-op when it holds nothing); `fromClient`/`fromBackend`: its byte counts so far. */
  release(h: ResourceHolder, fromClient: number, fromBackend: number): void {
    const entry = h.held
    if (entry === null) return
    h.held = null
    this.admission?.leaveResource(entry.route.resourceId)
    entry.metrics?.closed(fromClient - h.heldFromClient, fromBackend - h.heldFromBackend)
    h.heldFromClient = fromClient
    h.heldFromBackend = fromBackend
  }

  /** connect: `ex` to its backend's pool; a wakeable route's exchange is remembered for `wakes`. */
  send(entry: RouteEntry, ex: Exchange): void {
    if (entry.wakeable && this.routes.waking !== undefined) this.sleepers.set(ex, entry)
    entry.pool.acquire(ex)
  }

  /**
   * A wakeable route's exchange failed to connect (refused, or its breaker open): its backend sleeps. The request
   * waits while it wakes, once per cold period however many requests wait (as the byte listeners'
   * connections do), then goes to the pool again; the client hears only the outcome. True: handled here. Nothing
   * of the request had reached the backend (a connect failure comes before the head is written).
   */
  wakes(ex: Exchange, f: Failure): boolean {
    const entry = this.sleepers.get(ex)
    if (entry === undefined || !asleep(f)) return false
    // Once per request: a second failure is answered.
    this.sleepers.delete(ex)
    const resourceId = entry.route.resourceId
    Effect.runFork(this.routes.waking!.untilAccepting(resourceId, entry.target, this.settings.connectMs)).addObserver(
      (exit) => {
        if (ex.aborted) return
        if (Exit.isSuccess(exit)) entry.pool.acquire(ex)
        else ex.client.failed(ex, fromCause(exit.cause, resourceId, "waking the backend"))
      }
    )
    return true
  }
}
