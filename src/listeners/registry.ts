// One line per protocol: the listener name in the config → the factory that builds its Protocol.
import type { ListenerName } from "../config/Config.ts"
import { mongodbProtocol } from "./mongodb/mongodb.ts"
import { mysqlProtocol } from "./mysql/mysql.ts"
import type { ProtocolFactory } from "./ProtocolContext.ts"
import { postgresProtocol } from "./postgres/postgres.ts"
import { smtpProtocol } from "./smtp/smtp.ts"
import { tcpProtocol } from "./tcp.ts"

export const protocols: Readonly<Partial<Record<ListenerName, ProtocolFactory>>> = {
  tcp: tcpProtocol,
  postgres: postgresProtocol,
  mysql: mysqlProtocol,
  smtp: smtpProtocol,
  mongodb: mongodbProtocol
}
