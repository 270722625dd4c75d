// The HTTP/1.1 keep-alive pools: one OriginPool per vetted backend address (and TLS settings) of one HTTP listener,
// and the listener's Pools, which finds them through the BackendPool service.
//
// Why not undici or node:http's Agent: behind the same node:http server, a raw pooled socket that writes one head
// string and relays body bytes as they come used 0.022-0.025 CPU s per 1k requests, undici's Pool.dispatch
// 0.029-0.040 and http.Agent 0.048 (bench/http/clients.ts, bench/results/http.md). It also keeps chunked bodies
// byte-for-byte (no decode and re-encode), and the framing decisions in one codec we test for smuggling.
import * as net from "node:net"
import * as Effect from "effect/Effect"
import { breakerKey, type VettedEndpoint } from "../../domain/Endpoint.ts"
import type { Route } from "../../domain/Route.ts"
import {
  type BreakerHooks,
  backendPoolOrOwn,
  type PoolCounts,
  type PooledBackend,
  type PoolGroup
} from "../../services/BackendPool.ts"
import { backendName, type DialProfile } from "../dial.ts"
import { type ClientTlsOptions, upstreamTlsFor } from "../tls.ts"
import { clientConnectOptions } from "../tlsProfile.ts"
import type { Exchange } from "./exchange.ts"
import { type Failure, failure } from "./failure.ts"
import type { HttpSettings } from "./settings.ts"
import { UpstreamConn } from "./upstreamConn.ts"
import { IDLE, upstreamProfile } from "./upstreamSocket.ts"

export type { BreakerHooks }

/** Whether pooled connections to a backend are plain or TLS (and with which checks). */
export type PoolTls = (ClientTlsOptions & { readonly servername: string | undefined }) | undefined

/** The keep-alive connections to one backend address. */
export class OriginPool implements PooledBackend {
  readonly settings: HttpSettings
  readonly target: VettedEndpoint
  readonly tls: PoolTls
  /** The backend as the log names it ("host:port (ip)"). */
  readonly where: string
  /** Its circuit breaker's key ("ip:port"): the one every listener reaching this address shares. */
  readonly key: string
  readonly dialProfile: DialProfile
  readonly idle: Array<UpstreamConn> = []
  readonly waiting: Array<Exchange> = []
  /** Connections open or opening. */
  count = 0
  lastUsed = 0
  private readonly breaker: BreakerHooks | undefined

  constructor(settings: HttpSettings, target: VettedEndpoint, tlsOptions: PoolTls, breaker: BreakerHooks | undefined) {
    this.settings = settings
    this.target = target
    this.tls = tlsOptions
    this.where = backendName(target)
    this.key = breakerKey(target)
    this.dialProfile = upstreamProfile(
      tlsOptions === undefined ? undefined : { ...clientConnectOptions(tlsOptions), ALPNProtocols: ["http/1.1"] }
    )
    this.breaker = breaker
  }

  /** Gets `ex` a connection: an idle one, a new one, or a place in the queue. `fresh`: skip idle ones (a retry). */
  acquire(ex: Exchange, fresh = false): void {
    this.lastUsed = performance.now()
    if (!fresh) {
      const idle = this.idle
      while (idle.length > 0) {
        const c = idle.pop()!
        if (c.socket.destroyed) continue
        c.assign(ex)
        return
      }
    }
    const max = this.settings.upstreamMaxConnections
    if (max === 0 || this.count < max) {
      this.dial(ex)
      return
    }
    ex.queuedAt = this.lastUsed
    this.waiting.push(ex)
  }

  /** Why a new connection may not be dialled now (the backend's breaker is open), or undefined. */
  refusal(): Failure | undefined {
    if (this.breaker === undefined) return undefined
    const gate = this.breaker.admit(this.key)
    if (gate.ok) return undefined
    return failure(503, "UNAVAILABLE", "backend", `backend ${this.where} is failing; the circuit breaker is open`, {
      retryAfter: gate.retryAfter
    })
  }

  private dial(ex: Exchange): void {
    const refused = this.refusal()
    if (refused !== undefined) {
      ex.client.failed(ex, refused)
      return
    }
    this.count++
    new UpstreamConn(this, ex)
  }

