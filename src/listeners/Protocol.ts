// What each protocol supplies to the byte listeners' pipeline (src/pipeline): its identify, replay and relay watcher,
// and how to say no. The pipeline runs the phases, bounds each by its deadline, counts, logs and closes.

import type * as net from "node:net"
import type * as Effect from "effect/Effect"
import type { VettedEndpoint } from "../domain/Endpoint.ts"
import type { ProxyError } from "../domain/ProxyError.ts"
import type { ConnectionInfo, Route } from "../domain/Route.ts"
import type { RelayTotals } from "../relay/relay.ts"

/** The client side of one connection. identify replaces `client` when it upgrades to TLS, so errors go the right way. */
export interface ClientConnection {
  client: net.Socket
  /** Who the client is when a trusted PROXY header named it (read before identify); else undefined: the socket's peer. */
  readonly who?: ConnectionInfo | undefined
}

/** The identify phase's answer. */
export interface Identified {
  /** The routing key handed to the RoutingCache. */
  readonly resourceId: string
  /** The socket to relay: the accepted one, or the TLSSocket it was upgraded to. */
  readonly client: net.Socket
  /** Client certificate subject / SNI when TLS terminated here: passed to the Resolver. */
  readonly tlsSubject?: string | undefined
  readonly sni?: string | undefined
  /** Bytes read from the client during identify that the backend must see first. */
  readonly replay?: Buffer | undefined
  /** Skip resolve and vet: dial this address, vetted earlier (e.g. a Postgres cancel request for a known session). */
  readonly target?: VettedEndpoint | undefined
  /** Protocol state carried from identify to replay/relaying (e.g. the parsed startup message). */
  readonly state?: unknown
  /**
   * identify is not over: the client is logged in (the protocol answered it) and waits, idle, before it names its
   * routing key (a MySQL client that logs in without a database and sends `USE db` later). The pipeline runs `next`
   * bounded by timeouts.idle (0 = none) instead of timeouts.handshake, and goes on with its answer in place of this
   * one, whose resourceId is not used (src/pipeline/identify.ts, `identifyNext`).
   */
  readonly next?: Effect.Effect<Identified, ProxyError> | undefined
}

/** A protocol's watcher of one relayed connection (see `Protocol.relaying`). */
export interface RelayWatch {
  readonly closed: () => void
  /**
   * Takes the relay's place on the client's `data` events (with the client socket as `this`): it writes what it
   * passes to the backend itself, pausing the client when the backend's buffer is full (the backend's `drain`
   * resumes it). One shared function; per-connection state goes on the socket. For the MySQL KILL tap.
   */
  readonly clientData?: ((this: net.Socket, chunk: Buffer) => void) | undefined
}

/**
 * A client the protocol serves itself once its handshake is done, with no backend socket of its own (Postgres
 * transaction pooling: server connections come from a pool, one per transaction). The pipeline counts, limits, logs
 * and closes it as it does a relayed connection.
 */
export interface ServedSession {
  /**
   * The relay phase starts: serve the client until it is gone, then call `closed` once with its byte totals and
   * `state` (one handler per listener: the session holds no closure for it).
   */
  start<S>(closed: (totals: RelayTotals, state: S) => void, state: S): void
  /** The client will not be served after all (gone before the relay started, or shutdown): let go of what it holds. */
  destroy(): void
}

export interface Protocol {
  readonly name: string
  /** Whether identify reads from the socket (raw TCP does not: its socket stays paused until the relay). */
  readonly readsHandshake: boolean
  /**
   * Set when every connection goes to this one resource and identify reads nothing, replays nothing and answers
   * nothing (tcp with a fixed route): the pipeline may then skip the handshake fiber while the route is cached
   * (src/pipeline/fast.ts).
   */
  readonly fixedRoute?: string | undefined
  /**
   * identify in the callback form, for a protocol that only peeks (tcp `route: sni`): `done` once, unless the returned
   * cancel comes first. With it the pipeline skips the handshake fiber while the route found is cached; it bounds
   * the peek by timeouts.handshake itself.
   */
  readonly identifyNow?:
    | ((
        client: net.Socket,
        done: (identified: Identified | undefined, error: ProxyError | undefined) => void
      ) => () => void)
    | undefined
  /**
   * identify: read just enough to find the routing key; may answer the client and upgrade to TLS. The pipeline
   * bounds it by timeouts.handshake (src/pipeline/identify.ts): no deadline of its own needed.
   */
  readonly identify: (conn: ClientConnection) => Effect.Effect<Identified, ProxyError>
  /**
   * replay: the first bytes the backend gets, after connect; returns the socket to relay with (a TLSSocket when it
   * started TLS to the backend). Default: write `identified.replay` to the dialed socket.
   */
  readonly replay?: (identified: Identified, route: Route, backend: net.Socket) => Effect.Effect<net.Socket, ProxyError>
  /**
   * The pipeline bounds replay by timeouts.handshake (src/pipeline/replay.ts). A protocol whose replay bounds each
   * of its waits itself, with errors that say which wait it was (mysql: backend or client; smtp: the greeting), sets
   * this: the pipeline's deadline then only backs those up (timeouts.connect + timeouts.handshake) instead of racing
   * them.
   */
  readonly boundsReplay?: boolean | undefined
  /**
   * Called as the relay starts, to watch the first messages (e.g. Postgres BackendKeyData) or the client's commands
   * (MySQL KILL). What it returns is told when the relay has closed: one object per connection rather than a close
   * listener and its closure.
   */
  readonly relaying?: (identified: Identified, backend: net.Socket, target: VettedEndpoint) => RelayWatch | undefined
  /**
   * After resolve, vet and admit: the rest of the client's handshake done by the protocol itself, ending in a session
   * it serves without a backend socket of its own, in place of connect → replay → relay (undefined: the usual path
   * for this client). The pipeline bounds it by timeouts.handshake and starts the session at relay start.
   */
  readonly serves?:
    | ((
        identified: Identified,
        route: Route,
        target: VettedEndpoint,
        who: ConnectionInfo
      ) => Effect.Effect<ServedSession, ProxyError> | undefined)
    | undefined
  /** Answer the client in its own protocol's words, then close (the listener destroys it after a grace period). */
  readonly refuse: (client: net.Socket, error: ProxyError) => void
}
