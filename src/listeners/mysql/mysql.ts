// MySQL / MariaDB: route by the database of the HandshakeResponse41 (or the user), terminate TLS if configured,
// authenticate end to end without the proxy ever knowing a password, and refuse with ERR packets clients print.
//
// Why the auth switch. MySQL's server speaks first, and its greeting carries the nonce the client hashes its password
// with; but the routing key (the database) only arrives in the client's answer, computed from that nonce. So:
//   1. identify: the proxy greets with its own random nonce (capabilities and version: capabilities.ts, fixed by
//      serverFlavor or learned from the backends seen), reads the HandshakeResponse41 (after an SSLRequest and
//      TLS if the client wants them) and routes by its database. The client's auth response is useless: it hashes
//      the proxy's nonce, which no backend knows.
//   2. replay: after dialing, the proxy reads the backend's real greeting (optionally sends SSLRequest and starts TLS
//      to the backend), then sends the client an AuthSwitchRequest carrying the backend's plugin and nonce. The client
//      recomputes its answer, and the proxy sends the backend a HandshakeResponse41 with the client's user, database,
//      attributes and that answer, capabilities narrowed to what both sides support. The rest of the exchange
//      (AuthMoreData for caching_sha2_password, a further AuthSwitchRequest, OK/ERR) is passed through with renumbered
//      sequence ids (authBridge.ts): the proxy's extra round trip means the two sides never count alike, so
//      translation lasts until the backend's final OK or ERR, after which every command restarts at 0 and the relay
//      copies bytes.
//
// What others do, and why not that. ProxySQL, Vitess (vtgate) and MaxScale authenticate the client themselves: they
// hold the passwords or their hashes (ProxySQL's mysql_users, vtgate's static/LDAP auth, MaxScale's copy of
// mysql.user) and log in to backends with credentials of their own or the same hash. A tenant proxy that must not
// store tenants' passwords cannot do that. MySQL Router (when it terminates TLS) and PingCAP's TiProxy forward the
// client's response with a plugin name no server knows ("switch_me_if_you_can", "auth_unknown_plugin"), so the
// backend itself answers with an AuthSwitchRequest carrying its nonce, which they pass on. We send that switch
// ourselves from the greeting's nonce instead: one backend round trip fewer, and no reliance on how a server reacts
// to an unknown plugin. The client sees an ordinary auth switch, which every 4.1 client with CLIENT_PLUGIN_AUTH
// handles (the proxy refuses clients without it).
//
// caching_sha2_password: the fast path (nonce scramble, server-side cache hit) works through the switch. Full
// authentication needs the password itself: in clear over TLS, or RSA-encrypted with the server's key over plain TCP.
// Both work when the two hops agree (both TLS, or both plain: the RSA key exchange passes through untouched). When
// they differ the proxy refuses with a clear ERR rather than forward a clear-text password over plain TCP.
//
// Connection ids: the client keeps the proxy's greeting, so its connection id is the proxy's (sessions.ts: large,
// unique across workers); `KILL <that id>` from another connection is translated to the backend's (killTap.ts).
// CONNECTION_ID() is not rewritten (ProxySQL does not either): it returns the backend's id, which KILL takes as is.
//
// Known limit: a client that hashes COM_CHANGE_USER with the greeting's nonce (mysql2 does) relies on the server
// re-challenging with an AuthSwitchRequest, as MariaDB does (the conformance spec covers it).

import { randomBytes } from "node:crypto"
import type * as net from "node:net"
import type * as tls from "node:tls"
import * as Effect from "effect/Effect"
import {
  AuthPlugin,
  Capability,
  type ClientHandshake,
  capabilityNames,
  decodeMessage,
  decodePacket,
  encodeAuthSwitchRequest,
  encodeHandshakeResponse41,
  encodeHandshakeV10,
  encodePacket,
  encodeSslRequest,
  type Framed,
  type HandshakeResponse41,
  hasCapability,
  Marker,
  nextSequenceId,
  parseClientHandshake,
  parseErrPacket,
  parseHandshakeV10,
  SCRAMBLE_LENGTH,
  Status,
  UTF8MB4_GENERAL_CI
} from "../../codec/mysql/index.ts"
import type { MysqlServerFlavor } from "../../config/Config.ts"
import { type ProxyError, proxyError } from "../../domain/ProxyError.ts"
import type { Route } from "../../domain/Route.ts"
import type { ClientConnection, Identified, Protocol } from "../Protocol.ts"
import type { ProtocolContext } from "../ProtocolContext.ts"
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
import { bridgeAuth, cleartextPlugins, type Turn, tlsMismatch } from "./authBridge.ts"
import { backendLogin, backendNeeds, makeGreetings, offered } from "./capabilities.ts"
import { mysqlErrorFor, NO_DATABASE_SELECTED, nextServerSequence } from "./errPacket.ts"
import { tapKills } from "./killTap.ts"
import { MysqlSessions } from "./sessions.ts"

