// MongoDB: route each connection by the database of its first command that needs a backend (or by appName, or by
// TLS SNI), answering the driver's handshake itself until then; terminate TLS if configured; refuse with command
// error replies that drivers raise as MongoServerError.
//
// Where the routing key is. A driver opens every connection with hello (a legacy `isMaster` in OP_QUERY) on admin,
// which names no tenant; its first command on the application database does, in the `$db` of the OP_MSG body. So
// the proxy answers hello itself and routes on the first message that needs a backend:
// - routeBy "database" (default): a command on any database but admin, $external, config or local routes by its
//   `$db`. Commands on those (saslStart with authSource=admin, listDatabases...) name no tenant: they go to
//   listeners.mongodb.defaultRoute if set, else are refused (13 Unauthorized) with the fix in the message:
//   authenticate against the tenant's database (authSource=<db>, the default when the URI names a database).
// - routeBy "appName" / "sni": the first such message routes by client.application.name / the TLS server name.
// Answered here, never routed: hello/isMaster/ismaster, and ping/endSessions on admin while no backend is known (the
// docs' connectivity check `db("admin").command({ ping: 1 })` would otherwise pin a fresh pool connection to
// defaultRoute, and a connection with no backend has no sessions to end).
//
// What the proxy claims to be. Its hello reply promises for a backend it does not know yet, so it is the proxy's
// own: a standalone server, wire version 21 (MongoDB 7.0):
// - it hides what is behind it: a replica-set member's hello lists its members, and a driver without
//   directConnection would connect to them around the proxy. The backend's own hello reply is dropped at replay;
// - standalone, not a mongos ("isdbgrid") nor a replica set: both would make drivers send txnNumber with every write
//   (retryable writes), which a standalone mongod backend refuses. Drivers therefore do not retry writes behind the
//   proxy; transactions and change streams are left to the backend to accept or refuse, as drivers do for a
//   standalone;
// - no compressors, so drivers never compress (an OP_COMPRESSED is refused); no topologyVersion, so monitors poll
//   with plain hellos instead of holding an awaitable one; a loadBalanced=true driver gets a serviceId, and in that
//   mode runs no monitoring connection at all;
// - no speculativeAuthenticate and no saslSupportedMechs: drivers authenticate with an explicit saslStart
//   (SCRAM-SHA-256 unless the URI says otherwise), which routes to the backend that checks it: one round trip more.
// Every reply the proxy writes answers the client's pending requestId (responseTo), in OP_REPLY to an OP_QUERY.
//
// Refusals are command errors `{ ok: 0, errmsg: "polyproxy: …", code, codeName }` to the request the client waits
// on (codes and why in replies.ts); the connection then answers the same error for a moment before it closes
// (refusing.ts), so a driver's immediate retry reads our error rather than a closed socket. TLS, when configured, is
// required from the first byte (MongoDB has no STARTTLS); a plaintext request on it gets a readable error.
//
// Connections that never name a database. Every MongoClient keeps a monitoring connection that only sends hello, and
// `connect()` (or minPoolSize) leaves pool connections that said hello and wait. They cost no backend: they are
// served here. The shared listener bounds identify by timeouts.handshake, so they cannot wait in it for ever: the
// proxy closes such a connection when it is idle at 3/4 of that deadline, or right after answering its second hello
// (a monitor's heartbeat: nothing else can be in flight). Drivers take both as routine: a monitor re-opens a closed
// connection at its next heartbeat instead of failing the check, and the pool drops a closed idle connection on
// checkout and opens a new one, which routes at once. The one race left is a command written at the very moment its
// idle connection is closed. These closes log at debug but count as handshake_timeout refusals; a listener phase for
// connections served locally would spare both, and the fiber each holds until then.
//
// What an unrouted connection can make the proxy hold. Drivers write `$db` last in the command document, after the
// documents of an insert, so the proxy reads a command up to the end of its command document (never its document
// sequences, which carry insertMany's documents): at most listeners.mongodb.maxRoutingCommand bytes (64 KiB by
// default; src/codec/mongo/Protocol.ts says why), a handshake message at most 64 KiB. A command whose section size
// says it ends further is refused with 17 ProtocolError as soon as that size is in (25 bytes into the message),
// before anything of its document is buffered; the rest of it is read and dropped so that the driver, which reads no
// reply before its request is written, shows our error (refusing.ts). Routed by appName or SNI, such a command names
// no routing key in its body: it routes the connection unread, and the relay carries it. Behind a real mongod the
// first command of a connection is the driver's saslStart (authSource=<tenant db>): large ones come after routing.
//
// Routing is per connection: a MongoClient should use one tenant database (and admin). Its commands on another
// database go to the backend its connection was routed to. After routing nothing of this file stays per connection:
// replay drops the hello metadata and the pending bytes, and the relay carries bytes untouched.

