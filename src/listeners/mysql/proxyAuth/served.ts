// A mysql listener with `auth`: logins checked by the proxy (README "MySQL: logins checked by the proxy"). identify
// greets with the proxy's nonce (mysql.ts), then this file's `identify` checks the client's login itself
// (proxyLogin.ts: the user's hash looked up through the `auth` login, userHashes.ts) and routes it by the database
// of its handshake, or, logged in without one, by its first COM_INIT_DB or USE (firstCommand.ts, the pipeline's idle
// `next`). Then `serves`: every client of such a listener is served by a MysqlSession (pool/session.ts) whose server
// connections come from the pool of its (backend, user, database, flags, collation, TLS) and log in with the stage1
// the login recovered; the first one is taken here, so that the client's login OK carries a real server's status
// and a server's refusal (that backend's password differs: 1045; 1044; 1226 max_user_connections) reaches the client
// in the server's own words.
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import {
  Capability,
  encodeErrPacket,
  encodePacket,
  type HandshakeResponse41,
  hasCapability,
  Status
} from "../../../codec/mysql/index.ts"
import type { VettedEndpoint } from "../../../domain/Endpoint.ts"
import { type ProxyError, proxyError } from "../../../domain/ProxyError.ts"
import type { Route } from "../../../domain/Route.ts"
import { Log, type LogShape } from "../../../services/Log.ts"
import { type CachedRoute, RoutingCache, type RoutingCacheShape } from "../../../services/RoutingCache.ts"
import type { ClientConnection, Identified, ServedSession } from "../../Protocol.ts"
import type { ProtocolContext } from "../../ProtocolContext.ts"
import { serverPoolsOptions } from "../../pool/serverPools.ts"
import { type ClientTlsOptions, upstreamTlsFor } from "../../tls.ts"
import { nextServerSequence } from "../errPacket.ts"
import { firstCommand, type Routed } from "../firstCommand.ts"
import { okPayload } from "../localAnswers.ts"
import { type MysqlPool, poolErrPayload } from "../pool/mysqlPool.ts"
import { listenerMysqlPools, type MysqlPools } from "../pool/mysqlPools.ts"
import type { MysqlServerConn } from "../pool/serverConn.ts"
import type { ProxyLogin } from "../pool/serverLogin.ts"
import { MysqlSession } from "../pool/session.ts"
import { mysqlPoolSettingsOf } from "../pool/settings.ts"
import { checkAnswer, checkLogin, clientHost } from "../proxyLogin.ts"
import type { MysqlSessions } from "../sessions.ts"
import type { MysqlAuthSettings } from "./settings.ts"
import type { MysqlSessionHome, ProxyAuthState } from "./types.ts"
import { UserHashes } from "./userHashes.ts"

export interface ProxyAuthOptions {
  /** The listener's name, for log lines. */
  readonly listener: string
  readonly settings: MysqlAuthSettings
  readonly routeBy: "database" | "user"
  readonly defaultRoute: string | undefined
  /** The listener's `upstreamTls`; a route's `metadata.tls` overrides it (the hash lookup's too). */
  readonly upstreamTls: ClientTlsOptions | undefined
  readonly cache: RoutingCacheShape
  readonly pools: MysqlPools
  readonly log: LogShape
  readonly sessions: MysqlSessions
}

/** What mysql.ts's identify read before the login check: the greeting it sent and the client's answer. */
export interface LoginRead {
  readonly conn: ClientConnection
  readonly response: HandshakeResponse41
  /** The greeting's nonce and connection id. */
  readonly nonce: Buffer
  readonly connectionId: number
  /** Sequence id of the proxy's next packet to the client. */
  readonly toClient: number
  readonly clientTls: boolean
  /** The capabilities and MariaDB extras the greeting offered. */
  readonly offered: number
  readonly offeredMariaDb: number
  readonly tlsSubject: string | undefined
  readonly sni: string | undefined
}

const ER_BAD_DB_ERROR = 1049

/** MariaDB's words for a database it does not have, as the ERR payload. */
const unknownDatabase = (database: string): Buffer =>
  encodeErrPacket({ code: ER_BAD_DB_ERROR, sqlState: "42000", message: `Unknown database '${database}'` })

const noDatabase = encodeErrPacket({ code: 1046, sqlState: "3D000", message: "No database selected" })

/** A pool's failure, answered with the ERR a client should read (the server's own when a server refused). */
const poolFailure = (error: ProxyError): ProxyError =>
  proxyError(error.reason, error.source, error.message, {
    cause: poolErrPayload(error),
    ...(error.clientMessage === undefined ? {} : { clientMessage: error.clientMessage }),
    ...(error.retryAfter === undefined ? {} : { retryAfter: error.retryAfter })
  })