export type MysqlRouteBy = "database" | "user"

export interface MysqlOptions {
  readonly name?: string
  /** Terminate TLS here (CLIENT_SSL advertised, SSLRequest honoured); absent = plain text only. */
  readonly tls?: ServerTls | undefined
  readonly routeBy: MysqlRouteBy
  /** The resource for a client that names no database (routeBy database). */
  readonly defaultRoute?: string | undefined
  /** TLS towards backends unless a route's metadata.tls says otherwise. */
  readonly upstreamTls?: ClientTlsOptions | undefined
  /** Milliseconds for the login once the backend is dialed (its greeting, the auth switch, up to OK); 0 = none. */
  readonly authTimeoutMs: number
  /** What the greeting claims to be (capabilities and version); default "auto". */
  readonly serverFlavor?: MysqlServerFlavor | undefined
  /** The greeting's version string instead of the flavor's. */
  readonly serverVersion?: string | undefined
  /** Connection ids and the sessions they stand for (shared by the process's listeners); default: a table of its own. */
  readonly sessions?: MysqlSessions | undefined
}

/** The whole client handshake, packet by packet, stays under 16 KB (header included). */
const maxHandshakeBytes = 16 * 1024
const maxHandshakePayload = maxHandshakeBytes - 4

/** A nonce as MySQL makes them: 7-bit, no NUL and no '$', since some clients treat it as a C string. */
const newScramble = (): Buffer => {
  const bytes = randomBytes(SCRAMBLE_LENGTH)
  for (let i = 0; i < bytes.length; i++) {
    let b = bytes[i]! & 0x7f
    if (b === 0 || b === 0x24) b++
    bytes[i] = b
  }
  return bytes
}

const nul = Buffer.from([0])

const decodeClient = (buf: Buffer) => decodeMessage(buf, parseClientHandshake, maxHandshakePayload)

const decodeAnyPacket = (buf: Buffer) => decodePacket(buf, maxHandshakePayload)

const badRequest = (message: string) => proxyError("BAD_REQUEST", "client", message)
const backendFailure = (message: string) => proxyError("CONNECT_FAILED", "backend", message)

/** What identify learned, for replay: the parsed login and where the client's numbering stands. */
interface MysqlState {
  readonly response: HandshakeResponse41
  /** Sequence id of the proxy's next packet to the client. */
  readonly toClient: number
  readonly clientTls: boolean
  /** The MariaDB extras the client's greeting offered. */
  readonly offeredMariaDb: number
  /** The connection id the client's greeting carried. */
  readonly connectionId: number
  /** The backend's connection id, from its greeting (replay). */
  backendId: number
}

export const mysqlProtocol = (ctx: ProtocolContext): Protocol =>
  makeMysqlProtocol({
    name: ctx.name,
    tls: ctx.tls,
    routeBy: (ctx.listener.routeBy ?? "database") as MysqlRouteBy,
    defaultRoute: ctx.listener.defaultRoute,
    upstreamTls: ctx.upstreamTls,
    authTimeoutMs: ctx.config.timeouts.handshake * 1000,
    serverFlavor: ctx.listener.serverFlavor,
    serverVersion: ctx.listener.serverVersion,
    sessions: ctx.shared.mysqlSessions
  })

