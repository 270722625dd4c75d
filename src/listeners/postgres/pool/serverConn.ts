// One connection from the proxy to a PostgreSQL server, opened for a pool: dialled through the one dialer (the vetted
// IP, a source address, keep-alive, the connect deadline), TLS after an SSLRequest when the route asks for it, then
// the login (serverLogin.ts) until ReadyForQuery('I'), within the login deadline; its BackendKeyData and
// ParameterStatus values kept. Also the session-mode reset query, run before the connection serves another client.
// Once ready its socket belongs to the pool (idle) or a session (busy): see pgPool.ts for who listens when. Its one
// `close` and `error` listener here stays for the socket's life, so the pool counts a server connection that dies
// whoever holds it.
import type * as net from "node:net"
import * as tls from "node:tls"
import { decodeBackendMessage, decodeReadyForQuery, decodeSslResponse, SSL_REQUEST } from "../../../codec/pg/index.ts"
import type { VettedEndpoint } from "../../../domain/Endpoint.ts"
import { ProxyError, proxyError } from "../../../domain/ProxyError.ts"
import { backendName, cancelDial, type DialWaiter, dialProfile, dialWith } from "../../dial.ts"
import { type ClientTlsOptions, clientConnectOptions } from "../../tlsProfile.ts"
import { LoginExchange, type LoginStep, type ServerLogin } from "./serverLogin.ts"
import { encodeQuery, parameterStatus, serverFailure, TERMINATE } from "./serverMessages.ts"
import { readPooledShared } from "./sharedReads.ts"

export type { ServerLogin }

/** TLS towards the server after an SSLRequest, with the name to send and check (undefined: an IP literal). */
export type UpstreamTls = ClientTlsOptions & { readonly servername: string | undefined }

/** How a pool opens its connections: made once per pool. */
export interface ServerConnOptions {
  /** The TCP connect; 0: the kernel's. */
  readonly connectTimeoutMs: number
  /** From the TCP connect to ReadyForQuery: TLS, startup, login (and a session-mode reset query). */
  readonly loginTimeoutMs: number
  readonly tls: tls.ConnectionOptions | undefined
}

export const serverConnOptions = (o: {
  readonly connectTimeoutMs: number
  readonly loginTimeoutMs: number
  readonly tls: UpstreamTls | undefined
}): ServerConnOptions => ({
  connectTimeoutMs: o.connectTimeoutMs,
  loginTimeoutMs: o.loginTimeoutMs,
  tls: o.tls === undefined ? undefined : clientConnectOptions(o.tls)
})

/** What a ServerConn tells its pool, once each at most (`closed` only after `opened`). */
export interface ServerConnOwner {
  /** The TCP connection is up: the backend's breaker hears a success. */
  reached(conn: ServerConn): void
  /** Logged in, ReadyForQuery('I'): the socket is paused, with no `data` listener. */
  opened(conn: ServerConn): void
  /** Never opened. `dialFailed`: the TCP connect failed or timed out (the breaker's failure); else the login did. */
  openFailed(conn: ServerConn, error: ProxyError, dialFailed: boolean): void
  /** Opened, then its socket closed: the server went away, or the holder destroyed it. */
  closed(conn: ServerConn): void
  /** Bytes from the server while idle (`listenIdle`): a FATAL on shutdown or termination, or a broken server. */
  spoke(conn: ServerConn, chunk: Buffer): void
}

// Plain TCP, nothing relayed: a FIN from the server ends the connection; TCP keep-alive finds one that vanished.
const profile = dialProfile({ allowHalfOpen: false, keepAlive: true })

/** A login's messages are small (the largest is an ErrorResponse): anything bigger is not a server we know. */
const maxLoginMessage = 64 * 1024

const DIALING = 0
const SSL = 1
const TLS = 2
const LOGIN = 3
const READY = 4
const RESET = 5
const CLOSED = 6

const empty = Buffer.alloc(0)

/** libpq's words for a server gone mid-startup; they name nothing internal. */
const hungUp = "the server closed the connection unexpectedly"

type ServerSocket = net.Socket & { _srv?: ServerConn | undefined }

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
  const c = this._srv
  if (c !== undefined) c.owner.spoke(c, chunk)
}
function onSecureConnect(this: ServerSocket) {
  this._srv?.secured()
}
function onDeadline(conn: ServerConn) {
  conn.deadline()
}

