// The server connections of one pool, whatever the protocol (PostgreSQL's pgPool.ts, MySQL's mysqlPool.ts): at most
// `size` open (those still logging in count; 0: no cap), at least `minIdle` open once a login has worked (PgBouncer's
// min_pool_size), idle ones closed after `idleTimeout` and, however useful, after `lifetime`; clients that find none
// free wait in one FIFO queue, at most `maxWaiting` of them, each at most `maxWait` (failed by `sweep`, which the
// BackendPool service runs about once a second). The backend's circuit breaker is asked before every dial. Plain
// objects and callbacks: no Effect, Promise or closure per acquire that gets a connection at once.
// Who listens to a server connection's socket (its `close` and `error` listeners stay for its whole life):
// - idle in the pool: the pool reads it (`listenIdle`): bytes from an idle server can only be an error (an admin's
//   kill, a shutdown) or a broken server, so the connection is closed (`spoke`); a FIN closes it too.
// - granted (`waiter.granted(conn)`): paused, no `data` listener (or reading shared: see the protocol's connection);
//   the session resumes it, reads and writes it directly, and keeps its status current.
// - given back: the session unhooks itself (pooledSession.ts), then calls `release` or `discard`. One that closed
//   while held needs neither. One given back while a cancel or KILL holds a claim on it (connHold.ts) is parked:
//   read as an idle one, handed to nobody until the last claim ends.
// What is the protocol's: how a connection opens (`connect`), what makes one fit to serve again (`release`), what an
// idle server said (`spoke`) and the words of a refusal (`queueFull`, `waitedTooLong`).
import type * as net from "node:net"
import type { VettedEndpoint } from "../../domain/Endpoint.ts"
import { breakerKey } from "../../domain/Endpoint.ts"
import { type ProxyError, proxyError } from "../../domain/ProxyError.ts"
import type { BreakerHooks, PoolCounts, PooledBackend } from "../../services/BackendPool.ts"
import type { LogShape } from "../../services/Log.ts"
import { backendName } from "../dial.ts"
import { describePool, type PoolCensus, PoolTally } from "./poolMetrics.ts"
import type { PoolSizing } from "./poolSettings.ts"

export type { PoolSizing }

/** What the pool needs of a server connection: its socket and the pool's own bookkeeping fields. */
export interface PooledConn {
  readonly socket: net.Socket
  /** performance.now() at the dial, for the pool's lifetime. */
  readonly createdAt: number
  /** performance.now() when it last went idle (the pool's). */
  idleSince: number
  /** Set by the pool: idle in it (and listened to by it), or handed out. */
  idle: boolean
  /** Set by the pool once it stopped counting this connection. */
  dropped: boolean
  /** Claims that keep it from the next client (cancel requests in flight to it): the pool's `hold` and `unhold`. */
  holds: number
  /** Set by the pool: given back while held, out of service (and listened to as idle) until the last claim ends. */
  parked: boolean
  /** The socket's first error, for the log line of its close. */
  readonly error: Error | undefined
  /** Idle: the pool hears whatever the server sends (`spoke`), a FIN or an error at once. */
  listenIdle(): void
  /** Handed out: no `data` listener; the holder resumes it. */
  unlistenIdle(): void
  /** `graceful`: the protocol's goodbye first (an idle connection); else destroyed. The pool hears no `closed`. */
  close(graceful: boolean): void
}

/** A client waiting for a server connection: told once, unless it cancels first. */
export interface Waiter<C> {
  /** May come before `acquire` returns. The connection is the waiter's until it gives it back. */
  granted(conn: C): void
  failed(error: ProxyError): void
}

export interface ServerPoolDeps {
  /** The group's breaker (BackendPool `group.breaker`); undefined: dial always. */
  readonly breaker: BreakerHooks | undefined
  readonly log: LogShape | undefined
}

interface Queued<C> {
  readonly waiter: Waiter<C>
  readonly at: number
  live: boolean
}

const noop = () => {}

export abstract class ServerPool<C extends PooledConn, S extends PoolSizing> implements PooledBackend {
  readonly target: VettedEndpoint
  /** The route's `pool` block as last seen (a resolver may change it; the next decisions follow). */
  settings: S
  /** The backend's breaker key, "ip:port". */
  readonly key: string
  readonly where: string
  /** What /metrics and /admin/pools read of its work (poolMetrics.ts). */
  readonly tally = new PoolTally()
  protected readonly log: LogShape | undefined
  private readonly breaker: BreakerHooks | undefined
  /** Most recently used last: handed out from the end, idle-timed-out from the start. */
  private readonly idle: Array<C> = []
  private queue: Array<Queued<C>> = []
  private head = 0
  /** Waiters still waiting (the queue also holds cancelled and served ones until they reach its head). */
  private live = 0
  /** Connections open or opening, and those opening. */
  private open = 0
  private opening = 0
  /** Connections given back while held (`park`): PgBouncer's being_canceled. */
  private parkedCount = 0
  private loggedIn = false
  private retiring = false

