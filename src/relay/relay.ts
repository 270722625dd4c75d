// Socket-to-socket splice for the relay phase. No Effect, Promise, closure or copy per chunk: the handlers below are
// shared by every connection and find their peer through one field on the socket, so a relayed pair costs two
// sockets and one small Relay object. `data`/`drain` with pause/resume holds about half the heap of `pipe()`.
import type * as net from "node:net"

/** Byte totals handed to `onClose` once both sockets are gone. */
export interface RelayTotals {
  readonly bytesFromClient: number
  readonly bytesFromBackend: number
  /** The first socket error, if the relay ended because of one. */
  readonly error: Error | undefined
}

type Side = net.Socket & { _relay?: Relay<unknown>; _peer?: Side }

class Relay<S> {
  ended = 0 // sides whose readable half has ended (0..2)
  closed = 0
  error: Error | undefined = undefined
  client: Side
  backend: Side
  onClose: (totals: RelayTotals, state: S) => void
  state: S
  constructor(client: Side, backend: Side, onClose: (totals: RelayTotals, state: S) => void, state: S) {
    this.client = client
    this.backend = backend
    this.onClose = onClose
    this.state = state
  }
}

function onData(this: Side, chunk: Buffer) {
  // write() returning false means the peer's buffer is over its high-water mark: stop reading until it drains.
  if (!this._peer!.write(chunk)) this.pause()
}

function onDrain(this: Side) {
  this._peer!.resume()
}

function onEnd(this: Side) {
  // Half-close: this side finished sending, so finish the peer's writable side once its buffer is flushed;
  // the other direction keeps flowing until it ends too.
  this._relay!.ended++
  this._peer!.end()
}

function onError(this: Side, err: Error) {
  const relay = this._relay!
  relay.error ??= err
  this._peer!.destroy()
}

function onClose(this: Side) {
  const relay = this._relay!
  // A side that closed before both directions ended was torn down (reset, destroy, timeout): take the peer with it.
  // After a clean double half-close the peer closes by itself once its last bytes are written.
  if (relay.ended < 2) this._peer!.destroy()
  if (++relay.closed === 2) {
    const client = relay.client
    const backend = relay.backend
    relay.onClose(
      { bytesFromClient: client.bytesRead, bytesFromBackend: backend.bytesRead, error: relay.error },
      relay.state
    )
    // Break the cycle so a late reference to one socket does not keep the other alive.
    client._peer = undefined
    backend._peer = undefined
  }
}

function onTimeout(this: Side) {
  this.destroy()
}

const attach = (side: Side, peer: Side, relay: Relay<unknown>) => {
  side._relay = relay
  side._peer = peer
  side.on("data", onData)
  side.on("drain", onDrain)
  side.on("end", onEnd)
  side.on("error", onError)
  side.on("close", onClose)
}

export interface RelayOptions {
  /** Milliseconds without traffic on a socket before both are closed; 0 = never. */
  readonly idleTimeoutMs?: number
}

/**
 * Relays bytes both ways until both sockets have closed, then calls `onClose` once with the byte totals and `state`.
 * Pass one `onClose` for many connections and keep per-connection facts in `state`: a closure per connection would
 * hold its whole scope for the connection's life.
 * Both sockets must have been created with `allowHalfOpen: true` so that a FIN from one side is passed on as a FIN,
 * not turned into a full close. Both must still be open (check `destroyed` first); bytes already buffered in them
 * flow on once this resumes them.
 */
export const relay = <S = undefined>(
  client: net.Socket,
  backend: net.Socket,
  onClose: (totals: RelayTotals, state: S) => void,
  options: RelayOptions = {},
  state?: S
): void => {
  const r = new Relay<S>(client, backend, onClose, state as S)
  attach(client, backend, r as Relay<unknown>)
  attach(backend, client, r as Relay<unknown>)
  if (options.idleTimeoutMs !== undefined && options.idleTimeoutMs > 0) {
    client.setTimeout(options.idleTimeoutMs, onTimeout)
    backend.setTimeout(options.idleTimeoutMs, onTimeout)
  }
  client.resume()
  backend.resume()
}
