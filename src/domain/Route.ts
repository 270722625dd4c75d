// What a Resolver answers for a resource id, and what it is told about the connection asking.
import type { Endpoint } from "./Endpoint.ts"

export interface Route {
  readonly resourceId: string
  readonly endpoint: Endpoint
  readonly metadata: Readonly<Record<string, unknown>>
  /** Seconds to wait for the backend's TCP connect (overrides timeouts.connect). */
  readonly timeout?: number | undefined
}

/** Facts about the client connection, for resolvers whose answer depends on them and for the lifecycle hooks. */
export interface ConnectionInfo {
  readonly protocol: string
  readonly remoteAddress: string
  readonly remotePort: number
  /** Client certificate subject when mTLS terminated here. */
  readonly tlsSubject?: string | undefined
  /** TLS SNI host name when TLS terminated here. */
  readonly sni?: string | undefined
}

/** What `onDisconnect` hears when a proxied connection ends. */
export interface DisconnectInfo extends ConnectionInfo {
  readonly resourceId: string
  readonly endpoint: string
  readonly bytesFromClient: number
  readonly bytesFromBackend: number
  readonly durationMs: number
}
