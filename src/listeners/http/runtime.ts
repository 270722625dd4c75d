// What every client connection of one HTTP listener shares: settings, routes, backend pools, the open-connection set
// (for limits and drain), and one place where refusals are counted and logged.
import type * as http2 from "node:http2"
import type * as net from "node:net"
import type { ConnectionInfo } from "../../domain/Route.ts"
import type { LogShape } from "../../services/Log.ts"
import type { ListenerMetrics } from "../../services/Metrics.ts"
import type { Admission } from "../Admission.ts"
import { logRefusal, newRef } from "../refusal.ts"
import type { Failure } from "./failure.ts"
import { H2Sessions } from "./h2upstream.ts"
import type { Routes } from "./routes.ts"
import type { HttpSettings } from "./settings.ts"
import type { Pools } from "./upstream.ts"

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
}
