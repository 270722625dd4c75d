// The server connections of one (backend address, database, user): PgBouncer's pool. At most `size` open (those still
// logging in count), at least `minIdle` open once a login has worked (PgBouncer's min_pool_size), idle ones closed
// after `idleTimeout` and, however useful, after `lifetime`; clients that find none free wait in one FIFO queue, at
// most `maxWaiting` of them, each at most `maxWait` (failed by `sweep`, which the BackendPool service runs about once
// a second). The backend's circuit breaker is asked before every dial. Plain objects and callbacks: no Effect, Promise
// or closure per acquire that gets a connection at once.
//
// Who listens to a server connection's socket (its `close` and `error` listeners stay for its whole life, see
// serverConn.ts, so the pool counts a connection that dies whoever holds it):
// - idle in the pool: the pool reads it (`listenIdle`): bytes from an idle server can only be a FATAL (an admin's
//   pg_terminate_backend, a shutdown) or a broken server, so the connection is closed; a FIN closes it too.
// - granted (`waiter.granted(conn)`): the socket has no `data` listener and is paused (unless it reads shared,
//   sharedReads.ts: then nothing reads it before the session, told in the same tick, adds its own); the session
//   resumes it, reads and writes it directly, and keeps `conn.status` current at each ReadyForQuery.
// - given back: the session removes its `data` listener first, then calls `release` (status "I") or `discard`
//   (anything else, or the client gone mid-transaction); the pool takes the socket back. A connection whose socket
//   closed while held needs neither: the pool already dropped it.

import { decodeErrorResponse } from "../../../codec/pg/index.ts"
import type { VettedEndpoint } from "../../../domain/Endpoint.ts"
import { breakerKey } from "../../../domain/Endpoint.ts"
import { type ProxyError, proxyError } from "../../../domain/ProxyError.ts"
import type { BreakerHooks, PoolCounts, PooledBackend } from "../../../services/BackendPool.ts"
import type { LogShape } from "../../../services/Log.ts"
import { backendName } from "../../dial.ts"
import { describePool, type PoolCensus, PoolTally } from "./poolMetrics.ts"
import { ServerConn, type ServerConnOptions, type ServerConnOwner, type ServerLogin } from "./serverConn.ts"
import type { PoolSettings } from "./settings.ts"

/** A client waiting for a server connection: told once, unless it cancels first. */
export interface PoolWaiter {
  /** May come before `acquire` returns. The connection is the waiter's until it gives it back. */
  granted(conn: ServerConn): void
  failed(error: ProxyError): void
}

/**
 * Why a waiter got no server connection from the pool itself (the ProxyError's `cause`), with the SQLSTATE and hint a
 * PostgreSQL client should read: 53300 when too many are already waiting, 57P03 when the wait passed `maxWait`.
 */
export class PoolRefusal {
  readonly kind: "queue-full" | "wait-timeout"
  readonly sqlstate: string
  readonly hint: string
  constructor(kind: "queue-full" | "wait-timeout", sqlstate: string, hint: string) {
    this.kind = kind
    this.sqlstate = sqlstate
    this.hint = hint
  }
}

export interface PgPoolDeps {
  /** The group's breaker (BackendPool `group.breaker`); undefined: dial always. */
  readonly breaker: BreakerHooks | undefined
  readonly conn: ServerConnOptions
  readonly log: LogShape | undefined
}

interface Queued {
  readonly waiter: PoolWaiter
  readonly at: number
  live: boolean
}

const noop = () => {}

export class PgPool implements PooledBackend, ServerConnOwner {
  readonly target: VettedEndpoint
  /** Shared by its connections; `useCredentials` keeps the role's newest keys (or md5 secret) in it. */
  readonly login: ServerLogin
  /** The route's `pool` block as last seen (a resolver may change it; the next decisions follow). */
  settings: PoolSettings
  /** The backend's breaker key, "ip:port". */
  readonly key: string
  readonly where: string
  /** What /metrics and /admin/pools read of its work (poolMetrics.ts). */
  readonly tally = new PoolTally()
  private readonly deps: PgPoolDeps
  /** Most recently used last: handed out from the end, idle-timed-out from the start. */
  private readonly idle: Array<ServerConn> = []
  private queue: Array<Queued> = []
  private head = 0
  /** Waiters still waiting (the queue also holds cancelled and served ones until they reach its head). */
  private live = 0
  /** Connections open or opening, and those opening. */
  private open = 0
  private opening = 0
  private loggedIn = false
  private retiring = false

  constructor(target: VettedEndpoint, login: ServerLogin, settings: PoolSettings, deps: PgPoolDeps) {
    this.target = target
    this.login = { user: login.user, database: login.database, params: login.params }
    this.useCredentials(login)
    this.settings = settings
    this.deps = deps
    this.key = breakerKey(target)
    this.where = backendName(target)
  }

  /** A client of the role authenticated: its SCRAM keys (or the md5 secret) open the next server connections. */
  useCredentials(from: { readonly keys?: ServerLogin["keys"]; readonly secret?: string | undefined }): void {
    if (from.keys !== undefined) this.login.keys = from.keys
    if (from.secret !== undefined) this.login.secret = from.secret
  }

  /**
   * Gets `waiter` a server connection: an idle one now, else a place in the queue (and a new connection while under
   * `size`). Returns the cancel of that place (a client gone while it waits).
   */
  acquire(waiter: PoolWaiter): () => void {
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
    const entry: Queued = { waiter, at: performance.now(), live: true }
    this.queue.push(entry)
    this.live++
    this.fill()
    return () => this.cancel(entry)
  }