  /** The database and user its connections log in to and as (labels, log lines, /admin/pools). */
  abstract get database(): string
  abstract get user(): string
  /** "pg", "mysql": the start of its log lines. */
  protected abstract readonly protocol: string

  constructor(target: VettedEndpoint, settings: S, deps: ServerPoolDeps) {
    this.target = target
    this.settings = settings
    this.breaker = deps.breaker
    this.log = deps.log
    this.key = breakerKey(target)
    this.where = backendName(target)
  }

  /** Starts opening one connection; it tells the pool how it went (`reached`, `opened`, `openFailed`) later. */
  protected abstract connect(): void
  /** Back from a session: the protocol checks it, then `handOff` (fit to serve) or `drop`. */
  abstract release(conn: C): void
  /** Bytes from an idle server: say what it said, then `drop`. */
  abstract spoke(conn: C, chunk: Buffer): void
  /** Refusals, in the protocol's words: `maxWaiting` clients already wait; a client waited `maxWait`. */
  protected abstract queueFull(): ProxyError
  protected abstract waitedTooLong(): ProxyError

  /**
   * Gets `waiter` a server connection: an idle one now, else a place in the queue (and a new connection while under
   * `size`). Returns the cancel of that place (a client gone while it waits).
   */
  acquire(waiter: Waiter<C>): () => void {
    // FIFO: nobody overtakes a client already waiting (and while one waits, none is idle).
    while (this.live === 0 && this.idle.length > 0) {
      const conn = this.idle[this.idle.length - 1]!
      // Closed by the server an instant ago, its `close` event not yet emitted.
      if (conn.socket.destroyed) {
        this.drop(conn, false)
        continue
      }
      this.idle.pop()
      this.grant(conn, waiter, undefined)
      return noop
    }
    if (this.live >= this.settings.maxWaiting) {
      waiter.failed(this.queueFull())
      return noop
    }
    const entry: Queued<C> = { waiter, at: performance.now(), live: true }
    this.queue.push(entry)
    this.live++
    this.fill()
    return () => this.cancel(entry)
  }

  /** The client went away holding it, or it is in an unknown state: closed, never reused. */
  discard(conn: C): void {
    this.drop(conn, false)
  }

  /** `since`: when the waiter queued (performance.now()); undefined: served at once. */
  private grant(conn: C, waiter: Waiter<C>, since: number | undefined): void {
    this.tally.granted(since === undefined ? 0 : performance.now() - since)
    conn.idle = false
    conn.unlistenIdle()
    waiter.granted(conn)
  }

  /** A claim on `conn` (a cancel routed to it): given back meanwhile, it serves nobody until `unhold` (`park`). */
  hold(conn: C): void {
    conn.holds++
  }

  /** A claim ended: the last one puts a connection given back meanwhile back the usual way (`release`). */
  unhold(conn: C): void {
    if (--conn.holds > 0 || !conn.parked) return
    conn.parked = false
    this.parkedCount--
    conn.unlistenIdle()
    this.release(conn)
  }

  /** Given back while held: out of service until `unhold`, read as an idle one is (bytes, a FIN: dropped). */
  protected park(conn: C): void {
    conn.parked = true
    this.parkedCount++
    conn.listenIdle()
  }

  /** A connection free to serve: the first waiter's, else idle (unless a claim holds it). */
  protected handOff(conn: C): void {
    if (conn.holds > 0) {
      this.park(conn)
      return
    }
    const next = this.next()
    if (next !== undefined) {
      this.grant(conn, next.waiter, next.at)
      return
    }
    // The owner stopped: nothing is kept for later.
    if (this.retiring) {
      this.drop(conn, true)
      return
    }
    conn.idle = true
    conn.idleSince = performance.now()
    conn.listenIdle()
    this.idle.push(conn)
  }

  /** Takes the first waiter still waiting off the queue. */
  private next(): Queued<C> | undefined {
    const q = this.queue
    while (this.head < q.length) {
      const e = q[this.head++]!
      if (!e.live) continue
      e.live = false
      this.live--
      this.compact()
      return e
    }
    this.compact()
    return undefined
  }

  private cancel(entry: Queued<C>): void {
    if (!entry.live) return
    entry.live = false
    this.live--
    this.compact()
  }

  /** Drops served and cancelled entries once they outnumber the waiting ones. */
  private compact(): void {
    const q = this.queue
    if (this.head === q.length) {
      q.length = 0
      this.head = 0
    } else if (q.length - this.live > 64 + this.live) {
      this.queue = q.filter((e) => e.live)
      this.head = 0
    }
  }

  protected expired(conn: C, now: number): boolean {
    // lifetime 0: PgBouncer's "used once, then closed".
    const lifetime = this.settings.lifetime
    return lifetime === 0 || now - conn.createdAt > lifetime * 1000
  }

  /** Stops counting `conn` and closes it (the protocol's goodbye first when `graceful`); a waiter may get a new one. */
  protected drop(conn: C, graceful: boolean): void {
    if (conn.dropped) return
    conn.dropped = true
    if (conn.parked) this.parkedCount--
    conn.parked = false
    if (conn.idle) {
      conn.idle = false
      const at = this.idle.lastIndexOf(conn)
      if (at >= 0) this.idle.splice(at, 1)
    }
    this.open--
    conn.close(graceful)
    this.fill()
  }

