// Socket-to-socket splice for the relay phase. No Effect, Promise, closure or allocation per chunk (a socket that
// reads into the shared buffer copies each read once instead: see `relayReads`, `readIntoShared`): the handlers below
// are shared by every connection and find their peer through one field on the socket, so a relayed pair costs two
// sockets and one small Relay object. `data`/`drain` with pause/resume holds about half the heap of `pipe()`.
import type * as net from "node:net"
import { writeDirect } from "./directWrite.ts"
import { type ReadCallback, readCallbackOf, userBufferHandle, useUserBuffer } from "./userBuffer.ts"

/** Byte totals handed to `onClose` once both sockets are gone. */
export interface RelayTotals {
  readonly bytesFromClient: number
  readonly bytesFromBackend: number
  /** The first socket error, if the relay ended because of one. */
  readonly error: Error | undefined
  /** Set when the relay closed both sockets because a timeout ran out (no error then). */
  readonly timedOut: "idle" | "halfClose" | undefined
}

type Side = net.Socket & { _relay?: Relay<unknown>; _peer?: Side }

// Why a relay's sockets were destroyed, when a timeout did it: shared markers in `Relay.error`'s place, so a relay
// carries no extra field for them. Never handed out as errors.
const idleTimedOut = new Error("idle timeout")
const halfCloseTimedOut = new Error("half-close timeout")

class Relay<S> {
  ended = 0 // sides whose readable half has ended (0..2)
  closed = 0
  /** The first socket error, or one of the timeout markers above. */
  error: Error | undefined = undefined
  /** Milliseconds a half-closed relay may go without a byte; 0 = no limit of its own (see `relay`). */
  halfCloseMs: number
  client: Side
  backend: Side
  onClose: (totals: RelayTotals, state: S) => void
  state: S
  constructor(
    client: Side,
    backend: Side,
    onClose: (totals: RelayTotals, state: S) => void,
    state: S,
    halfCloseMs: number
  ) {
    this.client = client
    this.backend = backend
    this.onClose = onClose
    this.state = state
    this.halfCloseMs = halfCloseMs
  }
}

// Writes go to the peer's handle past Node's Writable (`writeDirect`: 7.7 % of the proxy's samples in tcp echo went to
// that layer, bench/README.md); a TLS peer, one with bytes in Node's buffer or an idle timer keeps socket.write.
// False means some bytes wait (queued in libuv, or Node's buffer over its high-water mark): stop reading until the
// peer's `drain`, which both paths emit once nothing waits.
function onData(this: Side, chunk: Buffer) {
  if (!writeDirect(this._peer!, chunk)) this.pause()
}

function onDrain(this: Side) {
  this._peer!.resume()
}

// Issue 11: Node reads every chunk into a new Buffer, an external ArrayBuffer; in bulk those alone set off about ten
// full GCs a second (V8 collects after every 64 MB of external memory). A socket that only the relay reads (the
// backend we dial, `relayReads`; a socket nothing reads after the relay starts, `readIntoShared`) reads instead
// into `readInto`, one buffer for all of them: each read's bytes are handled in
// its callback, before any other read can overwrite them. They cannot be written from there (a write the kernel
// does not take at once keeps pointing into its buffer, and another socket's read would overwrite it), so they are
// copied to `slab`, which nothing reads into. A write left pending keeps its bytes of the slab; the next chunks go
// after them, and once the slab is full a new one is taken (the old one lives as long as its writes).
// Reads stop 64 bytes short of 64 KiB so that each write fits one loopback TCP segment (MSS 65,483 with timestamps):
// a 65,536-byte write goes out as a full segment and a 53-byte one, and on loopback the sender's CPU pays for both
// ends of every segment (≈ 0.7 vs 0.44 CPU s per GB of tcp bulk, bench/README.md).
const readSize = 65536 - 64
const readInto = Buffer.allocUnsafeSlow(readSize)
let slab = Buffer.allocUnsafeSlow(readSize)
let slabUsed = 0

/** The read's bytes, copied to the slab (a new one when they do not fit). */
const toSlab = (buf: Uint8Array, nread: number): Buffer => {
  if (slabUsed + nread > slab.length) {
    slab = Buffer.allocUnsafeSlow(readSize)
    slabUsed = 0
  }
  slab.set(buf.subarray(0, nread), slabUsed)
  return slab.subarray(slabUsed, slabUsed + nread)
}

