// The socket handlers of every pooled session: shared functions that find their session through the socket
// (`_pooled`), so a session holds no closure for them (session.ts attaches and removes them).
import type * as net from "node:net"
import { fromClient } from "./clientStream.ts"
import { fromServer } from "./serverStream.ts"
import type { PooledSession } from "./session.ts"

export type Sock = net.Socket & { _pooled?: PooledSession | undefined }

export function onClientData(this: Sock, chunk: Buffer) {
  const s = this._pooled
  if (s !== undefined) fromClient(s, chunk)
}
export function onClientDrain(this: Sock) {
  this._pooled?.clientDrained()
}
export function onClientEnd(this: Sock) {
  this._pooled?.terminate(false)
}
export function onClientClose(this: Sock) {
  this._pooled?.clientClosed()
}
export function onServerData(this: Sock, chunk: Buffer) {
  const s = this._pooled
  const link = s?.link
  if (link !== undefined && link.conn.socket === this) fromServer(s!, link, chunk)
}
export function onServerDrain(this: Sock) {
  this._pooled?.serverDrained()
}
export function onServerClose(this: Sock) {
  this._pooled?.serverLost()
}
export function ignoreError() {}
