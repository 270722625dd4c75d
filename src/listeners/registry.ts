// One line per protocol: the listener name in the config → the factory that builds its Protocol.
import type { ListenerName } from "../config/Config.ts"
import type { ProtocolFactory } from "./ProtocolContext.ts"
import { postgresProtocol } from "./postgres/postgres.ts"
import { tcpProtocol } from "./tcp.ts"

export const protocols: Readonly<Partial<Record<ListenerName, ProtocolFactory>>> = {
  tcp: tcpProtocol,
  postgres: postgresProtocol
}