function onReadInto(this: Side, nread: number, buf: Uint8Array): boolean {
  const peer = this._peer!
  const written = writeDirect(peer, toSlab(buf, nread))
  // Bytes still queued (these or earlier ones, which these then wait behind): keep them. A direct write left queued
  // returns false; one through socket.write may return true with its bytes still in Node's buffer.
  if (!written || peer.writableLength > 0) slabUsed += nread
  if (!written) this.pause()
  return true
}

// A client whose bytes a `clientData` handler forwards (relay's last argument) reads into the shared buffer too: each
// read is copied to the slab and handed to the handler, which writes to the peer what it passes and copies what it
// keeps. One reader per handler function, made once and shared by all its connections.
const readers = new WeakMap<DataHandler, ReadCallback>()
const readerSet = new WeakSet<ReadCallback>()
const readerFor = (data: DataHandler): ReadCallback => {
  let reader = readers.get(data)
  if (reader === undefined) {
    reader = function (this: net.Socket, nread: number, buf: Buffer): boolean {
      const peer = (this as Side)._peer!
      data.call(this, toSlab(buf, nread))
      if (peer.writableLength > 0) slabUsed += nread
      return true
    }
    readers.set(data, reader)
    readerSet.add(reader)
  }
  return reader
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

/** Whether `socket` reads into the relay's shared buffer (`relayReads` or `readIntoShared`). */
const readsShared = (socket: net.Socket) => {
  const callback = readCallbackOf(socket)
  return callback !== undefined && (callback === (onReadInto as ReadCallback) || readerSet.has(callback))
}

const shareReads = (
  socket: net.Socket,
  handle: NonNullable<ReturnType<typeof userBufferHandle>>,
  callback: ReadCallback
) => {
  // A paused socket that read before (a handshake) may still have its handle reading: Node's pause() stops only the
  // stream, and the handle reads on into the stream's buffer. Shared reads bypass that buffer and would go on while
  // paused, so the handle stops here; resume() starts it again (lib/net.js does, for a socket with a user buffer).
  if (handle.reading === true && socket.isPaused()) {
    handle.reading = false
    handle.readStop?.()
  }
  return useUserBuffer(socket, readInto, callback)
}

// Plain, open and readable, with nothing waiting in its buffer (bytes that the shared reads would overtake).
const switchable = (socket: net.Socket) =>
  (socket as { encrypted?: boolean }).encrypted !== true &&
  !socket.connecting &&
  !socket.destroyed &&
  socket.readable &&
  socket.readableLength === 0

/**
 * Makes a socket read into the relay's shared buffer, as `relayReads` does for one we dial: called right before
 * `relay`, for a plain TCP socket that nothing but the relay will read from then on. The socket may have been read
 * before (a protocol's handshake, with `data` events) if it is paused now with nothing left in its buffer: reads then
 * start again, into the shared buffer, when the relay resumes it, so no byte is read twice or overtaken. Never a
 * TLSSocket nor the socket under one: their reads are the TLS layer's; both are refused. Returns false, and leaves the
 * socket as it was, when Node lacks what this relies on (src/relay/userBuffer.ts), the socket reads with nobody
 * pausing it (someone else reads it), or bytes are waiting in it. Pass the `clientData` handler the relay will get
 * for this socket, if any: it then gets the reads, copied to the relay's slab.
 */
export const readIntoShared = (socket: net.Socket, clientData?: DataHandler): boolean =>
  readIntoSharedWith(socket, clientData === undefined ? (onReadInto as ReadCallback) : readerFor(clientData))

/**
 * `readIntoShared` for a reader of its own (the pooled PostgreSQL and MySQL sockets, listeners/pool/sharedReads.ts): each
 * read, in the shared buffer, goes to `callback`, which must copy what outlives the call. The same conditions.
 */
export const readIntoSharedWith = (socket: net.Socket, callback: ReadCallback): boolean => {
  const handle = userBufferHandle(socket)
  if (handle === undefined || (handle.reading === true && !socket.isPaused()) || !switchable(socket)) return false
  return shareReads(socket, handle, callback)
}

/**
 * Makes a socket the relay already relays read into the shared buffer from its next read on: for a watcher that read
 * the socket's first messages with `data` events beside the relay and is done (the Postgres key-data tap). Call it
 * from a `data` handler (the socket flowing) or while the socket is paused; the relay's own `data` listener still
 * forwards the chunk at hand. Returns false, and leaves the socket on `data` events, when the socket is not relayed,
 * is a TLSSocket or under one, bytes wait in its buffer, or Node lacks what this relies on.
 */
export const readIntoSharedFromNow = (socket: net.Socket): boolean => {
  const handle = userBufferHandle(socket)
  if ((socket as Side)._peer === undefined || handle === undefined || !switchable(socket)) return false
  return shareReads(socket, handle, onReadInto as ReadCallback)
}

function onEnd(this: Side) {
  // Half-close: this side finished sending, so finish the peer's writable side once its buffer is flushed;
  // the other direction keeps flowing until it ends too.
  const relay = this._relay!
  if (++relay.ended === 1 && relay.halfCloseMs > 0) {
    // What still flows is written to this socket, and every write (its call and its completion) restarts a socket's
    // timeout: armed here, it fires only after halfCloseMs without a byte that way, even when a slow reader holds
    // the writes back. A peer that went away for good (a client gone after its FIN, a backend that never answers)
    // would otherwise hold both sockets for ever. A relay open both ways has no timer for this.
    this.removeListener("timeout", onTimeout)
    this.setTimeout(relay.halfCloseMs, onHalfCloseTimeout)
  }
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
    const error = relay.error
    const timedOut = error === idleTimedOut ? "idle" : error === halfCloseTimedOut ? "halfClose" : undefined
    relay.onClose(
      {
        bytesFromClient: client.bytesRead,
        bytesFromBackend: backend.bytesRead,
        error: timedOut === undefined ? error : undefined,
        timedOut
      },
      relay.state
    )
    // Break the cycle so a late reference to one socket does not keep the other alive.
    client._peer = undefined
    backend._peer = undefined
  }
}

