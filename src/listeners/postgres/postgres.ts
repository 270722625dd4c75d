// PostgreSQL: route by the startup message's database (or user, user suffix, SNI), terminate TLS if configured,
// route CancelRequests to the backend of their session, and refuse with an ErrorResponse carrying a SQLSTATE. A route
// in transaction pooling mode (`metadata.pool`) is served by the proxy itself (pool/pooling.ts).

import type * as net from "node:net"
import type * as tls from "node:tls"
import * as Effect from "effect/Effect"
import { frame, need } from "../../codec/Decode.ts"
import {
  databaseOf,
  decodeSslResponse,
  decodeStartup,
  detectDirectTls,
  encodeCancelRequest,
  encodeStartup,
  MAX_STARTUP_PACKET_LENGTH,
  SECOND_GSSENC_REQUEST,
  SECOND_SSL_REQUEST,
  SSL_ACCEPTED,
  SSL_REFUSED,
  SSL_REQUEST,
  type Startup,
  type StartupMessage,
  unencryptedData
} from "../../codec/pg/index.ts"
import { type ProxyError, proxyError } from "../../domain/ProxyError.ts"
import type { Route } from "../../domain/Route.ts"
import { Log } from "../../services/Log.ts"
import type { ClientConnection, Identified, Protocol } from "../Protocol.ts"
import type { ProtocolContext } from "../ProtocolContext.ts"
import type { CancelTicket } from "../pool/connHold.ts"
import { serverPoolsOptions } from "../pool/serverPools.ts"
import { readFrame } from "../readFrame.ts"
import {
  acceptTls,
  type ClientTlsOptions,
  clientCertProblem,
  connectTls,
  type ServerTls,
  subjectOf,
  upstreamTlsFor
} from "../tls.ts"
import type { CancelKeys } from "./CancelKeys.ts"
import { answerFor, refusal, unanswered } from "./errorResponse.ts"
import { watchBackendKeyData } from "./keyDataTap.ts"
import { listenerPgPools } from "./pool/pgPools.ts"
import { pooledCancel } from "./pool/pooledKeys.ts"
import { type PooledStartup, Pooling } from "./pool/pooling.ts"

export type PgRouteBy = "database" | "user" | "user-suffix" | "sni"

export interface PostgresOptions {
  readonly name?: string
  /** Terminate TLS here (SSLRequest and PostgreSQL 17 direct TLS); absent = answer N to SSLRequest. */
  readonly tls?: ServerTls | undefined
  readonly routeBy: PgRouteBy
  /** TLS towards backends unless a route's metadata.tls says otherwise. */
  readonly upstreamTls?: ClientTlsOptions | undefined
  readonly cancelKeys: CancelKeys
  /** Transaction pooling for the routes that ask for it; absent: every route is relayed. */
  readonly pooling?: Pooling | undefined
}

/** A startup packet is at most 10,004 bytes (Postgres' own limit); the whole client handshake stays well under. */
const maxHandshakeBytes = MAX_STARTUP_PACKET_LENGTH + 4

type First = Startup | { readonly _tag: "DirectTls" }
const directTls: First = { _tag: "DirectTls" }

const decodeFirst = (buf: Buffer) => {
  const tlsFirst = detectDirectTls(buf)
  if (tlsFirst === "need") return { _tag: "Need" as const, bytes: 1 }
  if (tlsFirst) return { _tag: "Frame" as const, value: directTls, size: 0 }
  return decodeStartup(buf)
}

/** Any byte at all: the backend has answered. */
const anyBytes = (buf: Buffer) => (buf.length > 0 ? frame(undefined, 0) : need(1))

const badRequest = (message: string) => proxyError("BAD_REQUEST", "client", message)

/** libpq's own words for a server gone mid-startup; they name nothing internal, so the client reads them too. */
const hungUp = "the server closed the connection unexpectedly"

interface PgState {
  readonly startup: Buffer
  /** What a pooled route's session needs of the startup (pool/pooling.ts). */
  readonly pooled: PooledStartup
}

/** A pooled client's cancel request: the claim on its server connection, ended once the request is over. */
interface CancelState {
  readonly ticket: CancelTicket
}

/** identify's state of a startup; undefined for a cancel request. */
const startupOf = (identified: Identified): PgState | undefined => {
  const state = identified.state as PgState | CancelState | undefined
  return state === undefined || "ticket" in state ? undefined : state
}

/**
 * Cancel clients whose request holds a claim, until it is sent: a refusal before then (the server unreachable, its
 * breaker open) ends the claim at once (`refuse`).
 */
const claims = new WeakMap<net.Socket, CancelTicket>()

interface Routed {
  readonly key: string
  readonly startup: Buffer
  /** The parameters the backend gets (`startup`'s). */
  readonly params: ReadonlyMap<string, string>
}

