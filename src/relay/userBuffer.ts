// Reads of a socket into a buffer we own, for sockets Node gave us without `onread` (accepted ones).
//
// net.Server has no `onread` for the sockets it accepts. What `onread` does is small: the Socket constructor keeps it
// in three own symbol properties, and setting up the handle calls `useUserBuffer` (lib/net.js); Node's read callback
// (`onStreamRead`, lib/internal/stream_base_commons.js) then hands each read to `kBufferCb` with the socket as
// `this`, and pause()/resume() stop and start the handle's reads directly. Doing the same to a socket before its first
// read gives it a user buffer. The symbols are found by name once; on a Node without them (or a handle without
// `useUserBuffer`) the socket keeps Node's own reads. Used by the relay (relay.ts) and by the Mongo listener's drop of
// a refused client's bytes (listeners/mongodb/scratchReads.ts).

import * as net from "node:net"

const symbols = (() => {
  const own = Object.getOwnPropertySymbols(new net.Socket())
  const named = (name: string) => own.find((s) => s.description === name)
  const buffer = named("kBuffer")
  const callback = named("kBufferCb")
  const gen = named("kBufferGen")
  return buffer !== undefined && callback !== undefined && gen !== undefined ? { buffer, callback, gen } : undefined
})()

type Handle = { reading?: boolean; readStop?: () => number; useUserBuffer?: (buf: Uint8Array) => void }
type Reads = Record<symbol, unknown> & { _handle?: Handle | null; encrypted?: boolean }

export type ReadCallback = (this: net.Socket, nread: number, buf: Buffer) => boolean

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
  return true
}
