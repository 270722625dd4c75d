// One connection from the proxy to a database server, opened for a pool, whatever the protocol (PostgreSQL's
// serverConn.ts, MySQL's): dialled through the one dialer (the vetted IP, a source address, keep-alive, the connect
// deadline), TLS over it when the protocol asks for it, the login within the login deadline, then idle in its pool or
// held by a session; a reset before a reuse, within the same deadline. Its one `close` and `error` listener here stays
// for the socket's life, so the pool counts a server connection that dies whoever holds it. What is the protocol's:
// what it reads and writes during the login and the reset (`read`), and when it is logged in (`toReady`).
// The socket's listeners are shared functions that find the connection through one field (no closure per connection).
import type * as net from "node:net"
import * as tls from "node:tls"
import type { VettedEndpoint } from "../../domain/Endpoint.ts"
import { type ProxyError, proxyError } from "../../domain/ProxyError.ts"
import { backendName, cancelDial, type DialProfile, type DialWaiter, dialProfile, dialWith } from "../dial.ts"
import type { ServerConnOptions } from "./serverOptions.ts"
import type { PooledConn } from "./serverPool.ts"

/** What a server connection tells its pool, once each at most (`closed` only after `opened`). */
export interface ServerConnOwner<C> {
  /** The TCP connection is up: the backend's breaker hears a success. */
  reached(conn: C): void
  /** Logged in: the socket is paused, with no `data` listener. */
  opened(conn: C): void
  /** Never opened. `dialFailed`: the TCP connect failed or timed out (the breaker's failure); else the login did. */
  openFailed(conn: C, error: ProxyError, dialFailed: boolean): void
  /** Opened, then its socket closed: the server went away, or the holder destroyed it. */
  closed(conn: C): void
  /** Bytes from the server while idle (`listenIdle`): an error before it hangs up, or a broken server. */
  spoke(conn: C, chunk: Buffer): void
}

/** What sets one protocol's connections apart here: made once per protocol. */
export interface ConnKind {
  /** What the protocol's clients say when the server hangs up mid-login (names nothing internal). */
  readonly hungUp: string
  /** The protocol's goodbye (Terminate, COM_QUIT), sent before an idle connection closes. Never written into. */
  readonly goodbye: Buffer
}

// Plain TCP, nothing relayed: a FIN from the server ends the connection; TCP keep-alive finds one that vanished.
const profile: DialProfile = dialProfile({ allowHalfOpen: false, keepAlive: true })

/** Phases every protocol has; 1 is the protocol's own (its answer to a TLS request, its greeting). */
export const DIALING = 0
export const TLS = 2
export const LOGIN = 3
export const READY = 4
export const RESET = 5
export const CLOSED = 6

const empty = Buffer.alloc(0)

/** What the shared socket listeners call: the connection, whatever its protocol. */
interface Listened {
  error: Error | undefined
  read(chunk: Buffer): void
  socketClosed(): void
  idleData(chunk: Buffer): void
  secureConnected(): void
  deadline(): void
}

type ServerSocket = net.Socket & { _srv?: Listened | undefined }

function onLoginData(this: ServerSocket, chunk: Buffer) {
  this._srv?.read(chunk)
}
function onServerError(this: ServerSocket, err: Error) {
  const c = this._srv
  if (c !== undefined) c.error ??= err
}
function onServerClose(this: ServerSocket) {
  this._srv?.socketClosed()
}
function onIdleData(this: ServerSocket, chunk: Buffer) {
  this._srv?.idleData(chunk)
}
function onSecureConnect(this: ServerSocket) {
  this._srv?.secureConnected()
}
function onDeadline(conn: Listened) {
  conn.deadline()
}

/** `C`: the protocol's connection class itself, as its pool knows it. */
export abstract class PooledServerConn<C> implements DialWaiter, PooledConn {
  readonly target: VettedEndpoint
  /** The socket to the server (the TLS one once TLS is up). */
  socket: ServerSocket
  /** performance.now() at the dial, for the pool's lifetime. */
  readonly createdAt: number
  /** performance.now() when it last went idle (the pool's). */
  idleSince = 0
  /** Set by the pool: idle in it (and listened to by it), or handed out. */
  idle = false
  /** Set by the pool once it stopped counting this connection. */
  dropped = false
  /** The pool's: claims that keep it from the next client, and whether it waits for them, given back. */
  holds = 0
  parked = false
  /** The socket's first error, for the log line of its close. */
  error: Error | undefined = undefined
  /**
   * Reads into a shared buffer once ready (sharedReads.ts): pause() then stops the socket's reads at
   * once, so the hand-over between holders, all in one tick, leaves it reading instead.
   */
  sharedReads = false
  readonly owner: ServerConnOwner<C>
  protected readonly options: ServerConnOptions
  protected phase = DIALING
  /** Bytes read and not yet whole (a packet, a message). */
  protected buf: Buffer = empty
  private readonly kind: ConnKind
  /** Under TLS: the TCP socket below it. */
  private raw: ServerSocket | undefined = undefined
  private timer: NodeJS.Timeout | undefined = undefined
  private resetDone: ((conn: C, ok: boolean) => void) | undefined = undefined

  /** Starts dialing at once; the owner hears how it went (never before this returns). */
  constructor(owner: ServerConnOwner<C>, target: VettedEndpoint, options: ServerConnOptions, kind: ConnKind) {
    this.owner = owner
    this.target = target
    this.options = options
    this.kind = kind
    this.createdAt = performance.now()
    this.socket = dialWith(this, options.connectTimeoutMs, profile)
  }

  private get self(): C {
    return this as unknown as C
  }