import type * as tls from "node:tls"
import { ObjectId } from "bson"
import * as Effect from "effect/Effect"
import {
  type ClientCommand,
  type ClientLimits,
  type ClientOversized,
  decodeOpMsg,
  defaultClientLimits,
  encodeReply,
  frame,
  HELLO_COMMANDS,
  type HelloRequest,
  helloReply,
  MAX_HANDSHAKE_MESSAGE,
  MAX_ROUTING_COMMAND,
  need,
  OpMsgFlags,
  okDocument,
  peekClientMessage,
  readHello
} from "../../codec/mongo/index.ts"
import { type ProxyError, proxyError } from "../../domain/ProxyError.ts"
import type { ClientConnection, Identified, Protocol } from "../Protocol.ts"
import type { ProtocolContext } from "../ProtocolContext.ts"
import { acceptTls, type ClientTlsOptions, clientCertProblem, type ServerTls, subjectOf } from "../tls.ts"
import { type MongoState, replayToBackend } from "./backend.ts"
import { MessageReader } from "./MessageReader.ts"
import { keepRefusing } from "./refusing.ts"
import { nextRequestId, type Pending, pendingAt, refusalFor } from "./replies.ts"

export type MongoRouteBy = "database" | "appName" | "sni"

export interface MongoOptions {
  readonly name?: string
  /** Terminate TLS here, required from the first byte; absent = plain text only. */
  readonly tls?: ServerTls | undefined
  readonly routeBy: MongoRouteBy
  /** The resource for connections whose first backend-bound command names no tenant. */
  readonly defaultRoute?: string | undefined
  readonly upstreamTls?: ClientTlsOptions | undefined
  /** timeouts.handshake in seconds (0 = none): idle unrouted connections are closed at 3/4 of it. */
  readonly handshakeTimeout: number
  /** Seconds the backend gets to answer the proxy's hello (timeouts.connect; a route's timeout overrides it). */
  readonly connectTimeout: number
  /** Bytes of a command read before the connection is routed, up to the end of its command document. */
  readonly maxRoutingCommand?: number | undefined
}

/** Databases every server has: they name no tenant. */
const SHARED_DATABASES: ReadonlySet<string> = new Set(["admin", "$external", "config", "local"])
/** Answered here on a shared database while the connection has no backend. */
const LOCAL_COMMANDS: ReadonlySet<string> = new Set(["ping", "endSessions"])

const TLS_HANDSHAKE_RECORD = 0x16

const firstByte = (buf: Buffer) => (buf.length === 0 ? need(1) : frame(buf[0]!, 0))

const badRequest = (message: string) => proxyError("BAD_REQUEST", "client", message)

/** One id per proxy process: load-balanced drivers key their pools by it, and all our connections are alike. */
let serviceId: ObjectId | undefined