/** The first server connection of a client, from `pool`; the wait is cancelled with the fiber (serve's deadline). */
const acquire = (pool: MysqlPool): Effect.Effect<MysqlServerConn, ProxyError> =>
  Effect.callback<MysqlServerConn, ProxyError>((resume) => {
    const cancel = pool.acquire({
      granted: (conn) => {
        // No session reads it until one starts, an Effect step away: a socket reading shared reads on unless paused
        // (serverConnBase.ts `unlistenIdle`), and what it read would go unheard. The session resumes it.
        conn.socket.pause()
        resume(Effect.succeed(conn))
      },
      failed: (error) => resume(Effect.fail(poolFailure(error)))
    })
    return Effect.sync(cancel)
  })

/** `effect`'s answer as a promise that rejects with its ProxyError itself. */
const promised = <A>(effect: Effect.Effect<A, ProxyError>): Promise<A> =>
  Effect.runPromiseExit(effect).then((exit) => {
    if (Exit.isSuccess(exit)) return exit.value
    const reason = exit.cause.reasons[0]
    throw reason?._tag === "Fail" ? reason.error : new Error("route lookup interrupted")
  })

const identifyLogin = Effect.fnUntraced(function* (options: ProxyAuthOptions, hashes: UserHashes, read: LoginRead) {
  const { conn, response } = read
  const client = conn.client
  const who = conn.who ?? {
    protocol: options.listener,
    remoteAddress: client.remoteAddress ?? "",
    remotePort: client.remotePort ?? 0
  }
  const checked = yield* checkLogin({
    client,
    response,
    nonce: read.nonce,
    toClient: read.toClient,
    host: clientHost(who.remoteAddress),
    lookup: (user) => hashes.lookup(user)
  })
  // A refusal from here on answers the client's last auth packet.
  nextServerSequence.set(client, checked.toClient)
  const login: ProxyLogin = {
    user: checked.user,
    stage1: checked.stage1,
    database: "",
    flags: (response.capabilities & read.offered) >>> 0,
    mariadbCapabilities: response.mariadbCapabilities & read.offeredMariaDb,
    characterSet: response.characterSet,
    maxPacketSize: response.maxPacketSize
  }
  const state = (database: string, owed: ProxyAuthState["owed"], more: Partial<ProxyAuthState> = {}) =>
    ({
      user: checked.user,
      stage1: checked.stage1,
      response,
      database,
      owed,
      connectionId: read.connectionId,
      clientTls: read.clientTls,
      nonce: read.nonce,
      login: { ...login, database },
      ...more
    }) satisfies ProxyAuthState
  const identified = (resourceId: string, s: ProxyAuthState): Identified => ({
    resourceId,
    client,
    tlsSubject: read.tlsSubject,
    sni: read.sni,
    state: s
  })
  const named = hasCapability(response.capabilities, Capability.CONNECT_WITH_DB) ? (response.database ?? "") : ""
  if (options.routeBy === "user") return identified(checked.user, state(named, "login"))
  if (named !== "") return identified(named, state(named, "login"))
  // Logged in without a database: the OK now (the client may idle here), the routing key with its first USE.
  client.write(encodePacket(okPayload(Status.AUTOCOMMIT), checked.toClient))
  const known = (database: string) =>
    Effect.match(options.cache.get(database, { ...who, tlsSubject: read.tlsSubject, sni: read.sni }), {
      onFailure: (e) => e.reason !== "NOT_FOUND",
      onSuccess: () => true
    })
  const next = Effect.map(
    firstCommand(
      {
        client,
        shape: { flags: login.flags, mariadbCapabilities: login.mariadbCapabilities, characterSet: login.characterSet },
        defaultRoute: options.defaultRoute,
        known
      },
      Buffer.alloc(0)
    ),
    (routed: Routed) => {
      const s = state(routed.database, routed.owed, { pending: routed.pending })
      const withCharset = { ...s, login: { ...s.login, characterSet: routed.characterSet } }
      return identified(routed.resourceId, withCharset)
    }
  )
  return { resourceId: "", client, tlsSubject: read.tlsSubject, sni: read.sni, next } satisfies Identified
})

export class ProxyAuth {
  readonly home: MysqlSessionHome
  private readonly options: ProxyAuthOptions
  private readonly hashes: UserHashes

