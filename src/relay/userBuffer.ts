// Reads of a socket into a buffer we own, for sockets Node gave us without `onread` (accepted ones).
//
// net.Server has no `onread` for the sockets it accepts. What `onread` does is small: the Socket constructor keeps it
// in three own symbol properties, and setting up the handle calls `useUserBuffer` (lib/net.js); Node's read callback
// (`onStreamRead`, lib/internal/stream_base_commons.js) then hands each read to `kBufferCb` with the socket as
// `this`, and pause()/resume() stop and start the handle's reads directly. Doing the same to a socket before its first
// read gives it a user buffer. The symbols are found by name once; on a Node without them (or a handle without
// `useUserBuffer`) the socket keeps Node's own reads. Used by the relay (relay.ts) and by the Mongo listener's drop of
// a refused client's bytes (listeners/mongodb/scratchReads.ts).
//
// Such a socket's handle also gets a read callback of its own (`fastReads`). Node's (`onStreamRead`) loads six
// properties of the socket per read (its owner, timer refresh, `destroyed` through Duplex's getter, the three buffer
// symbols): sockets of many shapes pass there (accepted and dialed ones, with each listener's own fields), so every one
// of those loads is a megamorphic lookup, ≈ 2.5 % of the proxy's samples in a pooled pgbench run (bench/README.md
// "What each cut bought"). `fastRead` finds what it needs in one record kept on the handle and refreshes the timer
// only of a socket that has one; EOF, errors and empty reads go to Node's callback as before. Node replaces the
// handle's callback with a no-op when it destroys the socket, so no read reaches a destroyed one.

import * as net from "node:net"
import { streamWrap } from "./streamWrap.ts"

const symbols = (() => {
  const own = Object.getOwnPropertySymbols(new net.Socket())
  const named = (name: string) => own.find((s) => s.description === name)
  const buffer = named("kBuffer")
  const callback = named("kBufferCb")
  const gen = named("kBufferGen")
  return buffer !== undefined && callback !== undefined && gen !== undefined ? { buffer, callback, gen } : undefined
})()

type Handle = {
  reading?: boolean
  readStop?: () => number
  useUserBuffer?: (buf: Uint8Array) => void
  onread?: ReadMethod
  /** `fastReads`' record. */
  _fastRead?: FastRead
}
type Reads = Record<symbol, unknown> & { _handle?: Handle | null; encrypted?: boolean }

export type ReadCallback = (this: net.Socket, nread: number, buf: Buffer) => boolean

/** A handle's read callback, as C++ calls it: the handle as `this`, the read's size in the stream state. */
type ReadMethod = (this: Handle, arrayBuffer: unknown) => unknown

type TimedSocket = net.Socket & { timeout?: number; _unrefTimer?: () => void }

/** What `fastRead` needs of a socket, kept on its handle. */
class FastRead {
  readonly socket: TimedSocket
  readonly callback: ReadCallback
  readonly buffer: Buffer
  /** Node's own callback: EOF, errors, empty reads. */
  readonly node: ReadMethod
  constructor(socket: TimedSocket, callback: ReadCallback, buffer: Buffer, node: ReadMethod) {
    this.socket = socket
    this.callback = callback
    this.buffer = buffer
    this.node = node
  }
}

const state = streamWrap?.streamBaseState
const readBytes = streamWrap?.kReadBytesOrError ?? 0

function fastRead(this: Handle, arrayBuffer: unknown): unknown {
  const f = this._fastRead!
  const nread = state![readBytes]!
  if (nread <= 0) return f.node.call(this, arrayBuffer)
  const socket = f.socket
  if (socket.timeout) socket._unrefTimer!()
  if (f.callback.call(socket, nread, f.buffer) === false) {
    // What Node does for a callback that returns false: stop reading until resume().
    this.reading = false
    const err = this.readStop!()
    if (err) socket.destroy(new Error(`read stop failed: ${err}`))
  }
  return undefined
}

/**
 * Gives the handle of `socket` (reading into its own buffer: `useUserBuffer`, or net's `onread`) the read callback
 * above. Nothing changes when Node lacks what it relies on or the handle's callback is not Node's own.
 */
export const fastReads = (socket: net.Socket): void => {
  const s = socket as unknown as Reads
  const handle = s._handle
  if (symbols === undefined || state === undefined || handle == null || s.encrypted === true) return
  const buffer = s[symbols.buffer]
  const callback = s[symbols.callback]
  if (!Buffer.isBuffer(buffer) || typeof callback !== "function" || s[symbols.gen] != null) return
  const current = handle.onread
  const node = current === fastRead ? handle._fastRead?.node : current
  if (typeof node !== "function") return
  handle._fastRead = new FastRead(socket as TimedSocket, callback as ReadCallback, buffer, node)
  handle.onread = fastRead
}

/** The callback `socket` reads through (installed by `useUserBuffer` or by `onread`), if any. */
export const readCallbackOf = (socket: net.Socket): ReadCallback | undefined =>
  symbols === undefined ? undefined : ((socket as unknown as Reads)[symbols.callback] as ReadCallback | undefined)

/**
 * The socket's handle, when a user buffer can be installed on it: Node has the symbols, the handle has
 * `useUserBuffer`, the socket has no buffer of its own yet, and no TLSSocket reads the handle. A TLSSocket made over
 * a net.Socket shares its handle and makes the handle's `reading` an accessor of its own (`defineHandleReading`,
 * lib/_tls_wrap.js): a user buffer there would take the encrypted bytes from the TLS layer.
 */
export const userBufferHandle = (socket: net.Socket): Handle | undefined => {
  if (symbols === undefined) return undefined
  const s = socket as unknown as Reads
  const handle = s._handle
  if (handle == null || typeof handle.useUserBuffer !== "function" || s[symbols.buffer] != null) return undefined
  if (Object.getOwnPropertyDescriptor(handle, "reading")?.get !== undefined) return undefined
  return handle
}

/**
 * From now on, the reads of `socket` go into `buffer` and each is handed to `callback` (with the socket as `this`).
 * Returns false and changes nothing when `userBufferHandle` finds no way to.
 */
export const useUserBuffer = (socket: net.Socket, buffer: Buffer, callback: ReadCallback): boolean => {
  const handle = userBufferHandle(socket)
  if (handle === undefined || symbols === undefined) return false
  const s = socket as unknown as Reads
  s[symbols.buffer] = buffer
  s[symbols.callback] = callback
  s[symbols.gen] = null
  handle.useUserBuffer?.(buffer)
  fastReads(socket)
  return true
}