/** One server connection: logging in, then idle in its pool or carrying a client's transactions. */
export class ServerConn implements DialWaiter {
  readonly target: VettedEndpoint
  /** The socket to the server (the TLS one once TLS is up). */
  socket: ServerSocket
  /** BackendKeyData: a CancelRequest for this connection's query names these. */
  processId = 0
  secretKey: Buffer = empty
  /** ParameterStatus values as the server reported them (at login, and from queries the proxy itself ran). */
  readonly parameters: Map<string, string>
  /** The last ReadyForQuery: the session holding it keeps this current; only an "I" connection goes back idle. */
  status: "I" | "T" | "E" = "I"
  /** performance.now() at the dial, for the pool's lifetime. */
  readonly createdAt: number
  /** performance.now() when it last went idle (the pool's). */
  idleSince = 0
  /** Set by the pool: idle in it (and listened to by it), or handed out. */
  idle = false
  /** Set by the pool once it stopped counting this connection. */
  dropped = false
  /**
   * The proxy's names of the statements prepared on it (statements.ts), least recently used first; undefined: none.
   */
  prepared: Set<string> | undefined = undefined
  /** The socket's first error, for the log line of its close. */
  error: Error | undefined = undefined
  /**
   * Reads into the shared buffer once ready (sharedReads.ts): pause() then stops the socket's reads at once, so the
   * hand-over between holders, all in one tick, leaves it reading instead (a stop and start would cost epoll changes).
   */
  sharedReads = false
  readonly owner: ServerConnOwner
  /** Until ReadyForQuery. */
  private exchange: LoginExchange | undefined
  /** Under TLS: the TCP socket below it. */
  private raw: ServerSocket | undefined = undefined
  private readonly options: ServerConnOptions
  private phase = DIALING
  private buf: Buffer = empty
  private timer: NodeJS.Timeout | undefined = undefined
  private resetDone: ((conn: ServerConn, ok: boolean) => void) | undefined = undefined
  private resetOk = true

  /** Starts dialing at once; the owner hears how it went (never before this returns). */
  constructor(owner: ServerConnOwner, target: VettedEndpoint, login: ServerLogin, options: ServerConnOptions) {
    this.owner = owner
    this.target = target
    this.exchange = new LoginExchange(login, target)
    this.parameters = this.exchange.parameters
    this.options = options
    this.createdAt = performance.now()
    this.socket = dialWith(this, options.connectTimeoutMs, profile)
  }

  /** The backend as the log names it. */
  get where(): string {
    return backendName(this.target)
  }

  dialed(socket: net.Socket | undefined, error: ProxyError | undefined): void {
    if (socket === undefined) {
      this.phase = CLOSED
      this.owner.openFailed(this, error!, true)
      return
    }
    this.owner.reached(this)
    if (this.phase === CLOSED) return // the owner gave up on it meanwhile
    const s: ServerSocket = socket
    s._srv = this
    s.on("error", onServerError)
    s.on("close", onServerClose)
    this.timer = setTimeout(onDeadline, this.options.loginTimeoutMs, this)
    s.on("data", onLoginData)
    if (this.options.tls === undefined) this.startup(s)
    else {
      this.phase = SSL
      s.write(SSL_REQUEST)
    }
  }