  /** Back from a session: idle again (or straight to the next waiter) if its last ReadyForQuery said idle. */
  release(conn: ServerConn): void {
    if (conn.dropped || conn.idle) return
    if (conn.status !== "I" || conn.socket.destroyed) {
      this.drop(conn, false)
      return
    }
    if (this.expired(conn, performance.now())) {
      this.drop(conn, true)
      return
    }
    const s = this.settings
    if (s.mode === "session" && s.resetQuery !== "") conn.reset(s.resetQuery, this.afterReset)
    else this.handOff(conn)
  }

  /** The client went away holding it, or it is in an unknown state: closed, never reused. */
  discard(conn: ServerConn): void {
    this.drop(conn, false)
  }

  private readonly afterReset = (conn: ServerConn, ok: boolean): void => {
    if (conn.dropped) return
    if (ok) this.handOff(conn)
    else this.drop(conn, false)
  }

  /** `since`: when the waiter queued (performance.now()); undefined: served at once. */
  private grant(conn: ServerConn, waiter: PoolWaiter, since: number | undefined): void {
    this.tally.granted(since === undefined ? 0 : performance.now() - since)
    conn.idle = false
    conn.unlistenIdle()
    waiter.granted(conn)
  }

  /** A connection free to serve: the first waiter's, else idle. */
  private handOff(conn: ServerConn): void {
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
  private next(): Queued | undefined {
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

  private cancel(entry: Queued): void {
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

  private expired(conn: ServerConn, now: number): boolean {
    // lifetime 0: PgBouncer's "used once, then closed".
    const lifetime = this.settings.lifetime
    return lifetime === 0 || now - conn.createdAt > lifetime * 1000
  }

  /** Stops counting `conn` and closes it (Terminate first when `graceful`); a waiter may now get a new one. */
  private drop(conn: ServerConn, graceful: boolean): void {
    if (conn.dropped) return
    conn.dropped = true
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
    const size = this.settings.size
    while (this.live > this.opening && this.open < size) {
      const refused = this.dial()
      if (refused !== undefined) this.next()?.waiter.failed(refused)
    }
    // PgBouncer's min_pool_size: once a login has worked (the role's keys are known), at least `minIdle` stay open.
    if (!keepMin || !this.loggedIn || this.retiring) return
    const min = Math.min(this.settings.minIdle, size)
    while (this.open < min) if (this.dial() !== undefined) return
  }

  /** Opens one connection, unless the backend's breaker is open (the refusal then). */
  private dial(): ProxyError | undefined {
    const breaker = this.deps.breaker
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
    new ServerConn(this, this.target, this.login, this.deps.conn)
    return undefined
  }

  reached(): void {
    this.deps.breaker?.success(this.key)
  }

  opened(conn: ServerConn): void {
    this.opening--
    this.loggedIn = true
    this.handOff(conn)
    this.fill()
  }

  openFailed(conn: ServerConn, error: ProxyError, dialFailed: boolean): void {
    conn.dropped = true
    this.opening--
    this.open--
    this.tally.openFailures++
    if (dialFailed) this.deps.breaker?.failure(this.key, error.message)
    this.deps.log?.warn("pg server login failed", this.fields({ reason: error.reason, error: error.message }))
    // The waiter this connection was opened for (the first one no other opening connection will serve) hears why.
    if (this.live > this.opening) this.next()?.waiter.failed(error)
    this.fill(false)
  }

  closed(conn: ServerConn): void {
    if (conn.dropped) return
    if (conn.idle) this.deps.log?.info("pg server connection closed while idle", this.fields({ error: conn.error }))
    this.drop(conn, false)
  }

  spoke(conn: ServerConn, chunk: Buffer): void {
    const e = decodeErrorResponse(chunk)
    const said = e._tag === "Frame" ? `${e.value.fields.get("C")} ${e.value.fields.get("M")}` : "unexpected bytes"
    this.deps.log?.info("pg server connection closed while idle", this.fields({ server: said }))
    this.drop(conn, false)
  }

  private fields(extra: Readonly<Record<string, unknown>>): Readonly<Record<string, unknown>> {
    return { backend: this.where, database: this.login.database, user: this.login.user, ...extra }
  }

  private queueFull(): ProxyError {
    const n = this.settings.maxWaiting
    return proxyError(
      "UNAVAILABLE",
      "policy",
      `pool of ${this.login.database}/${this.login.user} at ${this.where}: ${n} clients already waiting`,
      {
        clientMessage: "sorry, too many clients already",
        cause: new PoolRefusal("queue-full", "53300", `${n} clients are already waiting for a server connection.`)
      }
    )
  }

  private waitedTooLong(): ProxyError {
    const s = this.settings
    return proxyError(
      "UNAVAILABLE",
      "policy",
      `pool of ${this.login.database}/${this.login.user} at ${this.where}: no server connection free within ${s.maxWait} s`,
      {
        clientMessage: `query_wait_timeout: no server connection was free within ${s.maxWait} s`,
        cause: new PoolRefusal(
          "wait-timeout",
          "57P03",
          `All ${s.size} server connections of this pool stayed busy; retry later.`
        )
      }
    )
  }

  counts(): PoolCounts {
    return { open: this.open, idle: this.idle.length, waiting: this.live }
  }

  census(): PoolCensus {
    let oldestWait: number | undefined
    for (let i = this.head; i < this.queue.length && oldestWait === undefined; i++) {
      if (this.queue[i]!.live) oldestWait = this.queue[i]!.at
    }
    return { open: this.open, opening: this.opening, idle: this.idle.length, waiting: this.live, oldestWait }
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