export const mongodbProtocol = (ctx: ProtocolContext): Protocol =>
  makeMongoProtocol({
    name: ctx.name,
    tls: ctx.tls,
    routeBy: (ctx.listener.routeBy ?? "database") as MongoRouteBy,
    defaultRoute: ctx.listener.defaultRoute,
    upstreamTls: ctx.upstreamTls,
    handshakeTimeout: ctx.config.timeouts.handshake,
    connectTimeout: ctx.config.timeouts.connect,
    maxRoutingCommand: ctx.listener.maxRoutingCommand
  })

export const makeMongoProtocol = (options: MongoOptions): Protocol => {
  /** The request each client is waiting on, for `refuse`: a reply must answer it. Keyed by the socket refused. */
  const pending = new WeakMap<object, Pending>()
  let lastConnectionId = 0
  const maxRoutingCommand = options.maxRoutingCommand ?? MAX_ROUTING_COMMAND
  const limits: ClientLimits = { ...defaultClientLimits, maxBody: maxRoutingCommand }
  const peek = (buf: Buffer) => peekClientMessage(buf, limits)

  const routingKey = (
    command: ClientCommand | ClientOversized,
    hello: HelloRequest | undefined,
    sni: string | undefined
  ): string | ProxyError => {
    const fallback = (problem: string) =>
      options.defaultRoute ?? proxyError("FORBIDDEN", "client", `${problem}, and no defaultRoute is configured`)
    switch (options.routeBy) {
      case "database": {
        if (command._tag === "Oversized") {
          return badRequest(
            `command of ${command.header.messageLength} bytes before this connection is routed: polyproxy reads at ` +
              `most ${maxRoutingCommand} bytes of a command to find its $db, which drivers write last; authenticate ` +
              `against the tenant's database (authSource=<db>) so that the connection is routed first, or raise ` +
              `listeners.mongodb.maxRoutingCommand`
          )
        }
        const db = command.db
        if (db === undefined || db === "") return badRequest(`command ${command.name} has no $db`)
        if (!SHARED_DATABASES.has(db)) return db
        return fallback(
          `${command.name} on ${db} names no tenant database (polyproxy routes each connection by the database of ` +
            `its first command): authenticate against the tenant's database (authSource=<db>)`
        )
      }
      case "appName":
        return (
          hello?.appName || fallback("this listener routes by appName: add appName=<tenant> to the connection string")
        )
      case "sni":
        return sni
          ? sni.split(".")[0]!.toLowerCase()
          : fallback("this listener routes by TLS server name: connect with tls=true to the tenant's host name")
    }
  }

  const identify = Effect.fnUntraced(function* (conn: ClientConnection) {
    const quietAfter = options.handshakeTimeout > 0 ? Date.now() + options.handshakeTimeout * 750 : undefined
    const reader = new MessageReader(conn.client, "client")
    let sni: string | undefined
    let subject: string | undefined
    let plainOnTls = false
    if (options.tls !== undefined) {
      const first = yield* reader.read(firstByte, quietAfter)
      if (first.value === TLS_HANDSHAKE_RECORD) {
        conn.client.unshift(reader.take())
        const secure: tls.TLSSocket = yield* acceptTls(conn.client, options.tls)
        conn.client = secure
        reader.socket = secure
        const denied = clientCertProblem(secure, options.tls)
        if (denied) return yield* denied
        subject = options.tls.requireClientCert ? subjectOf(secure) : undefined
        sni = (secure as tls.TLSSocket & { servername?: string | false }).servername || undefined
      } else plainOnTls = true
    }

    let hello: HelloRequest | undefined
    let hellos = 0
    let connectionId = 0
    for (;;) {
      // Whatever ends the read (a malformed message, the listener's deadline), a refusal must answer its header.
      const peeked = yield* reader.read(peek, quietAfter).pipe(
        Effect.ensuring(
          Effect.sync(() => {
            const at = pendingAt(reader.bytes)
            if (at) pending.set(conn.client, at)
          })
        )
      )
      const msg = peeked.value
      const legacy = msg._tag === "Command" && msg.legacy
      if (plainOnTls) return yield* badRequest("this listener requires TLS: connect with tls=true")
      if (msg._tag === "Compressed") {
        return yield* badRequest(`${msg.compressor}-compressed message, but no compressor was negotiated`)
      }
      const isHello = msg._tag === "Command" && HELLO_COMMANDS.has(msg.name)
      const local =
        msg._tag === "Command" &&
        (isHello || (LOCAL_COMMANDS.has(msg.name) && msg.db !== undefined && SHARED_DATABASES.has(msg.db)))
      if (local) {
        const length = msg.header.messageLength
        if (length > MAX_HANDSHAKE_MESSAGE) {
          return yield* badRequest(
            `${msg.name} of ${length} bytes (a handshake message takes at most ${MAX_HANDSHAKE_MESSAGE})`
          )
        }
        // OP_QUERY was read whole by the peek; an OP_MSG is checked whole (sections, flags) before it is answered.
        if (!legacy) yield* reader.read((buf) => decodeOpMsg(buf, MAX_HANDSHAKE_MESSAGE))
        let reply = okDocument()
        if (isHello) {
          const request = readHello(msg.body)
          if (typeof request === "string") return yield* badRequest(request)
          hello ??= request
          if (connectionId === 0) connectionId = lastConnectionId = (lastConnectionId % 0x7fffffff) + 1
          if (request.loadBalanced) serviceId ??= new ObjectId()
          reply = helloReply({
            command: request.name,
            helloOk: request.helloOk,
            connectionId,
            serviceId: request.loadBalanced ? serviceId : undefined,
            now: new Date()
          })
          hellos++
        }
        reader.consume(length)
        if ((msg.flagBits & OpMsgFlags.moreToCome) === 0) {
          conn.client.write(
            encodeReply(reply, { requestId: nextRequestId(), responseTo: msg.header.requestId, legacy })
          )
        }
        pending.delete(conn.client)
        if (isHello && hellos > 1) {
          // A second hello is a monitor's heartbeat: closing right after the answer cannot cut a request in flight.
          return yield* proxyError(
            "HANDSHAKE_TIMEOUT",
            "client",
            "closed a monitoring connection after its heartbeat",
            {
              quiet: true
            }
          )
        }
        continue
      }
      if (msg._tag === "Command" && legacy) {
        return yield* badRequest(`OP_QUERY ${msg.name}: only the hello handshake may use OP_QUERY`)
      }
      const key = routingKey(msg, hello, sni)
      if (typeof key !== "string") return yield* key
      const state: MongoState = { client: hello?.client, pending: reader.take() }
      return { resourceId: key, client: conn.client, tlsSubject: subject, sni, state } satisfies Identified
    }
  })

  return {
    name: options.name ?? "mongodb",
    readsHandshake: true,
    identify,
    // replay bounds the backend's answer to hello itself (backend.ts, the route's connect timeout), with its own words.
    boundsReplay: true,
    replay: (identified, route, backend) =>
      replayToBackend(
        identified.state as MongoState,
        route,
        backend,
        options.upstreamTls,
        route.timeout ?? options.connectTimeout
      ).pipe(Effect.tap(() => Effect.sync(() => pending.delete(identified.client)))),
    refuse: (client, error) => {
      const to = pending.get(client)
      pending.delete(client)
      // The rest of the request refused, when only its start was read (a routing message with large document
      // sequences, or one too large to read unrouted): keepRefusing drops it, so that the driver, which reads no
      // reply before its request is written, reads this error.
      const unread = client.readableEnded ? 0 : (to?.unread ?? 0)
      // A stream we cannot frame, or a message that never finished, leaves nothing to keep answering.
      if (error.reason === "HANDSHAKE_TIMEOUT" || (error.reason === "BAD_REQUEST" && unread === 0)) {
        client.end(refusalFor(error, to))
        return
      }
      // Refused on accept (a connection limit): the error answers the client's first request instead.
      if (to !== undefined) client.write(refusalFor(error, to))
      keepRefusing(client, error, unread)
    }
  }
}
