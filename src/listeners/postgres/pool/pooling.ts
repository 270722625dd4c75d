// Transaction pooling for one postgres listener (`Protocol.serves`): for a route whose `metadata.pool` says
// transaction, the rest of a client's startup is the proxy's own — the role's secret looked up through the route's
// `auth` login, the client authenticated (clientAuth.ts), the pool of its (backend, database, role) given the keys
// its server connections log in with — and the client is then served by a PooledSession instead of a relay.
import type * as net from "node:net"
import * as Effect from "effect/Effect"
import { encodeNegotiateProtocolVersion } from "../../../codec/pg/SessionMessages.ts"
import type { VettedEndpoint } from "../../../domain/Endpoint.ts"
import { type ProxyError, proxyError } from "../../../domain/ProxyError.ts"
import type { Route } from "../../../domain/Route.ts"
import type { LogShape } from "../../../services/Log.ts"
import type { ServedSession } from "../../Protocol.ts"
import { type ClientTlsOptions, upstreamTlsFor } from "../../tls.ts"
import { fatal, poolFailure, refusedAs } from "./answers.ts"
import { authenticateClient, LoginOutput } from "./clientAuth.ts"
import type { PgPool } from "./pgPool.ts"
import type { PgPools } from "./pgPools.ts"
import { loginSeries } from "./poolMetrics.ts"
import type { SecretLookup } from "./secrets.ts"
import type { ServerLogin } from "./serverConn.ts"
import { PooledSession, type SessionHome } from "./session.ts"
import { type PooledRoute, poolSettingsOf } from "./settings.ts"
import { initialTracked, trackedIndex } from "./tracked.ts"

/** What identify read of a client's startup, as the pooled path needs it. */
export interface PooledStartup {
  /** The startup parameters the backend would get (user rewritten by `routeBy: user-suffix`). */
  readonly params: ReadonlyMap<string, string>
  /** The protocol minor version the client asked for. */
  readonly minor: number
  /** Bytes the client sent after its startup message. */
  readonly rest: Buffer
}

/**
 * Startup parameters a pooled client may send besides the tracked ones (tracked.ts) and the route's
 * `pool.ignoreStartupParameters` (accepted and dropped): anything else would have to hold on every server connection
 * the client lands on, which the proxy cannot promise, so it is refused as PgBouncer refuses it (`unsupported startup
 * parameter`). `_pq_.` protocol options are declined with NegotiateProtocolVersion.
 */
const plainParameters = new Set(["user", "database"])

const unsupportedParameter = (
  params: ReadonlyMap<string, string>,
  ignored: ReadonlyArray<string>
): string | undefined => {
  for (const name of params.keys()) {
    if (plainParameters.has(name) || name.startsWith("_pq_.") || trackedIndex(name) >= 0) continue
    const lower = name.toLowerCase()
    if (!ignored.some((i) => i.toLowerCase() === lower)) return name
  }
  return undefined
}

export interface PoolingOptions {
  readonly pools: PgPools
  readonly log: LogShape
  /** The listener's name, for log lines. */
  readonly listener: string
  /** The listener's `upstreamTls` (a route's `metadata.tls` overrides it), for the secret lookup. */
  readonly upstreamTls: ClientTlsOptions | undefined
}

export class Pooling {
  readonly options: PoolingOptions
  readonly home: SessionHome
  /**
   * Made with the first pooled client: the lookup uses the `pg` library (≈ 10 MB of RSS once loaded), which a proxy
   * with no pooled route never needs.
   */
  private lookup: Promise<SecretLookup> | undefined = undefined
  /** Counts a client refused by the proxy's authentication; set with the lookup (poolMetrics.ts). */
  loginFailed: () => void = () => {}
  private closed = false
  /** Each pool's server parameters at login, read once from its first server connection. */
  private readonly serverParams = new WeakMap<PgPool, ReadonlyMap<string, string>>()

  constructor(options: PoolingOptions) {
    this.options = options
    this.home = { log: options.log, listener: options.listener }
  }

  /**
   * The rest of the startup for a client of a pooled route, ending in its session; undefined when the route is not
   * pooled (the usual relay). A route whose pool metadata is invalid is refused: the detail goes to the log.
   */
  serves(
    client: net.Socket,
    startup: PooledStartup,
    route: Route,
    target: VettedEndpoint
  ): Effect.Effect<ServedSession, ProxyError> | undefined {
    const settings = poolSettingsOf(route)
    if (settings === undefined) return undefined
    if (typeof settings === "string") {
      return Effect.fail(
        proxyError("INTERNAL", "resolver", settings, {
          clientMessage: `the route of "${route.resourceId}" is misconfigured`
        })
      )
    }
    const out = new LoginOutput(client)
    // Failed, timed out or shut down: what the login held back goes out first, ahead of the refusal (if any).
    return Effect.onError(serve(this, out, startup, route, target, settings), () => Effect.sync(() => out.flush()))
  }

