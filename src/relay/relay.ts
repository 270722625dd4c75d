// Socket-to-socket splice for the relay phase. No Effect, Promise, closure or allocation per chunk (a dialled backend's
// reads are copied once instead: see `relayReads`): the handlers below are
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

// Issue 11: Node reads every chunk into a new Buffer, an external ArrayBuffer; in bulk those alone set off about ten
// full GCs a second (V8 collects after every 64 MB of external memory). A socket that only the relay reads, one we
// create (`relayReads`), reads instead into `readInto`, one buffer for all of them: each read's bytes are handled in
// its callback, before any other read can overwrite them. They cannot be written from there (a write the kernel
// does not take at once keeps pointing into its buffer, and another socket's read would overwrite it), so they are
// copied to `slab`, which nothing reads into. A write left pending keeps its bytes of the slab; the next chunks go
// after them, and once the slab is full a new one is taken (the old one lives as long as its writes).
const readSize = 65536
const readInto = Buffer.allocUnsafeSlow(readSize)
let slab = Buffer.allocUnsafeSlow(readSize)
let slabUsed = 0

function onReadInto(this: Side, nread: number, buf: Uint8Array): boolean {
  const peer = this._peer!
  if (slabUsed + nread > slab.length) {
    slab = Buffer.allocUnsafeSlow(readSize)
    slabUsed = 0
  }
  slab.set(buf.subarray(0, nread), slabUsed)
  const written = peer.write(slab.subarray(slabUsed, slabUsed + nread))
  // Bytes still queued (these or earlier ones, which these then wait behind): keep them.
  if (peer.writableLength > 0) slabUsed += nread
  if (!written) this.pause()
  return true
}

/**
 * `onread` for a socket that only the relay will read (the backend we dial): reads go to one shared buffer instead of
 * a new Buffer each. Create the socket paused (`pause()` before `connect`) so nothing is read before the relay
 * resumes it. Node calls the callback with the socket as `this` (spec/relay/relay.spec.ts holds it to that).
 */
export const relayReads: net.OnReadOpts = {
  buffer: readInto,
  callback: onReadInto
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

/** Error listeners that only keep a socket from throwing until the relay has its own (see `errorPlaceholder`). */
const placeholders = new WeakSet<(...args: Array<never>) => void>()

/**
 * Marks a shared `error` listener that the relay takes the place of when it attaches: the socket then keeps one
 * listener per event instead of an array of two (≈ 64 B per socket for its whole life).
 */
export const errorPlaceholder = <F extends (...args: Array<never>) => void>(f: F): F => {
  placeholders.add(f)
  return f
}

const attach = (side: Side, peer: Side, relay: Relay<unknown>) => {
  side._relay = relay
  side._peer = peer
  const before = side.rawListeners("error")
  side.on("data", onData)
  side.on("drain", onDrain)
  side.on("end", onEnd)
  side.on("error", onError)
  side.on("close", onClose)
  for (const f of before) if (placeholders.has(f as () => void)) side.removeListener("error", f as () => void)
  // Node's own `end` listener only matters without allowHalfOpen, which the relay requires: with it, it does nothing,
  // and dropping it spares the `end` array too.
  if (side.allowHalfOpen) {
    for (const f of side.rawListeners("end"))
      if (f.name === "onReadableStreamEnd") side.removeListener("end", f as () => void)
  }
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
