// One line per protocol: the listener name in the config → where its Protocol factory lives. Loaded only when a
// listener of that name is configured: each worker then holds the code of its own protocols alone (the HTTP engine,
// the MongoDB codec with bson, MySQL and SMTP: 1.4 MB of heap at import, ≈ 1 MB of RSS per process that a
// Postgres-only proxy never uses; it runs one process per 7,800 connections where the fd limit is 20,000).
import type { ListenerName } from "../config/Config.ts"
import type { ProtocolFactory } from "./ProtocolContext.ts"

export const protocols: Readonly<Partial<Record<Exclude<ListenerName, "http">, () => Promise<ProtocolFactory>>>> = {
  tcp: () => import("./tcp.ts").then((m) => m.tcpProtocol),
  postgres: () => import("./postgres/postgres.ts").then((m) => m.postgresProtocol),
  mysql: () => import("./mysql/mysql.ts").then((m) => m.mysqlProtocol),
  smtp: () => import("./smtp/smtp.ts").then((m) => m.smtpProtocol),
  mongodb: () => import("./mongodb/mongodb.ts").then((m) => m.mongodbProtocol)
}

/** HTTP works per request with its own servers, not as a Protocol of the shared byte listener. */
export const httpListener = () => import("./http/HttpListener.ts").then((m) => m.startHttpListener)
