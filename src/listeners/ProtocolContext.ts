// What a protocol factory gets from the composition root: its listener's config and the TLS material, loaded once.
import type { Config, ListenerConfig, ListenerName } from "../config/Config.ts"
import type { MysqlSessions } from "./mysql/sessions.ts"
import type { Protocol } from "./Protocol.ts"
import type { CancelKeys } from "./postgres/CancelKeys.ts"
import type { FirstBytesExtractor } from "./tcp/firstBytes.ts"
import type { ClientTlsOptions, ServerTls } from "./tls.ts"

export interface ProtocolContext {
  /** The listener's name (its key under `listeners`): what metrics, logs and /readyz call it. */
  readonly name: ListenerName
  /** Its type (`listener.type`): which manifest started it. */
  readonly type: string
  readonly listener: ListenerConfig
  readonly config: Config
  /** TLS to terminate: the listener's own `tls` or the shared one; undefined = plain text only. */
  readonly tls: ServerTls | undefined
  /** TLS towards backends (`listeners.NAME.upstreamTls`); a route's `metadata.tls` may override it. */
  readonly upstreamTls: ClientTlsOptions | undefined
  /** State shared by every listener of this process. */
  readonly shared: {
    readonly cancelKeys: CancelKeys
    readonly mysqlSessions: MysqlSessions
    /** RunOptions.firstBytes: routes every tcp listener by the client's first bytes, whatever its `route` says. */
    readonly firstBytes?: FirstBytesExtractor | undefined
  }
}

export type ProtocolFactory = (ctx: ProtocolContext) => Protocol