  release(c: UpstreamConn): void {
    c.phase = IDLE
    while (this.waiting.length > 0) {
      const ex = this.waiting.shift()!
      if (!ex.aborted) {
        c.assign(ex)
        return
      }
    }
    c.idleSince = performance.now()
    this.idle.push(c)
  }

  /** A connection closed (or became a tunnel): it no longer counts, and a waiting exchange may dial. */
  dropped(c: UpstreamConn): void {
    this.count--
    const at = this.idle.indexOf(c)
    if (at >= 0) this.idle.splice(at, 1)
    while (this.waiting.length > 0) {
      const ex = this.waiting.shift()!
      if (!ex.aborted) {
        this.dial(ex)
        return
      }
    }
  }

  detach(c: UpstreamConn): void {
    this.dropped(c)
  }

  breakerSuccess(): void {
    this.breaker?.success(this.key)
  }

  breakerFailure(message: string): void {
    this.breaker?.failure(this.key, message)
  }

  counts(): PoolCounts {
    return { open: this.count, idle: this.idle.length, waiting: this.waiting.length }
  }

  /** Closes connections idle too long and fails exchanges queued longer than a connect may take. */
  sweep(now: number): void {
    const idle = this.idle
    const keepAlive = this.settings.upstreamKeepAliveMs
    // Oldest first: the pool hands out the most recently used connection, so the stale ones sink to the bottom.
    while (idle.length > 0 && now - idle[0]!.idleSince > keepAlive) idle.shift()!.socket.destroy()
    const waiting = this.waiting
    const limit = this.settings.connectMs
    while (waiting.length > 0 && limit > 0 && now - waiting[0]!.queuedAt > limit) {
      const ex = waiting.shift()!
      if (ex.aborted) continue
      ex.client.failed(
        ex,
        failure(
          503,
          "UNAVAILABLE",
          "backend",
          `all ${this.settings.upstreamMaxConnections} connections to ${this.where} stayed busy`,
          {
            retryAfter: 1
          }
        )
      )
    }
  }

  closeIdle(): void {
    for (const c of this.idle.splice(0)) c.socket.destroy()
  }
}

/** Every backend pool of one HTTP listener: its group of the BackendPool service, swept by the service's timer. */
export class Pools {
  private readonly settings: HttpSettings
  private readonly group: PoolGroup<OriginPool>
  private readonly onClose: (() => void) | undefined

  /** `onClose`: also run at `close` (a private BackendPool the listener made for itself). */
  constructor(settings: HttpSettings, group: PoolGroup<OriginPool>, onClose?: () => void) {
    this.settings = settings
    this.group = group
    this.onClose = onClose
  }

  /** The pool for `target`, plain or TLS per the route's `metadata.tls` and the listener's `upstreamTls`. */
  get(target: VettedEndpoint, route: Route | undefined): OriginPool {
    const t = route === undefined ? this.settings.upstreamTls : upstreamTlsFor(route, this.settings.upstreamTls)
    const servername = t === undefined ? undefined : (t.servername ?? (net.isIP(target.host) ? undefined : target.host))
    const variant =
      t === undefined
        ? ""
        : `tls|${servername ?? ""}|${t.rejectUnauthorized ? 1 : 0}|${t.minVersion ?? ""}|${String(t.ca ?? "")}`
    return this.group.get(
      target,
      variant,
      () =>
        new OriginPool(this.settings, target, t === undefined ? undefined : { ...t, servername }, this.group.breaker)
    )
  }

  close(): void {
    this.group.close()
    this.onClose?.()
  }
}

/**
 * The pools of the HTTP listener with `settings`: its group of the BackendPool service (and so the CircuitBreaker the
 * service consults); an embedder whose layers leave the service out gets a private one, closed with the pools.
 */
export const listenerPools = (settings: HttpSettings): Effect.Effect<Pools> =>
  Effect.map(
    backendPoolOrOwn,
    ({ pool, owned }) => new Pools(settings, pool.group<OriginPool>(settings.name), owned ? pool.closeAll : undefined)
  )
