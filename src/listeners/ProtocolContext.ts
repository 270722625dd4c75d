// What a protocol factory gets from the composition root: its listener's config and the TLS material, loaded once.
import type { Config, ListenerConfig, ListenerName } from "../config/Config.ts"
import type { MysqlSessions } from "./mysql/sessions.ts"
import type { Protocol } from "./Protocol.ts"
import type { CancelKeys } from "./postgres/CancelKeys.ts"
import type { ClientTlsOptions, ServerTls } from "./tls.ts"

export interface ProtocolContext {
  readonly name: ListenerName
  readonly listener: ListenerConfig
  readonly config: Config
  /** TLS to terminate: the listener's own `tls` or the shared one; undefined = plain text only. */
  readonly tls: ServerTls | undefined
  /** TLS towards backends (`listeners.NAME.upstreamTls`); a route's `metadata.tls` may override it. */
  readonly upstreamTls: ClientTlsOptions | undefined
  /** State shared by every listener of this process. */
  readonly shared: { readonly cancelKeys: CancelKeys; readonly mysqlSessions: MysqlSessions }
}

export type ProtocolFactory = (ctx: ProtocolContext) => Protocol
