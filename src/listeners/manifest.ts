// The contract of a listener type: everything polyproxy knows of a protocol, in one small object per protocol
// (src/listeners/<p>/index.ts). The config decoder reads its keys, Proxy.ts starts it. A manifest is imported by the
// config decoder and by every process, so it stays light: its `start` imports the protocol's code when a listener of
// its type starts (see registry.ts).
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { ListenerConfig } from "../config/Config.ts"
import type { Obj } from "../config/fields.ts"
import type { ProxyError } from "../domain/ProxyError.ts"
import type { BackendPool } from "../services/BackendPool.ts"
import type { CircuitBreaker } from "../services/CircuitBreaker.ts"
import type { ColdStart } from "../services/ColdStart.ts"
import type { Log } from "../services/Log.ts"
import type { Metrics } from "../services/Metrics.ts"
import type { Resolver } from "../services/Resolver.ts"
import type { RoutingCache } from "../services/RoutingCache.ts"
import type { SharedCache } from "../services/SharedCache.ts"
import type { SsrfGuard } from "../services/SsrfGuard.ts"
import type { Admission } from "./Admission.ts"
import type { RunningListener } from "./Listener.ts"
import type { Protocol } from "./Protocol.ts"
import type { ProtocolContext } from "./ProtocolContext.ts"

/** The services a listener may use: those of the proxy's context. */
export type ListenerServices =
  | BackendPool
  | Resolver
  | RoutingCache
  | SsrfGuard
  | Metrics
  | Log
  | CircuitBreaker
  | ColdStart
  | SharedCache

/** What a type's option decoder returns: merged into the listener's config. A program's own type uses `options`. */
export type ListenerOptions = Partial<
  Pick<
    ListenerConfig,
    "route" | "defaultRoute" | "http" | "maxRoutingCommand" | "serverFlavor" | "serverVersion" | "auth" | "options"
  >
>

export interface ListenerManifest {
  /** What a config names it by: `type: <type>`, or the key of the short form, `listeners: { <type>: { … } }`. */
  readonly type: string
  /** The `protocol` label of its metrics and logs when the config sets none (for raw tcp, the port's). */
  readonly label: string | ((port: number) => string)
  /**
   * The handshake parts a config may route by (`routeBy`), the default first. A type that has them also takes
   * `upstreamTls` and `defaultRoute`.
   */
  readonly routeBy?: ReadonlyArray<string> | undefined
  /**
   * Its own config keys beyond those every listener has (host, port, tls, maxConnections, proxyProtocol,
   * trustedProxies, protocol), and their decoder: `o` is the listener's mapping, `key` its path for errors (throw
   * a ConfigError naming the key), `baseDir` the config file's folder (for relative paths).
   */
  readonly options?:
    | {
        readonly keys: ReadonlyArray<string>
        readonly decode: (o: Obj, key: string, baseDir: string) => ListenerOptions
      }
    | undefined
  /** Starts one listener of this type in the proxy's scope (closing it stops the listener). */
  readonly start: (
    ctx: ProtocolContext,
    admission: Admission
  ) => Effect.Effect<RunningListener, ProxyError, ListenerServices | Scope.Scope>
}

/**
 * A protocol for one listener: built at once, or after loading something (tcp's first-bytes extractor) or with the
 * listener's services and scope (postgres: its server-connection pools, closed with the listener).
 */
export type ProtocolLoader = (
  ctx: ProtocolContext
) => Protocol | Effect.Effect<Protocol, ProxyError, ListenerServices | Scope.Scope>

/**
 * `start` for a protocol on the shared connection pipeline (accept, identify, resolve, vet, admit, connect, replay,
 * relay, close): the protocol says how to identify, replay and refuse; the pipeline does the rest. `load` imports the
 * protocol's code, the first time a listener of the type starts.
 */
export const protocolListener =
  (load: () => Promise<ProtocolLoader>): ListenerManifest["start"] =>
  (ctx, admission) =>
    Effect.gen(function* () {
      const [make, { startListener }] = yield* Effect.promise(() => Promise.all([load(), import("./Listener.ts")]))
      const made = make(ctx)
      const protocol: Protocol = Effect.isEffect(made) ? yield* made : made
      const { timeouts, log, coldStart } = ctx.config
      // The pipeline names its metrics and log lines after `protocol.name`: the listener's, whatever the type wrote.
      const named = protocol.name === ctx.name ? protocol : { ...protocol, name: ctx.name }
      return yield* startListener(named, ctx.listener, timeouts, admission, log, coldStart.timeout)
    })