  /**
   * The role's secret. A lookup that cannot be made is the backend's failure (08006, nothing internal named). A
   * database the lookup login cannot open reads as an unknown role: PostgreSQL says "does not exist" only after
   * authentication, and the proxy cannot authenticate without a secret.
   */
  secretOf(
    target: VettedEndpoint,
    route: Route,
    database: string,
    user: string,
    settings: PooledRoute
  ): Effect.Effect<string | undefined, ProxyError> {
    const { upstreamTls, log, listener } = this.options
    if (this.closed) return Effect.fail(proxyError("UNAVAILABLE", "internal", "the listener is stopping"))
    if (this.lookup === undefined) {
      let loaded: SecretLookup | undefined
      this.loginFailed = loginSeries(listener, () => loaded?.stats())
      this.lookup = import("./secrets.ts").then((m) => (loaded = new m.SecretLookup()))
    }
    const lookup = this.lookup
    return Effect.tryPromise({
      try: async () => (await lookup).lookup(target, database, user, settings.auth, upstreamTlsFor(route, upstreamTls)),
      catch: (e) => e
    }).pipe(
      Effect.catch((e) => {
        // A SecretLookupError with the backend's SQLSTATE (the class is in the module loaded on demand).
        if (e instanceof Error && e.name === "SecretLookupError" && (e as { code?: unknown }).code === "3D000") {
          log.info("pg secret lookup: no such database", { listener, database, error: e.message })
          return Effect.succeed(undefined)
        }
        const why = e instanceof Error ? e.message : String(e)
        return Effect.fail(proxyError("CONNECT_FAILED", "backend", why, { cause: e }))
      })
    )
  }

  /** What a new client is told of its server (ParameterStatus), from the pool's first server connection. */
  serverParameters(pool: PgPool): Effect.Effect<ReadonlyMap<string, string>, ProxyError> {
    const known = this.serverParams.get(pool)
    if (known !== undefined) return Effect.succeed(known)
    const cache = this.serverParams
    return Effect.callback<ReadonlyMap<string, string>, ProxyError>((resume) => {
      const cancel = pool.acquire({
        granted: (conn) => {
          // The first answer stays: a connection used since may carry another client's SET.
          const params = cache.get(pool) ?? new Map(conn.parameters)
          cache.set(pool, params)
          pool.release(conn)
          resume(Effect.succeed(params))
        },
        failed: (error) => resume(Effect.fail(poolFailure(error)))
      })
      return Effect.sync(cancel)
    })
  }

  close(): void {
    this.options.pools.close()
    this.closed = true
    void this.lookup?.then((l) => l.close())
  }
}

const serve = Effect.fnUntraced(function* (
  pooling: Pooling,
  out: LoginOutput,
  startup: PooledStartup,
  route: Route,
  target: VettedEndpoint,
  settings: PooledRoute
) {
  const client = out.client
  const params = startup.params
  const user = params.get("user") ?? ""
  const database = params.get("database") || user
  const unsupported = unsupportedParameter(params, settings.pool.ignoreStartupParameters)
  if (unsupported !== undefined) {
    const message = `unsupported startup parameter: ${unsupported}`
    return yield* refusedAs("BAD_REQUEST", message, fatal("08P01", message))
  }
  const options = [...params.keys()].filter((name) => name.startsWith("_pq_."))
  if (startup.minor > 0 || options.length > 0) out.hold(encodeNegotiateProtocolVersion(0, options))
  if (startup.rest.length > 0) client.unshift(startup.rest)
  const secret = yield* pooling.secretOf(target, route, database, user, settings)
  const credentials = yield* Effect.tapError(authenticateClient(out, user, secret), (e) =>
    // A wrong password or unknown role (28P01), not a client that left or broke the protocol.
    e.reason === "FORBIDDEN" ? Effect.sync(pooling.loginFailed) : Effect.void
  )
  const login: ServerLogin = { user, database, params: new Map(), ...credentials }
  const pool = pooling.options.pools.get(target, route, login, settings.pool)
  const server = yield* pooling.serverParameters(pool)
  return new PooledSession(client, pool, pooling.home, initialTracked(server, params), server, out.take())
})