/** The routing key and the startup packet to replay (rewritten when the key was a suffix of the user name). */
const routingKey = (message: StartupMessage, routeBy: PgRouteBy, sni: string | undefined): Routed | ProxyError => {
  const params = message.parameters
  switch (routeBy) {
    case "database":
      return { key: databaseOf(message), startup: message.raw, params }
    case "user":
      return { key: params.get("user") ?? "", startup: message.raw, params }
    case "sni": {
      if (sni === undefined || sni === "") {
        return proxyError("FORBIDDEN", "client", "this listener routes by TLS server name: connect with TLS and SNI")
      }
      return { key: sni.split(".")[0]!.toLowerCase(), startup: message.raw, params }
    }
    case "user-suffix": {
      const user = params.get("user") ?? ""
      const dot = user.lastIndexOf(".")
      if (dot <= 0 || dot === user.length - 1) {
        return proxyError("FORBIDDEN", "client", `user "${user}" has no tenant: connect as "user.tenant"`)
      }
      const rewritten = new Map(params)
      rewritten.set("user", user.slice(0, dot))
      // Postgres defaults the database to the user name: keep the client's intent, which was the full name's prefix.
      if (!params.get("database")) rewritten.set("database", user.slice(0, dot))
      return {
        key: user.slice(dot + 1),
        startup: encodeStartup(rewritten, (message.major << 16) | message.minor),
        params: rewritten
      }
    }
  }
}

/** With no handshake limit, a pooled server login gets PostgreSQL's own authentication_timeout (60 s). */
const serverLoginSeconds = 60

export const postgresProtocol = (ctx: ProtocolContext) =>
  Effect.gen(function* () {
    const log = yield* Log
    const pools = yield* listenerPgPools(ctx.name, serverPoolsOptions(ctx, log, serverLoginSeconds))
    const pooling = new Pooling({ pools, log, listener: ctx.name, upstreamTls: ctx.upstreamTls })
    yield* Effect.addFinalizer(() => Effect.sync(() => pooling.close()))
    return makePostgresProtocol({
      name: ctx.name,
      tls: ctx.tls,
      routeBy: (ctx.listener.routeBy ?? "database") as PgRouteBy,
      upstreamTls: ctx.upstreamTls,
      cancelKeys: ctx.shared.cancelKeys,
      pooling
    })
  })

