// One connection from the proxy to a PostgreSQL server, opened for a pool: dialled, TLS, the login deadline, idle and
// held, closed (src/listeners/pool/serverConnBase.ts, every protocol's). What is PostgreSQL's here: TLS after an
// SSLRequest when the route asks for it, then the login (serverLogin.ts) until ReadyForQuery('I'); its BackendKeyData
// and ParameterStatus values kept; the session-mode reset query, run before the connection serves another client;
// reads into the shared buffer once ready (src/listeners/pool/sharedReads.ts). Once ready its socket belongs to the pool (idle) or a
// session (busy): see src/listeners/pool/serverPool.ts for who listens when.
import type * as net from "node:net"
import { decodeBackendMessage, decodeReadyForQuery, decodeSslResponse, SSL_REQUEST } from "../../../codec/pg/index.ts"
import type { VettedEndpoint } from "../../../domain/Endpoint.ts"
import { ProxyError } from "../../../domain/ProxyError.ts"
import {
  type ConnKind,
  LOGIN,
  type ServerConnOwner as Owner,
  PooledServerConn,
  READY,
  RESET
} from "../../pool/serverConnBase.ts"
import type { ServerConnOptions } from "../../pool/serverOptions.ts"
import { readPooledShared } from "../../pool/sharedReads.ts"
import { LoginExchange, type LoginStep, type ServerLogin } from "./serverLogin.ts"
import { encodeQuery, parameterStatus, serverFailure, TERMINATE } from "./serverMessages.ts"

export { type ServerConnOptions, serverConnOptions, type UpstreamTls } from "../../pool/serverOptions.ts"
export type { ServerLogin }

/** What a ServerConn tells its pool, once each at most (`closed` only after `opened`). */
export type ServerConnOwner = Owner<ServerConn>

/** A login's messages are small (the largest is an ErrorResponse): anything bigger is not a server we know. */
const maxLoginMessage = 64 * 1024

/** Sent the SSLRequest, waiting for 'S' or 'N'. */
const SSL = 1

const empty = Buffer.alloc(0)

/** libpq's words for a server gone mid-startup; they name nothing internal. */
const kind: ConnKind = { hungUp: "the server closed the connection unexpectedly", goodbye: TERMINATE }

/** One server connection: logging in, then idle in its pool or carrying a client's transactions. */
export class ServerConn extends PooledServerConn<ServerConn> {
  /** BackendKeyData: a CancelRequest for this connection's query names these. */
  processId = 0
  secretKey: Buffer = empty
  /** ParameterStatus values as the server reported them (at login, and from queries the proxy itself ran). */
  readonly parameters: Map<string, string>
  /** The last ReadyForQuery: the session holding it keeps this current; only an "I" connection goes back idle. */
  status: "I" | "T" | "E" = "I"
  /**
   * The proxy's names of the statements prepared on it (statements.ts), least recently used first; undefined: none.
   */
  prepared: Set<string> | undefined = undefined
  /** Until ReadyForQuery. */
  private exchange: LoginExchange | undefined
  private resetOk = true

  /** Starts dialing at once; the owner hears how it went (never before this returns). */
  constructor(owner: ServerConnOwner, target: VettedEndpoint, login: ServerLogin, options: ServerConnOptions) {
    const exchange = new LoginExchange(login, target)
    super(owner, target, options, kind)
    this.exchange = exchange
    this.parameters = exchange.parameters
  }

  protected connected(s: net.Socket): void {
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
    this.startTls()
  }

  protected secured(): void {
    this.startup(this.socket)
  }

  private startup(s: net.Socket): void {
    this.phase = LOGIN
    s.write(this.exchange!.startup())
  }

  private ready(): void {
    this.toReady()
    const exchange = this.exchange!
    this.exchange = undefined
    this.processId = exchange.processId
    this.secretKey = exchange.secretKey
    this.status = "I"
    this.sharedReads = readPooledShared(this.socket)
    this.owner.opened(this)
  }

  protected override loginOver(): void {
    this.exchange = undefined
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
    this.prepared = undefined // DISCARD ALL deallocates them
    this.resetOk = true
    this.startReset(encodeQuery(query), done)
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
}
