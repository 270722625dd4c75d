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
// With `auth` (logins checked by the proxy: proxyAuth/served.ts) none of the above runs after the greeting: the proxy
// checks the login itself against the user's stored hash and recovers SHA1(password) from it (proxyLogin.ts), routes
// a client that named no database by its first USE (firstCommand.ts), and serves every client from pools of server
// connections it logs in as that user (pool/). ProxySQL's design, without a password stored anywhere.
//
// Connection ids: the client keeps the proxy's greeting, so its connection id is the proxy's (sessions.ts: large,
// unique across workers); `KILL <that id>` from another connection is translated to the backend's (killTap.ts).
// CONNECTION_ID() is not rewritten (ProxySQL does not either): it returns the backend's id, which KILL takes as is.
//
// Known limit: a client that hashes COM_CHANGE_USER with the greeting's nonce (mysql2 does) relies on the server
// re-challenging with an AuthSwitchRequest, as MariaDB does (the conformance spec covers it).

import type * as tls from "node:tls"
import * as Effect from "effect/Effect"
import {
  AuthPlugin,
  Capability,
  type ClientHandshake,
  decodeMessage,
  encodeHandshakeV10,
  encodePacket,
  type Framed,
  type HandshakeResponse41,
  hasCapability,
  nextSequenceId,
  parseClientHandshake,
  Status,
  UTF8MB4_GENERAL_CI
} from "../../codec/mysql/index.ts"
import type { MysqlServerFlavor } from "../../config/Config.ts"
import { type ProxyError, proxyError } from "../../domain/ProxyError.ts"
import type { ClientConnection, Identified, Protocol } from "../Protocol.ts"
import type { ProtocolContext } from "../ProtocolContext.ts"
import { readFrame } from "../readFrame.ts"
import { acceptTls, type ClientTlsOptions, clientCertProblem, type ServerTls, subjectOf } from "../tls.ts"
import { type BridgeHop, bridgeLogin, type MysqlState, maxHandshakeBytes, maxHandshakePayload } from "./bridgeLogin.ts"
import { makeGreetings, offered } from "./capabilities.ts"
import { mysqlErrorFor, NO_DATABASE_SELECTED, nextServerSequence } from "./errPacket.ts"
import { tapKills } from "./killTap.ts"
import type { ProxyAuth } from "./proxyAuth/served.ts"
import { newScramble } from "./proxyLogin.ts"
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
  /** Logins checked by the proxy (the listener's `auth`): every client is then served from pools (proxyAuth/). */
  readonly proxyAuth?: ProxyAuth | undefined
}

const decodeClient = (buf: Buffer) => decodeMessage(buf, parseClientHandshake, maxHandshakePayload)

const badRequest = (message: string) => proxyError("BAD_REQUEST", "client", message)

export const mysqlProtocol = (ctx: ProtocolContext) => {
  const options: MysqlOptions = {
    name: ctx.name,
    tls: ctx.tls,
    routeBy: (ctx.listener.routeBy ?? "database") as MysqlRouteBy,
    defaultRoute: ctx.listener.defaultRoute,
    upstreamTls: ctx.upstreamTls,
    authTimeoutMs: ctx.config.timeouts.handshake * 1000,
    serverFlavor: ctx.listener.serverFlavor,
    serverVersion: ctx.listener.serverVersion,
    sessions: ctx.shared.mysqlSessions
  }
  const auth = ctx.listener.auth
  if (auth === undefined) return makeMysqlProtocol(options)
  // Logins checked by the proxy: built with the listener's services (RoutingCache, pools), closed with it; its code
  // (pools, sessions, mysql2 for the lookups) is loaded only by a listener that has `auth`.
  return Effect.flatMap(
    Effect.promise(() => import("./proxyAuth/served.ts")),
    ({ makeProxyAuth }) =>
      Effect.map(makeProxyAuth(ctx, auth, options), (proxyAuth) => makeMysqlProtocol({ ...options, proxyAuth }))
  )
}

export const makeMysqlProtocol = (options: MysqlOptions): Protocol => {
  const capabilities = (offered | (options.tls ? Capability.SSL : 0)) >>> 0
  const greetings = makeGreetings(options.serverFlavor ?? "auto", options.serverVersion)
  const sessions = options.sessions ?? new MysqlSessions()
  const hop: BridgeHop = {
    offered: capabilities,
    greetings,
    upstreamTls: options.upstreamTls,
    authTimeoutMs: options.authTimeoutMs
  }

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
    const nonce = newScramble()
    conn.client.write(
      encodePacket(
        encodeHandshakeV10({
          serverVersion: greeting.serverVersion,
          connectionId,
          authPluginData: nonce,
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
    if (options.proxyAuth !== undefined) {
      return yield* options.proxyAuth.identify({
        conn,
        response,
        nonce,
        connectionId,
        toClient,
        clientTls,
        offered: capabilities,
        offeredMariaDb: greeting.mariadbCapabilities,
        tlsSubject: subject,
        sni
      })
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

  return {
    name: options.name ?? "mysql",
    readsHandshake: true,
    identify,
    // The login is bounded below, by a deadline whose error names the side that stopped answering.
    boundsReplay: true,
    replay: (identified, route, backend) => bridgeLogin(hop, identified, route, backend),
    // Logins checked by the proxy: every client is served from the pools (proxyAuth/served.ts), none relayed.
    serves:
      options.proxyAuth === undefined
        ? undefined
        : (identified, route, target) => options.proxyAuth!.serves(identified, route, target),
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
