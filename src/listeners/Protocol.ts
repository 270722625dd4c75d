// What each protocol listener supplies to the shared accept loop: how to find the routing key, and how to say no.

import type * as net from "node:net"
import type { Effect } from "effect"
import type { ProxyError } from "../domain/ProxyError.ts"
import type { Route } from "../domain/Route.ts"

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
}

export interface Protocol {
  readonly name: string
  /** Whether the listener should keep the socket paused until identify reads it (raw TCP never reads). */
  readonly readsHandshake: boolean
  /** identify: read just enough to find the routing key; may answer the client and upgrade to TLS. */
  readonly identify: (client: net.Socket) => Effect.Effect<Identified, ProxyError>
  /** replay: the first bytes the backend gets, after connect. Default: `identified.replay`. */
  readonly replay?: (identified: Identified, route: Route, backend: net.Socket) => Effect.Effect<void, ProxyError>
  /** Answer the client in its own protocol's words, then close (the listener destroys it after a grace period). */
  readonly refuse: (client: net.Socket, error: ProxyError) => void
}
