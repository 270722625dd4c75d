// HTTP/2 to the backend, for routes whose metadata says `protocol: "h2c"` (prior knowledge) or `"h2"` (TLS + ALPN),
// and for HTTP/2 clients: one multiplexed session per backend address, each client stream mapped to one backend
// stream, trailers included (what gRPC needs). HTTP/1 clients of such routes still get HTTP/1.1 to the backend.
import * as http2 from "node:http2"
import * as net from "node:net"
import type { VettedEndpoint } from "../../domain/Endpoint.ts"
import type { ProxyError } from "../../domain/ProxyError.ts"
import { type DialWaiter, dialProfile, dialWith } from "../dial.ts"
import { clientConnectOptions } from "../tlsProfile.ts"
import { type Failure, failure } from "./failure.ts"
import type { OriginPool } from "./originPool.ts"

export type H2Protocol = "h2" | "h2c"

export const h2ProtocolOf = (metadata: Readonly<Record<string, unknown>>): H2Protocol | undefined => {
  const p = metadata.protocol
  return p === "h2" || p === "h2c" ? p : undefined
}

const { NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR } = http2.constants

function ignore() {}

// A session is long-lived (reopened only when it goes away): TCP keep-alive finds a backend that vanished under it.
const h2cProfile = dialProfile({ allowHalfOpen: false, keepAlive: true })

/** The dial under one session: tells the pool's breaker how it went, and keeps why it failed for the streams. */
class SessionDial implements DialWaiter {
  readonly pool: OriginPool
  failure: Failure | undefined = undefined
  constructor(pool: OriginPool) {
    this.pool = pool
  }
  get target(): VettedEndpoint {
    return this.pool.target
  }
  dialed(socket: net.Socket | undefined, error: ProxyError | undefined, timedOut?: boolean): void {
    if (socket !== undefined) {
      this.pool.breakerSuccess()
      return
    }
    this.pool.breakerFailure(error!.message)
    this.failure = timedOut
      ? failure(504, "UPSTREAM_TIMEOUT", "backend", error!.message)
      : failure(502, "CONNECT_FAILED", "backend", error!.message)
  }
}

type Session = http2.ClientHttp2Session & { _dial?: SessionDial }

/** The HTTP/2 sessions to backends, one per pool (address + TLS settings), reopened when one goes away. */
export class H2Sessions {
  private readonly sessions = new WeakMap<OriginPool, Session>()
  private readonly open = new Set<Session>()

  /** The live session to `pool`'s backend, a new one (dialled like every backend connection), or why not. */
  get(pool: OriginPool, protocol: H2Protocol): http2.ClientHttp2Session | Failure {
    const live = this.sessions.get(pool)
    if (live !== undefined && !live.closed && !live.destroyed) return live
    const refused = pool.refusal()
    if (refused !== undefined) return refused
    const t = pool.target
    const secure = protocol === "h2"
    const tlsOptions = pool.tls ?? { rejectUnauthorized: true, servername: net.isIP(t.host) ? undefined : t.host }
    const profile = secure
      ? dialProfile({
          allowHalfOpen: false,
          keepAlive: true,
          tls: { ...clientConnectOptions(tlsOptions), ALPNProtocols: ["h2"] }
        })
      : h2cProfile
    const dial = new SessionDial(pool)
    const session: Session = http2.connect(
      `${secure ? "https" : "http"}://${net.isIP(t.host) === 6 ? `[${t.host}]` : t.host}:${t.port}`,
      // The one dialer: the vetted address (never the name again), a source address, the connect deadline, TLS.
      { createConnection: () => dialWith(dial, pool.settings.connectMs, profile) }
    )
    session._dial = dial
    session.on("error", ignore)
    session.once("close", () => {
      this.open.delete(session)
      if (this.sessions.get(pool) === session) this.sessions.delete(pool)
    })
    session.once("goaway", () => {
      if (this.sessions.get(pool) === session) this.sessions.delete(pool)
    })
    // An idle session must not keep the process (or a drain) waiting.
    session.unref()
    this.sessions.set(pool, session)
    this.open.add(session)
    return session
  }

  close(): void {
    for (const s of this.open) s.destroy()
    this.open.clear()
  }
}

export interface H2Forward {
  readonly client: http2.ServerHttp2Stream
  readonly headers: Record<string, string | Array<string>>
  readonly hasBody: boolean
  readonly headersTimeoutMs: number
  readonly where: string
  /** Response headers for the client, given the backend's (filtering and telemetry are the caller's). */
  readonly responseHeaders: (
    upstream: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader
  ) => Record<string, string | Array<string> | number>
  /** No response can be given; `headSent`: the client already has response headers. */
  readonly failed: (f: Failure, headSent: boolean) => void
}

/**
 * Relays one client stream over `session`: headers, body both ways with backpressure (pipe), trailers. A Failure in
 * its place (`H2Sessions.get`: the backend's breaker is open) is the client's answer.
 */
export const forwardStream = (session: http2.ClientHttp2Session | Failure, o: H2Forward): void => {
  if ("status" in session) {
    o.failed(session, false)
    return
  }
  const client = o.client
  let up: http2.ClientHttp2Stream
  try {
    up = session.request(o.headers, { endStream: !o.hasBody })
  } catch (e) {
    o.failed(failure(502, "BAD_GATEWAY", "backend", `HTTP/2 backend ${o.where}: ${(e as Error).message}`), false)
    return
  }
  let responded = false
  let trailers: http2.IncomingHttpHeaders | undefined
  up.on("error", (err: NodeJS.ErrnoException) => {
    if (client.destroyed) return
    // A stream of a session whose dial failed: the dialer's words (502, or 504 past the connect deadline).
    const dialFailure = (session as Session)._dial?.failure
    o.failed(
      dialFailure ?? failure(502, "BAD_GATEWAY", "backend", `HTTP/2 backend ${o.where}: ${err.code ?? err.message}`),
      responded
    )
  })
  if (o.headersTimeoutMs > 0) {
    up.setTimeout(o.headersTimeoutMs, () => {
      if (responded) return
      up.close(NGHTTP2_CANCEL)
      o.failed(
        failure(
          504,
          "UPSTREAM_TIMEOUT",
          "backend",
          `HTTP/2 backend ${o.where} did not answer within ${o.headersTimeoutMs} ms`
        ),
        false
      )
    })
  }
  client.once("close", () => {
    if (!up.closed) up.close(NGHTTP2_CANCEL)
  })
  if (o.hasBody) client.pipe(up)
  up.on("response", (headers) => {
    if (client.destroyed) return
    responded = true
    up.setTimeout(0)
    const done = up.endAfterHeaders
    client.respond(o.responseHeaders(headers), { endStream: done, waitForTrailers: !done })
    if (done) return
    client.once("wantTrailers", () => {
      const t: Record<string, string | Array<string>> = {}
      for (const k in trailers) if (k.charCodeAt(0) !== 0x3a) t[k] = trailers[k] as string | Array<string>
      client.sendTrailers(t)
    })
    up.pipe(client)
  })
  up.on("trailers", (t) => {
    trailers = t
  })
  up.on("close", () => {
    if (!client.destroyed && !client.closed && up.rstCode !== undefined && up.rstCode !== 0) {
      if (responded) client.close(NGHTTP2_INTERNAL_ERROR)
    }
  })
}