  /** Bytes from the server before ReadyForQuery, or while the proxy runs a reset query. */
  read(chunk: Buffer): void {
    if (this.phase === SSL) {
      this.sslAnswer(chunk)
      return
    }
    let buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk])
    while (this.phase === LOGIN || this.phase === RESET) {
      const d = decodeBackendMessage(buf, maxLoginMessage)
      if (d._tag === "Need") {
        this.buf = buf
        return
      }
      if (d._tag === "Invalid") {
        this.fail(serverFailure(this.target, `invalid message from the server: ${d.reason}`))
        return
      }
      buf = buf.subarray(d.size)
      if (this.phase === LOGIN) this.loginStep(this.exchange!.message(d.value.type, d.value.body, buf.length))
      else this.resetMessage(d.value.type, d.value.body, buf.length)
    }
  }

  private loginStep(step: LoginStep): void {
    if (step === undefined) return
    if (step === "ready") this.ready()
    else if (step instanceof ProxyError) this.fail(step)
    else this.socket.write(step)
  }

  private sslAnswer(chunk: Buffer): void {
    // After 'S' nothing may come before the TLS handshake (CVE-2021-23222): decodeSslResponse refuses extra bytes.
    const d = decodeSslResponse(chunk)
    if (d._tag !== "Frame") {
      this.fail(serverFailure(this.target, `TLS negotiation failed: ${d._tag === "Invalid" ? d.reason : "no answer"}`))
      return
    }
    if (d.value === "N") {
      this.fail(serverFailure(this.target, "the server does not accept TLS"))
      return
    }
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

  /** The TLS handshake with the server is done (its certificate checked per the options). */
  secured(): void {
    if (this.phase !== TLS) return
    this.socket.on("data", onLoginData)
    this.startup(this.socket)
  }

  private startup(s: net.Socket): void {
    this.phase = LOGIN
    s.write(this.exchange!.startup())
  }

  private ready(): void {
    clearTimeout(this.timer)
    this.timer = undefined
    this.phase = READY
    this.buf = empty
    const exchange = this.exchange!
    this.exchange = undefined
    this.processId = exchange.processId
    this.secretKey = exchange.secretKey
    this.status = "I"
    const s = this.socket
    s.off("data", onLoginData)
    s.pause()
    this.sharedReads = readPooledShared(s)
    this.owner.opened(this)
  }

  /** The login (or reset) deadline passed. */
  deadline(): void {
    this.timer = undefined
    if (this.phase === RESET) {
      this.resetFinished(false)
      return
    }
    const ms = this.options.loginTimeoutMs
    this.fail(
      proxyError("CONNECT_FAILED", "backend", `backend ${this.where} did not complete the login within ${ms} ms`, {
        clientMessage: "the server did not complete the login in time"
      })
    )
  }

  private fail(error: ProxyError): void {
    if (this.phase === RESET) {
      this.resetFinished(false)
      return
    }
    if (this.phase >= READY) return
    clearTimeout(this.timer)
    this.timer = undefined
    this.phase = CLOSED
    this.buf = empty
    this.exchange = undefined
    this.destroy()
    this.owner.openFailed(this, error, false)
  }

  socketClosed(): void {
    if (this.phase < READY) {
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
    this.owner.closed(this)
  }

  /** Idle: the owner hears whatever the server sends (it reads the socket, so a FIN or an error is seen at once). */
  listenIdle(): void {
    const s = this.socket
    s.on("data", onIdleData)
    s.resume()
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
   * Session mode, before the connection serves another client: runs `query` (DISCARD ALL) and tells `done` whether
   * it ended with ReadyForQuery('I') and no error, within the login deadline. The socket is paused again after.
   */
  reset(query: string, done: (conn: ServerConn, ok: boolean) => void): void {
    if (this.phase !== READY) {
      done(this, false)
      return
    }
    this.phase = RESET
    this.prepared = undefined // DISCARD ALL deallocates them
    this.resetOk = true
    this.resetDone = done
    this.timer = setTimeout(onDeadline, this.options.loginTimeoutMs, this)
    const s = this.socket
    s.on("data", onLoginData)
    s.write(encodeQuery(query))
    s.resume()
  }

  private resetMessage(type: string, body: Buffer, left: number): void {
    switch (type) {
      case "E":
        this.resetOk = false
        return
      case "S": {
        const p = parameterStatus(body)
        if (p !== undefined) this.parameters.set(p[0], p[1])
        return
      }
      case "Z": {
        const z = decodeReadyForQuery(body)
        this.status = z._tag === "Frame" ? z.value : "E"
        // Nothing may follow ReadyForQuery: bytes there would be read as the next client's.
        this.resetFinished(this.resetOk && this.status === "I" && left === 0)
        return
      }
      default: // CommandComplete, NoticeResponse, rows of a reset query that returns some
    }
  }

  private resetFinished(ok: boolean): void {
    const done = this.resetDone
    if (done === undefined) return
    clearTimeout(this.timer)
    this.timer = undefined
    this.resetDone = undefined
    this.buf = empty
    this.phase = READY
    const s = this.socket
    s.off("data", onLoginData)
    s.pause()
    done(this, ok)
  }

  /**
   * Closes it: `graceful` sends Terminate first (an idle connection, so the server ends its session cleanly); else
   * the socket is destroyed (state unknown: mid-query, mid-transaction). The owner hears no `closed` for it.
   */
  close(graceful: boolean): void {
    const phase = this.phase
    clearTimeout(this.timer)
    this.timer = undefined
    this.phase = CLOSED
    this.resetDone = undefined
    const s = this.socket
    if (phase === DIALING) cancelDial(s)
    else if (graceful && phase === READY && s.writable) s.end(TERMINATE, () => this.destroy())
    else this.destroy()
  }

  private destroy(): void {
    this.socket.destroy()
    this.raw?.destroy()
  }
}