  /**
   * Dials for the waiters no opening connection will serve, within `size`; then (`keepMin`) keeps `minIdle` open. After
   * a failed open only the waiters get a new dial: `minIdle` waits for the next sweep, so a backend that is down is
   * tried about once a second, not in a loop.
   */
  private fill(keepMin = true): void {
    const size = this.settings.size === 0 ? Number.POSITIVE_INFINITY : this.settings.size
    while (this.live > this.opening && this.open < size) {
      const refused = this.dial()
      if (refused !== undefined) this.next()?.waiter.failed(refused)
    }
    // PgBouncer's min_pool_size: once a login has worked, at least `minIdle` stay open.
    if (!keepMin || !this.loggedIn || this.retiring) return
    const min = Math.min(this.settings.minIdle, size)
    while (this.open < min) if (this.dial() !== undefined) return
  }

  /** Opens one connection, unless the backend's breaker is open (the refusal then). */
  private dial(): ProxyError | undefined {
    const breaker = this.breaker
    if (breaker !== undefined) {
      const gate = breaker.admit(this.key)
      if (!gate.ok) {
        return proxyError("UNAVAILABLE", "backend", `backend ${this.where} is failing; the circuit breaker is open`, {
          retryAfter: gate.retryAfter
        })
      }
    }
    this.open++
    this.opening++
    this.connect()
    return undefined
  }

  /** The TCP connection is up: the backend's breaker hears a success. */
  reached(): void {
    this.breaker?.success(this.key)
  }

  /** Logged in and ready. */
  opened(conn: C): void {
    this.opening--
    this.loggedIn = true
    this.handOff(conn)
    this.fill()
  }

  /** Never opened. `dialFailed`: the TCP connect failed or timed out (the breaker's failure); else the login did. */
  openFailed(conn: C, error: ProxyError, dialFailed: boolean): void {
    conn.dropped = true
    this.opening--
    this.open--
    this.tally.openFailures++
    if (dialFailed) this.breaker?.failure(this.key, error.message)
    this.log?.warn(`${this.protocol} server login failed`, this.fields({ reason: error.reason, error: error.message }))
    // The waiter this connection was opened for (the first one no other opening connection will serve) hears why.
    if (this.live > this.opening) this.next()?.waiter.failed(error)
    this.fill(false)
  }

  /** Opened, then its socket closed: the server went away, or the holder destroyed it. */
  closed(conn: C): void {
    if (conn.dropped) return
    if (conn.idle)
      this.log?.info(`${this.protocol} server connection closed while idle`, this.fields({ error: conn.error }))
    this.drop(conn, false)
  }

  /** An idle connection's server said `said` (spoke): logged, and the connection closed. */
  protected droppedIdle(conn: C, said: string): void {
    this.log?.info(`${this.protocol} server connection closed while idle`, this.fields({ server: said }))
    this.drop(conn, false)
  }

  protected fields(extra: Readonly<Record<string, unknown>>): Readonly<Record<string, unknown>> {
    return { backend: this.where, database: this.database, user: this.user, ...extra }
  }

  counts(): PoolCounts {
    return { open: this.open, idle: this.idle.length, waiting: this.live }
  }

  census(): PoolCensus {
    let oldestWait: number | undefined
    for (let i = this.head; i < this.queue.length && oldestWait === undefined; i++) {
      if (this.queue[i]!.live) oldestWait = this.queue[i]!.at
    }
    const { open, opening, parkedCount: cancelling } = this
    return { open, opening, idle: this.idle.length, cancelling, waiting: this.live, oldestWait }
  }

  describe(): Readonly<Record<string, unknown>> {
    return describePool(this, this.census())
  }

  sweep(now: number): void {
    const s = this.settings
    const idle = this.idle
    if (s.idleTimeout > 0) {
      const limit = s.idleTimeout * 1000
      // Oldest first: the pool hands out the most recently used, so the stale ones sink to the start.
      while (idle.length > 0 && this.open > s.minIdle && now - idle[0]!.idleSince > limit) this.drop(idle[0]!, true)
    }
    if (s.lifetime > 0) {
      for (const conn of idle.filter((c) => this.expired(c, now))) this.drop(conn, true)
    }
    if (s.maxWait > 0) {
      const limit = s.maxWait * 1000
      // Oldest first; `next` may compact the queue, and a waiter told may queue again: re-read it each time.
      for (let e = this.queue[this.head]; e !== undefined; e = this.queue[this.head]) {
        if (e.live && now - e.at <= limit) break
        if (e.live) this.next()!.waiter.failed(this.waitedTooLong())
        else this.head++
      }
      this.compact()
    }
    this.fill()
  }

  /** Its owner stops: idle connections close now, busy ones when given back (after serving whoever still waits). */
  closeIdle(): void {
    this.retiring = true
    for (const conn of this.idle.slice()) this.drop(conn, true)
  }
}