  /** The backend as the log names it. */
  get where(): string {
    return backendName(this.target)
  }

  /** Bytes from the server while logging in or resetting (the protocol reads them). */
  abstract read(chunk: Buffer): void
  /** The TCP connection is up, the login deadline running, its bytes going to `read`: the protocol speaks first. */
  protected abstract connected(socket: net.Socket): void
  /** The TLS handshake with the server is done (its certificate checked per the options). */
  protected abstract secured(): void

  dialed(socket: net.Socket | undefined, error: ProxyError | undefined): void {
    if (socket === undefined) {
      this.phase = CLOSED
      this.owner.openFailed(this.self, error!, true)
      return
    }
    this.owner.reached(this.self)
    if (this.phase === CLOSED) return // the owner gave up on it meanwhile
    const s: ServerSocket = socket
    s._srv = this
    s.on("error", onServerError)
    s.on("close", onServerClose)
    this.timer = setTimeout(onDeadline, this.options.loginTimeoutMs, this)
    s.on("data", onLoginData)
    this.connected(s)
  }

  /** TLS over the TCP connection (the protocol asked the server for it and it agreed): `secured` once it is up. */
  protected startTls(): void {
    const raw = this.socket
    raw.off("data", onLoginData)
    this.phase = TLS
    this.raw = raw
    const secure: ServerSocket = tls.connect({ ...this.options.tls, socket: raw })
    secure._srv = this
    secure.on("error", onServerError)
    secure.on("close", onServerClose)
    secure.once("secureConnect", onSecureConnect)
    this.socket = secure
  }

  secureConnected(): void {
    if (this.phase !== TLS) return
    this.socket.on("data", onLoginData)
    this.secured()
  }

  /**
   * The login (then the protocol tells the owner) or a reset is over: the deadline stops, the socket is paused with no
   * `data` listener.
   */
  protected toReady(): void {
    clearTimeout(this.timer)
    this.timer = undefined
    this.phase = READY
    this.buf = empty
    const s = this.socket
    s.off("data", onLoginData)
    s.pause()
  }

  /** The login (or reset) deadline passed. */
  deadline(): void {
    this.timer = undefined
    const ms = this.options.loginTimeoutMs
    this.fail(
      proxyError("CONNECT_FAILED", "backend", `backend ${this.where} did not complete the login within ${ms} ms`, {
        clientMessage: "the server did not complete the login in time"
      })
    )
  }

  /** The login failed (or the reset did: then it only ends). */
  protected fail(error: ProxyError): void {
    if (this.phase === RESET) {
      this.resetFinished(false)
      return
    }
    if (this.phase >= READY) return
    clearTimeout(this.timer)
    this.timer = undefined
    this.phase = CLOSED
    this.buf = empty
    this.loginOver()
    this.destroy()
    this.owner.openFailed(this.self, error, false)
  }

  /** The login ended without success: the protocol drops what it kept for it. */
  protected loginOver(): void {}

  socketClosed(): void {
    if (this.phase < READY) {
      const hungUp = this.kind.hungUp
      this.fail(
        proxyError("CONNECT_FAILED", "backend", `backend ${this.where}: ${this.error?.message ?? hungUp}`, {
          clientMessage: hungUp
        })
      )
      return
    }
    if (this.phase === RESET) this.resetFinished(false)
    if (this.phase === CLOSED) return
    this.phase = CLOSED
    this.owner.closed(this.self)
  }

  /** Idle: the owner hears whatever the server sends (it reads the socket, so a FIN or an error is seen at once). */
  listenIdle(): void {
    const s = this.socket
    s.on("data", onIdleData)
    s.resume()
  }

  idleData(chunk: Buffer): void {
    this.owner.spoke(this.self, chunk)
  }

  /**
   * Handed out: no `data` listener, paused unless it reads shared (then the holder, told in the same tick, adds its
   * listener before any read); the holder resumes it.
   */
  unlistenIdle(): void {
    const s = this.socket
    if (!this.sharedReads) s.pause()
    s.off("data", onIdleData)
  }

  /**
   * Starts a reset: writes `bytes` and reads the answers (`read`, in phase RESET) until the protocol calls
   * `resetFinished`, within the login deadline. False (and `done` told at once) when the connection is not ready.
   */
  protected startReset(bytes: Buffer, done: (conn: C, ok: boolean) => void): boolean {
    if (this.phase !== READY) {
      done(this.self, false)
      return false
    }
    this.phase = RESET
    this.resetDone = done
    this.timer = setTimeout(onDeadline, this.options.loginTimeoutMs, this)
    const s = this.socket
    s.on("data", onLoginData)
    s.write(bytes)
    s.resume()
    return true
  }

  /** The reset is over (`ok`: fit to serve): the socket is paused again, and the reset's `done` hears it. */
  protected resetFinished(ok: boolean): void {
    const done = this.resetDone
    if (done === undefined) return
    this.resetDone = undefined
    this.toReady()
    done(this.self, ok)
  }

  /**
   * Closes it: `graceful` sends the protocol's goodbye first (an idle connection, so the server ends its session
   * cleanly); else the socket is destroyed (state unknown: mid-query, mid-transaction). The owner hears no `closed`.
   */
  close(graceful: boolean): void {
    const phase = this.phase
    clearTimeout(this.timer)
    this.timer = undefined
    this.phase = CLOSED
    this.resetDone = undefined
    const s = this.socket
    if (phase === DIALING) cancelDial(s)
    else if (graceful && phase === READY && s.writable) s.end(this.kind.goodbye, () => this.destroy())
    else this.destroy()
  }

  protected destroy(): void {
    this.socket.destroy()
    this.raw?.destroy()
  }
}
