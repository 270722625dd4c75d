// The socket handlers of every pooled session, whatever its protocol (pooledSession.ts): shared functions that find
// their session through the socket (`_pooled`), so a session holds no closure for them. A client's are attached at
// its start; a server connection's once, the first time a session holds it, and kept for the socket's life
// (`listenServer`): a session that takes or gives the connection back only sets or clears `_pooled`, and while nobody
// holds it they do nothing (the pool's own idle listener reads it then).
import type * as net from "node:net"

/** A held server connection's link, as the handlers see it. */
export interface SocketLink {
  readonly conn: { readonly socket: net.Socket }
}

/** What the handlers and the shared reads (sharedReads.ts) call. */
export interface SocketSession {
  readonly client: net.Socket
  readonly link: SocketLink | undefined
  /** Bytes from the client. */
  clientRead(chunk: Buffer): void
  /** Bytes from the server connection `link` holds. */
  serverRead(link: SocketLink, chunk: Buffer): void
  clientDrained(): void
  serverDrained(): void
  /** The client's FIN (false) or its protocol's goodbye (true). */
  terminate(byMessage: boolean): void
  clientClosed(): void
  serverLost(): void
}

export type Sock = net.Socket & {
  _pooled?: SocketSession | undefined
  /** A server connection's socket has the handlers below (`listenServer`). */
  _pooledServer?: boolean
}

/** Gives a client's socket the session handlers, for its life. */
export const listenClient = (socket: Sock): void => {
  socket.on("data", onClientData)
  socket.on("drain", onClientDrain)
  socket.on("end", onClientEnd)
  socket.on("close", onClientClose)
  socket.on("error", ignoreError)
}

/** Gives a server connection's socket the session handlers, once in its life. */
export const listenServer = (socket: Sock): void => {
  if (socket._pooledServer === true) return
  socket._pooledServer = true
  socket.on("data", onServerData)
  socket.on("drain", onServerDrain)
  socket.on("close", onServerClose)
}

function onClientData(this: Sock, chunk: Buffer) {
  this._pooled?.clientRead(chunk)
}
function onClientDrain(this: Sock) {
  this._pooled?.clientDrained()
}
function onClientEnd(this: Sock) {
  this._pooled?.terminate(false)
}
function onClientClose(this: Sock) {
  this._pooled?.clientClosed()
}
function onServerData(this: Sock, chunk: Buffer) {
  const s = this._pooled
  const link = s?.link
  if (link !== undefined && link.conn.socket === this) s!.serverRead(link, chunk)
}
function onServerDrain(this: Sock) {
  const s = this._pooled
  if (s?.link?.conn.socket === this) s.serverDrained()
}
function onServerClose(this: Sock) {
  const s = this._pooled
  if (s?.link?.conn.socket === this) s.serverLost()
}
function ignoreError() {}