export const makeMysqlProtocol = (options: MysqlOptions): Protocol => {
  const capabilities = (offered | (options.tls ? Capability.SSL : 0)) >>> 0
  const greetings = makeGreetings(options.serverFlavor ?? "auto", options.serverVersion)
  const sessions = options.sessions ?? new MysqlSessions()

  const routingKey = (response: HandshakeResponse41): string | ProxyError => {
    if (options.routeBy === "user") {
      return response.user || options.defaultRoute || badRequest("the handshake names no user")
    }
    const database = hasCapability(response.capabilities, Capability.CONNECT_WITH_DB) ? response.database : undefined
    if (database) return database
    if (options.defaultRoute) return options.defaultRoute
    return proxyError("NOT_FOUND", "client", "connect with a database: this listener routes by database name", {
      cause: NO_DATABASE_SELECTED
    })
  }

  const identify = Effect.fnUntraced(function* (conn: ClientConnection) {
    const greeting = greetings.current()
    const connectionId = sessions.nextId()
    conn.client.write(
      encodePacket(
        encodeHandshakeV10({
          serverVersion: greeting.serverVersion,
          connectionId,
          authPluginData: newScramble(),
          capabilities,
          characterSet: UTF8MB4_GENERAL_CI,
          statusFlags: Status.AUTOCOMMIT,
          authPlugin: AuthPlugin.NATIVE,
          mariadbCapabilities: greeting.mariadbCapabilities
        }),
        0
      )
    )
    // A refusal from here on answers the client's packet 1 (its handshake response).
    nextServerSequence.set(conn.client, 2)
    let read = yield* readFrame<Framed<ClientHandshake>>(conn.client, decodeClient, maxHandshakeBytes)
    let subject: string | undefined
    let sni: string | undefined
    const clientTls = read.value.message._tag === "SSLRequest"
    if (read.value.message._tag === "SSLRequest") {
      if (options.tls === undefined) return yield* badRequest("SSLRequest, but this listener does not offer TLS")
      // The TLS ClientHello follows the SSLRequest without waiting for an answer: it may have come in the same read.
      if (read.rest.length > 0) conn.client.unshift(read.rest)
      const secure: tls.TLSSocket = yield* acceptTls(conn.client, options.tls)
      nextServerSequence.delete(conn.client)
      conn.client = secure
      nextServerSequence.set(secure, (nextSequenceId(read.value) + 1) & 0xff)
      const denied = clientCertProblem(secure, options.tls)
      if (denied) return yield* denied
      subject = options.tls.requireClientCert ? subjectOf(secure) : undefined
      sni = (secure as tls.TLSSocket & { servername?: string | false }).servername || undefined
      read = yield* readFrame(secure, decodeClient, maxHandshakeBytes)
      if (read.value.message._tag === "SSLRequest") return yield* badRequest("SSLRequest sent twice")
    } else if (options.tls?.requireClientCert) {
      return yield* proxyError("FORBIDDEN", "client", "this listener requires TLS with a client certificate")
    }
    const response = read.value.message as HandshakeResponse41
    const toClient = nextSequenceId(read.value)
    nextServerSequence.set(conn.client, toClient)
    // A client must wait for the server's verdict before its first command.
    if (read.rest.length > 0) return yield* badRequest("data after the handshake response, before the server answered")
    if (!hasCapability(response.capabilities, Capability.PLUGIN_AUTH)) {
      return yield* badRequest("the client does not support authentication plugins (CLIENT_PLUGIN_AUTH)")
    }
    const key = routingKey(response)
    if (typeof key !== "string") return yield* key
    const state: MysqlState = {
      response,
      toClient,
      clientTls,
      offeredMariaDb: greeting.mariadbCapabilities,
      connectionId,
      backendId: 0
    }
    return { resourceId: key, client: conn.client, tlsSubject: subject, sni, state } satisfies Identified
  })

  const authenticate = Effect.fnUntraced(function* (
    identified: Identified,
    route: Route,
    dialed: net.Socket,
    turn: Turn
  ) {
    const state = identified.state as MysqlState
    const client = identified.client
    const response = state.response

    const greetingRead = yield* readFrame(dialed, decodeAnyPacket, maxHandshakeBytes).pipe(
      Effect.mapError((e) => backendFailure(`backend greeting: ${e.message}`))
    )
    const payload = greetingRead.value.payload
    if (payload[0] === Marker.ERR) {
      // e.g. 1040 Too many connections, 1129 host blocked: the client gets the server's own words.
      client.write(encodePacket(payload, state.toClient))
      const err = parseErrPacket(payload)
      const text = err._tag === "ErrPacket" ? `${err.code} ${err.message}` : "malformed ERR"
      const reason = err._tag === "ErrPacket" && err.code === 1040 ? "UNAVAILABLE" : "CONNECT_FAILED"
      return yield* proxyError(reason, "backend", `backend refused: ${text}`, { quiet: true })
    }
    const greeting = parseHandshakeV10(payload)
    if (greeting._tag === "Invalid") return yield* backendFailure(`backend greeting: ${greeting.reason}`)
    // Before any check: a client refused below for extras its backend lacks is greeted right when it reconnects.
    greetings.learn(greeting)
    state.backendId = greeting.connectionId
    const backendCaps = greeting.capabilities
    if ((backendCaps & backendNeeds) >>> 0 !== backendNeeds) {
      return yield* backendFailure(
        `backend ${greeting.serverVersion} lacks ${capabilityNames(backendNeeds & ~backendCaps).join(", ")}`
      )
    }
    const tlsOptions = upstreamTlsFor(route, options.upstreamTls)
    const database = response.database || undefined
    const attributes = response.attributes
    const login = backendLogin(response, greeting, {
      offered: capabilities,
      offeredMariaDb: state.offeredMariaDb,
      database: database !== undefined,
      attributes: attributes !== undefined,
      tls: tlsOptions !== undefined
    })
    if ("lacks" in login) {
      const message = `backend ${greeting.serverVersion} lacks ${login.lacks}, which the client negotiated`
      return yield* proxyError("CONNECT_FAILED", "backend", message, {
        clientMessage: `the server lacks ${login.lacks}, which this connection negotiated with the proxy's greeting`
      })
    }
    const { flags, mariadbCapabilities } = login

    let backend = dialed
    let toBackend = 1
    if (tlsOptions) {
      if (!hasCapability(backendCaps, Capability.SSL)) {
        return yield* backendFailure(`backend ${route.endpoint.host} does not offer TLS`)
      }
      if (greetingRead.rest.length > 0) return yield* backendFailure("backend sent data before TLS started")
      dialed.write(
        encodePacket(
          encodeSslRequest({
            capabilities: flags,
            maxPacketSize: response.maxPacketSize,
            characterSet: response.characterSet,
            mariadbCapabilities
          }),
          toBackend++
        )
      )
      backend = yield* connectTls(dialed, { ...tlsOptions, servername: tlsOptions.servername ?? route.endpoint.host })
    }

    const plugin = greeting.authPlugin || AuthPlugin.NATIVE
    if (state.clientTls && !tlsOptions && cleartextPlugins.has(plugin)) {
      return yield* tlsMismatch(plugin, state.clientTls, false)
    }
    client.write(
      encodePacket(encodeAuthSwitchRequest(plugin, Buffer.concat([greeting.authPluginData, nul])), state.toClient)
    )
    nextServerSequence.set(client, (state.toClient + 2) & 0xff)
    turn.waitingFor = "client"
    const answer = yield* readFrame(client, decodeAnyPacket, maxHandshakeBytes)
    turn.waitingFor = "backend"

    backend.write(
      encodePacket(
        encodeHandshakeResponse41({
          capabilities: flags,
          maxPacketSize: response.maxPacketSize,
          characterSet: response.characterSet,
          user: response.user,
          authResponse: answer.value.payload,
          database,
          authPlugin: plugin,
          attributes,
          mariadbCapabilities
        }),
        toBackend++
      )
    )
    yield* bridgeAuth({
      client,
      backend,
      toClient: nextSequenceId(answer.value),
      toBackend,
      plugin,
      clientTls: state.clientTls,
      backendTls: tlsOptions !== undefined,
      clientRest: answer.rest,
      backendRest: tlsOptions ? Buffer.alloc(0) : greetingRead.rest,
      maxPayload: maxHandshakePayload,
      turn
    })
    nextServerSequence.delete(client)
    return backend
  })

  const authSeconds = options.authTimeoutMs / 1000
  /** The deadline's error names the side that stopped answering: the backend (2003) or the client (1043). */
  const backendLate = `backend did not complete the login within ${authSeconds}s`
  const authTimeout = (turn: Turn) =>
    turn.waitingFor === "backend"
      ? proxyError("CONNECT_FAILED", "backend", backendLate, { clientMessage: backendLate })
      : proxyError("HANDSHAKE_TIMEOUT", "client", `authentication did not finish within ${authSeconds}s`)
  return {
    name: options.name ?? "mysql",
    readsHandshake: true,
    identify,
    // The login is bounded below, by a deadline whose error names the side that stopped answering.
    boundsReplay: true,
    replay: (identified, route, backend) => {
      const turn: Turn = { waitingFor: "backend" }
      const run = authenticate(identified, route, backend, turn)
      if (options.authTimeoutMs <= 0) return run
      return run.pipe(
        Effect.timeoutOrElse({ duration: options.authTimeoutMs, orElse: () => Effect.fail(authTimeout(turn)) })
      )
    },
    relaying: (identified, backend, target) => {
      const state = identified.state as MysqlState
      const session = { proxyId: state.connectionId, backendId: state.backendId, user: state.response.user }
      return tapKills(identified.client, backend, target, session, sessions)
    },
    refuse: (client, error) => {
      const sequenceId = nextServerSequence.get(client) ?? 0
      nextServerSequence.delete(client)
      client.end(mysqlErrorFor(error, sequenceId, options.routeBy === "database"))
    }
  }
}
