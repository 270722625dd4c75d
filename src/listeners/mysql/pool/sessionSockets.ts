// The socket handlers of every MySQL pooled session: shared functions that find their session through the socket
// (`_mysql`), so a session holds no closure for them (session.ts attaches and removes them).
import type * as net from "node:net"
import { fromClient } from "./clientStream.ts"
import { fromServer } from "./serverStream.ts"
import type { MysqlSession } from "./session.ts"

export type Sock = net.Socket & { _mysql?: MysqlSession | undefined }

export function onClientData(this: Sock, chunk: Buffer) {
  const s = this._mysql
  if (s !== undefined) fromClient(s, chunk)
}
export function onClientDrain(this: Sock) {
  this._mysql?.clientDrained()
}
export function onClientEnd(this: Sock) {
  this._mysql?.terminate()
}
export function onClientClose(this: Sock) {
  this._mysql?.clientClosed()
}
export function onServerData(this: Sock, chunk: Buffer) {
  const s = this._mysql
  const link = s?.link
  if (link !== undefined && link.conn.socket === this) fromServer(s!, link, chunk)
}
export function onServerDrain(this: Sock) {
  this._mysql?.serverDrained()
}
export function onServerClose(this: Sock) {
  const s = this._mysql
  if (s?.link !== undefined && s.link.conn.socket === this) s.serverLost()
}
export function ignoreError() {}