export const makePostgresProtocol = (options: PostgresOptions): Protocol => {
  const pooling = options.pooling
  const identify = Effect.fnUntraced(function* (conn: ClientConnection) {
    // The server's ssl_done and gss_done: each negotiation once, and none after TLS is accepted.
    let sslDone = false
    let gssDone = false
    let subject: string | undefined
    let sni: string | undefined
    const upgrade = Effect.fnUntraced(function* (alpn?: ReadonlyArray<string>) {
      // A failed TLS handshake leaves nothing a client could read an ErrorResponse from: the server closes too.
      const secure: tls.TLSSocket = yield* Effect.mapError(acceptTls(conn.client, options.tls!, alpn), unanswered)
      conn.client = secure
      const denied = clientCertProblem(secure, options.tls!)
      if (denied) return yield* denied
      if (alpn !== undefined && secure.alpnProtocol !== "postgresql") {
        // PostgreSQL 17 requires the ALPN to prove the client meant to speak Postgres over direct TLS, and closes.
        return yield* unanswered(badRequest('direct TLS without ALPN protocol "postgresql"'))
      }
      subject = options.tls!.requireClientCert ? subjectOf(secure) : undefined
      sni = (secure as tls.TLSSocket & { servername?: string | false }).servername || undefined
    })

    let rest: Buffer | undefined
    // At most: SSLRequest and GSSENCRequest (or direct TLS), then the startup message or a cancel request.
    for (let round = 0; round < 3; round++) {
      // Whatever stops a packet being framed (a bad length, the client gone mid-packet) ends in silence, as there.
      const read = yield* Effect.mapError(
        readFrame<First>(conn.client, decodeFirst, maxHandshakeBytes, rest),
        unanswered
      )
      rest = read.rest
      const packet = read.value
      switch (packet._tag) {
        case "DirectTls": {
          // A server without TLS (or already in TLS) reads 0x16... as a length far too big.
          if (sslDone || options.tls === undefined) {
            return yield* unanswered(badRequest(sslDone ? "TLS twice" : "TLS is not enabled on this listener"))
          }
          conn.client.unshift(rest)
          rest = undefined
          yield* upgrade(["postgresql"])
          sslDone = gssDone = true
          continue
        }
        case "SSLRequest": {
          // The server reads a second one as protocol version 1234.5679.
          if (sslDone) return yield* refusal(SECOND_SSL_REQUEST)
          const accepted = options.tls !== undefined
          conn.client.write(accepted ? SSL_ACCEPTED : SSL_REFUSED)
          if (accepted) yield* upgrade()
          // Bytes behind an SSLRequest came before TLS and may be injected (CVE-2021-23214): the server answers, then
          // reports them (over TLS when it accepted) and closes. They are dropped, never read as the client's.
          if (rest.length > 0) return yield* refusal(unencryptedData("SSL request"))
          sslDone = true
          if (accepted) gssDone = true
          continue
        }
        case "GSSENCRequest": {
          if (gssDone) return yield* refusal(SECOND_GSSENC_REQUEST)
          conn.client.write(SSL_REFUSED) // 'N': no GSSAPI encryption here; the client goes on (to TLS or plain).
          if (rest.length > 0) return yield* refusal(unencryptedData("GSSAPI encryption request"))
          gssDone = true
          continue
        }
        case "RefusedStartup":
          return yield* refusal(packet)
        case "CancelRequest": {
          // A pooled client's key is the proxy's: the cancel goes to the server connection running its query now,
          // with that connection's key. This process's pooled clients are found at once; the rest asks the table.
          const found =
            pooledCancel(packet.processId, packet.secretKey) ??
            (yield* Effect.promise(() => options.cancelKeys.find(packet.processId, packet.secretKey)))
          if (found === undefined || found === "idle") {
            // Postgres answers an unknown key with silence, so a scanner learns nothing (nor a late cancel).
            const what = found === "idle" ? "pooled client, idle" : "unknown process"
            return yield* proxyError("NOT_FOUND", "client", `cancel request for ${what} ${packet.processId}`, {
              quiet: true
            })
          }
          const ticket = found.ticket
          if (ticket !== undefined) claims.set(conn.client, ticket)
          return {
            resourceId: `cancel:${packet.processId}`,
            client: conn.client,
            replay: encodeCancelRequest(found.processId, found.secretKey),
            target: found.target,
            state: ticket === undefined ? undefined : ({ ticket } satisfies CancelState)
          } satisfies Identified
        }
        case "StartupMessage": {
          const routed = routingKey(packet, options.routeBy, sni)
          if (!("key" in routed)) return yield* routed
          if (routed.key === "") return yield* badRequest("startup message names no database or user")
          const state: PgState = {
            startup: rest.length > 0 ? Buffer.concat([routed.startup, rest]) : Buffer.from(routed.startup),
            pooled: { params: routed.params, minor: packet.minor, rest }
          }
          return {
            resourceId: routed.key,
            client: conn.client,
            tlsSubject: subject,
            sni,
            state
          } satisfies Identified
        }
      }
    }
    return yield* unanswered(badRequest("too many negotiation requests"))
  })

  /** Sends SSLRequest to the backend, expects 'S', then starts TLS: for backends that need TLS from the proxy. */
  const backendTls = Effect.fnUntraced(function* (backend: net.Socket, route: Route, tlsOptions: ClientTlsOptions) {
    backend.write(SSL_REQUEST)
    const answer = yield* readFrame(backend, decodeSslResponse, 1).pipe(
      Effect.mapError((e) => proxyError("CONNECT_FAILED", "backend", `backend TLS negotiation failed: ${e.message}`))
    )
    if (answer.value === "N") {
      return yield* proxyError("CONNECT_FAILED", "backend", `backend ${route.endpoint.host} does not accept TLS`)
    }
    return yield* connectTls(backend, { ...tlsOptions, servername: tlsOptions.servername ?? route.endpoint.host })
  })

  /**
   * Waits for the backend's first bytes after the startup message (an authentication request or an ErrorResponse:
   * a server always answers), then puts them back for the relay. Until then the client has been told nothing, so a
   * backend that stays silent (the listener's deadline) or closes still gets the client an ErrorResponse.
   */
  const backendAnswered = (socket: net.Socket) =>
    readFrame(socket, anyBytes, 1).pipe(
      Effect.tap((read) => Effect.sync(() => socket.unshift(read.rest))),
      Effect.mapError(() => proxyError("CONNECT_FAILED", "backend", hungUp, { clientMessage: hungUp }))
    )

  return {
    name: options.name ?? "postgres",
    readsHandshake: true,
    identify,
    replay: (identified, route, backend) =>
      Effect.gen(function* () {
        const state = startupOf(identified)
        // A cancel request goes to the backend as it came, in clear: Postgres reads it before any TLS.
        if (state === undefined) {
          const ticket = (identified.state as CancelState | undefined)?.ticket
          if (ticket !== undefined) {
            claims.delete(identified.client)
            // Its claim lapsed (cancelHoldMs): the connection may serve another client now, whose query it would hit.
            if (ticket.expired()) {
              return yield* proxyError("UNAVAILABLE", "backend", "cancel request not sent: too late for its query", {
                quiet: true
              })
            }
            // The server closes it once it has signalled the backend: the claim ends then.
            backend.once("close", () => ticket.done())
          }
          backend.write(identified.replay!)
          return backend
        }
        const tlsOptions = upstreamTlsFor(route, options.upstreamTls)
        const socket = tlsOptions ? yield* backendTls(backend, route, tlsOptions) : backend
        socket.write(state.startup)
        yield* backendAnswered(socket)
        return socket
      }),
    relaying: (identified, backend, target) =>
      startupOf(identified) === undefined ? undefined : watchBackendKeyData(backend, target, options.cancelKeys),
    serves:
      pooling === undefined
        ? undefined
        : (identified, route, target) => {
            const state = startupOf(identified)
            // A cancel request is relayed as it came.
            return state === undefined ? undefined : pooling.serves(identified.client, state.pooled, route, target)
          },
    refuse: (client, error) => {
      claims.get(client)?.done()
      client.end(answerFor(error))
    }
  }
}
