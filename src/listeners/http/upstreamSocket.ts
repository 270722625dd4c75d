// A backend connection's socket as the HTTP pools use it: the states of its UpstreamConn, how it is dialled, and the
// listeners every such socket shares (they find their connection through one field: no closure per connection).
import type * as net from "node:net"
import type * as tls from "node:tls"
import { type DialProfile, dialProfile } from "../dial.ts"
import { sharedReadBuffer } from "./exchange.ts"
import type { UpstreamConn } from "./upstreamConn.ts"

/** The states of an UpstreamConn, in the order it goes through them (GONE: closed, or a tunnel's after a 101). */
export const CONNECTING = 0
export const IDLE = 1
export const HEAD = 2
export const BODY = 3
export const GONE = 4

export type UpSocket = net.Socket & { _up?: UpstreamConn }

function onUpData(this: UpSocket, chunk: Buffer) {
  this._up!.data(chunk)
}
function onUpRead(this: UpSocket, nread: number, buf: Buffer): boolean {
  const up = this._up!
  // After a 101 the socket belongs to the tunnel, which reads `data` events.
  if (up.phase === GONE) this.emit("data", Buffer.from(buf.subarray(0, nread)))
  else up.data(buf.subarray(0, nread))
  return true
}
function onUpDrain(this: UpSocket) {
  const ex = this._up!.ex
  if (ex !== null) ex.client.upstreamDrained(ex)
}
function onUpError(this: UpSocket, err: Error) {
  this._up!.error ??= err
}
function onUpClose(this: UpSocket) {
  this._up!.closed()
}
function onUpTimeout(this: UpSocket) {
  this._up!.timedOut()
}
function ignore() {}

/** Once dialled: the connection hears its socket. */
export const listen = (s: UpSocket): void => {
  s.on("error", onUpError)
  s.on("close", onUpClose)
  s.on("timeout", onUpTimeout)
  s.on("data", onUpData)
  s.on("drain", onUpDrain)
}

/** After a 101: the socket is the tunnel's, which brings its own listeners (errors are ignored until then). */
export const unlisten = (s: UpSocket): void => {
  s.off("data", onUpData)
  s.off("drain", onUpDrain)
  s.off("error", onUpError)
  s.off("close", onUpClose)
  s.off("timeout", onUpTimeout)
  s.setTimeout(0)
  s.on("error", ignore)
}

const sharedReads: net.OnReadOpts = { buffer: sharedReadBuffer, callback: onUpRead as net.OnReadOpts["callback"] }

/**
 * How a pool's connections are dialled: plain ones read into the shared buffer; no TCP keep-alive (the pool closes
 * idle connections itself, `upstream.keepAliveTimeout`); a FIN from the backend ends the connection.
 */
export const upstreamProfile = (tlsOptions: tls.ConnectionOptions | undefined): DialProfile =>
  dialProfile({ allowHalfOpen: false, keepAlive: false, onread: sharedReads, tls: tlsOptions })