function onTimeout(this: Side) {
  this._relay!.error ??= idleTimedOut
  this.destroy()
}

function onHalfCloseTimeout(this: Side) {
  // The peer goes in `onClose`. It already has our FIN, so it cannot be reset any more (libuv refuses a reset after a
  // shutdown, and Node would then leak the handle): its far end learns of the close when it next writes.
  this._relay!.error ??= halfCloseTimedOut
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

/**
 * A `data` handler that forwards a client's bytes itself (see `relay`'s `clientData`). Its chunk may be a view of the
 * relay's slab (`readIntoShared`): it may write it, or parts of it, to the peer, but must copy what it keeps.
 */
export type DataHandler = (this: net.Socket, chunk: Buffer) => void

const attach = (side: Side, peer: Side, relay: Relay<unknown>, data: DataHandler = onData) => {
  side._relay = relay
  side._peer = peer
  const before = side.rawListeners("error")
  // A socket that reads into the shared buffer never emits `data` (its reads go to `onReadInto`).
  if (!readsShared(side) || side.readableLength > 0) side.on("data", data)
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
  /**
   * Once one side has sent its FIN (and it was passed on), milliseconds without a byte flowing the other way before
   * both are closed; 0 = never. Default 60 s (`timeouts.halfClose`). A relay that is open both ways is never timed by
   * this, however idle.
   */
  readonly halfCloseMs?: number
}

const defaultHalfCloseMs = 60_000

/**
 * Relays bytes both ways until both sockets have closed, then calls `onClose` once with the byte totals and `state`.
 * Pass one `onClose` for many connections and keep per-connection facts in `state`: a closure per connection would
 * hold its whole scope for the connection's life.
 * Both sockets must have been created with `allowHalfOpen: true` so that a FIN from one side is passed on as a FIN,
 * not turned into a full close. Both must still be open (check `destroyed` first); bytes already buffered in them
 * flow on once this resumes them.
 * `clientData`, when given, takes the place of the client's forwarding: it gets each chunk the client sends (the
 * client socket as `this`; pass it to `readIntoShared` too for a client that reads into the shared buffer) and writes
 * to the backend what it passes, pausing the client when a write returns false; the backend's `drain` resumes it.
 */
export const relay = <S = undefined>(
  client: net.Socket,
  backend: net.Socket,
  onClose: (totals: RelayTotals, state: S) => void,
  options: RelayOptions = {},
  state?: S,
  clientData?: DataHandler
): void => {
  const idleMs = options.idleTimeoutMs ?? 0
  const halfCloseMs = options.halfCloseMs ?? defaultHalfCloseMs
  // An idle timeout as short as the half-close one already bounds a half-closed relay: it keeps applying instead.
  const r = new Relay<S>(client, backend, onClose, state as S, idleMs > 0 && idleMs <= halfCloseMs ? 0 : halfCloseMs)
  attach(client, backend, r as Relay<unknown>, clientData)
  attach(backend, client, r as Relay<unknown>)
  if (idleMs > 0) {
    client.setTimeout(idleMs, onTimeout)
    backend.setTimeout(idleMs, onTimeout)
  }
  client.resume()
  backend.resume()
}
