// The socket handlers of every pooled session: shared functions that find their session through the socket
// (`_pooled`), so a session holds no closure for them. A client's are attached at its start; a server connection's
// once, the first time a session holds it, and kept for the socket's life (`listenServer`): a session that takes or
// gives the connection back only sets or clears `_pooled`, and while nobody holds it they do nothing (the pool's own
// idle listener reads it then).
import type * as net from "node:net"
import { fromClient } from "./clientStream.ts"
import { fromServer } from "./serverStream.ts"
import type { PooledSession } from "./session.ts"
import type { Tracked } from "./tracked.ts"

export type Sock = net.Socket & {
  _pooled?: PooledSession | undefined
  /** A server connection's socket has the handlers below (`listenServer`). */
  _pooledServer?: boolean
  /**
   * A server connection given back in transaction mode: the tracked values of its last holder, which its own now
   * match (session.ts `dropServer`); a next holder with the same ones needs no SET. Cleared when it is handed out.
   */
  _pooledAligned?: Tracked | undefined
}

/** Gives a server connection's socket the session handlers, once in its life. */
export const listenServer = (socket: Sock): void => {
  if (socket._pooledServer === true) return
  socket._pooledServer = true
  socket.on("data", onServerData)
  socket.on("drain", onServerDrain)
  socket.on("close", onServerClose)
}

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
  const s = this._pooled
  if (s?.link?.conn.socket === this) s.serverDrained()
}
export function onServerClose(this: Sock) {
  const s = this._pooled
  if (s?.link?.conn.socket === this) s.serverLost()
}
export function ignoreError() {}
