// HTTP/2 to the backend, for routes whose metadata says `protocol: "h2c"` (prior knowledge) or `"h2"` (TLS + ALPN),
// and for HTTP/2 clients: one multiplexed session per backend address, each client stream mapped to one backend
// stream, trailers included (what gRPC needs). HTTP/1 clients of such routes still get HTTP/1.1 to the backend.
import * as http2 from "node:http2"
import * as net from "node:net"
import * as tls from "node:tls"
import { nextSourceAddress } from "../sourceAddress.ts"
import { clientConnectOptions } from "../tlsProfile.ts"
import { type Failure, failure } from "./failure.ts"
import type { OriginPool } from "./upstream.ts"

export type H2Protocol = "h2" | "h2c"

export const h2ProtocolOf = (metadata: Readonly<Record<string, unknown>>): H2Protocol | undefined => {
  const p = metadata.protocol
  return p === "h2" || p === "h2c" ? p : undefined
}

const { NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR } = http2.constants

function ignore() {}

/** The HTTP/2 sessions to backends, one per pool (address + TLS settings), reopened when one goes away. */
export class H2Sessions {
  private readonly sessions = new WeakMap<OriginPool, http2.ClientHttp2Session>()
  private readonly open = new Set<http2.ClientHttp2Session>()

  get(pool: OriginPool, protocol: H2Protocol): http2.ClientHttp2Session {
    const live = this.sessions.get(pool)
    if (live !== undefined && !live.closed && !live.destroyed) return live
    const t = pool.target
    const secure = protocol === "h2"
    const tlsOptions = pool.tls ?? { rejectUnauthorized: true, servername: net.isIP(t.host) ? undefined : t.host }
    const plain = () =>
      net.connect({
        host: t.ip,
        port: t.port,
        family: t.family,
        localAddress: nextSourceAddress(t.family),
        noDelay: true
      })
    const session = http2.connect(
      `${secure ? "https" : "http"}://${net.isIP(t.host) === 6 ? `[${t.host}]` : t.host}:${t.port}`,
      {
        // Dial the vetted address, never the name again.
        createConnection: () =>
          secure
            ? tls.connect({ socket: plain(), ...clientConnectOptions(tlsOptions), ALPNProtocols: ["h2"] })
            : plain()
      }
    )
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

/** Relays one client stream over `session`: headers, body both ways with backpressure (pipe), trailers. */
export const forwardStream = (session: http2.ClientHttp2Session, o: H2Forward): void => {
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
    o.failed(failure(502, "BAD_GATEWAY", "backend", `HTTP/2 backend ${o.where}: ${err.code ?? err.message}`), responded)
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