  constructor(options: ProxyAuthOptions) {
    this.options = options
    const { settings, cache, upstreamTls } = options
    this.hashes = new UserHashes(settings, () =>
      promised(cache.get(settings.route)).then(({ route, target }) => ({
        target,
        tls: upstreamTlsFor(route, upstreamTls)
      }))
    )
    this.home = {
      log: options.log,
      listener: options.listener,
      poolFor: (database, login) => this.poolFor(database, login),
      checkUser: async (user, answer, nonce) => checkAnswer(user, answer, nonce, await this.hashes.lookup(user)),
      sessions: options.sessions
    }
  }

  /**
   * identify's rest once the client's HandshakeResponse41 is read: its login checked, then its routing key (the
   * handshake's database or user), or, logged in without a database, the OK and the idle wait for its first USE.
   */
  identify(read: LoginRead): Effect.Effect<Identified, ProxyError> {
    return identifyLogin(this.options, this.hashes, read)
  }

  /**
   * The client's session: its pool, its first server connection (whose status the login's OK carries), then the
   * MysqlSession. A route whose `metadata.pool` is invalid is refused (the detail to the log).
   */
  serves(identified: Identified, route: Route, target: VettedEndpoint): Effect.Effect<ServedSession, ProxyError> {
    const state = identified.state as ProxyAuthState
    const client = identified.client
    const settings = mysqlPoolSettingsOf(route)
    if (typeof settings === "string") {
      return Effect.fail(
        proxyError("INTERNAL", "resolver", settings, {
          clientMessage: `the route of "${route.resourceId}" is misconfigured`
        })
      )
    }
    const pool = this.options.pools.get(target, route, state.login, settings)
    return Effect.map(acquire(pool), (first) => {
      if (state.owed === "login") {
        client.write(encodePacket(okPayload(first.status), nextServerSequence.get(client) ?? 2))
      }
      nextServerSequence.delete(client)
      return new MysqlSession(client, pool, state, this.home, first)
    })
  }

  /** USE of another database mid-session (MysqlSessionHome.poolFor). */
  private async poolFor(database: string, login: ProxyLogin): Promise<MysqlPool | ProxyError> {
    const { routeBy, defaultRoute } = this.options
    // No database (COM_CHANGE_USER without one): the default route's, as for a login without one; else MariaDB's 1046.
    if (routeBy === "database" && database === "" && defaultRoute === undefined) {
      return proxyError("NOT_FOUND", "client", "no database and no default route", { cause: noDatabase })
    }
    const key = routeBy === "user" ? login.user : database === "" ? defaultRoute! : database
    const found = await Effect.runPromise(
      Effect.match(this.options.cache.get(key), {
        onFailure: (e): ProxyError =>
          e.reason === "NOT_FOUND" && routeBy === "database" && database !== ""
            ? proxyError("NOT_FOUND", "client", `no route for database ${database}`, {
                cause: unknownDatabase(database)
              })
            : e,
        onSuccess: (cached): CachedRoute => cached
      })
    )
    if ("reason" in found) return found
    const settings = mysqlPoolSettingsOf(found.route)
    if (typeof settings === "string") {
      return proxyError("INTERNAL", "resolver", settings, {
        clientMessage: `the route of "${found.route.resourceId}" is misconfigured`
      })
    }
    return this.options.pools.get(found.target, found.route, { ...login, database }, settings)
  }

  close(): void {
    this.hashes.close()
    this.options.pools.close()
  }
}

/** With no handshake limit, a pooled server login gets MariaDB's own connect_timeout (10 s). */
const serverLoginSeconds = 10

/**
 * The ProxyAuth of the listener of `ctx`: its RoutingCache (the users' backend, USE lookups), its pools (a group of
 * the BackendPool service), closed with the listener's scope.
 */
export const makeProxyAuth = (
  ctx: ProtocolContext,
  settings: MysqlAuthSettings,
  options: { readonly routeBy: "database" | "user"; readonly defaultRoute?: string | undefined }
) =>
  Effect.gen(function* () {
    const cache = yield* RoutingCache
    const log = yield* Log
    const pools = yield* listenerMysqlPools(ctx.name, serverPoolsOptions(ctx, log, serverLoginSeconds))
    const proxyAuth = new ProxyAuth({
      listener: ctx.name,
      settings,
      routeBy: options.routeBy,
      defaultRoute: options.defaultRoute,
      upstreamTls: ctx.upstreamTls,
      cache,
      pools,
      log,
      sessions: ctx.shared.mysqlSessions
    })
    yield* Effect.addFinalizer(() => Effect.sync(() => proxyAuth.close()))
    return proxyAuth
  })
