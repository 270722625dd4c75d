// Writes straight to a socket's handle, past Node's Writable. socket.write(buf) runs Writable.write, writeOrBuffer,
// Socket._writeGeneric, a new WriteWrap (a C++ object with a global handle) per write, and an afterWrite on the next
// tick; the handle's writeBuffer alone tries the write at once (uv_try_write) and needs a WriteWrap only when the
// kernel did not take everything (then libuv queues the rest, in order behind any write already queued). Where the
// write completes at once, one WriteWrap object serves every such write: C++ reads it only for a write it queues.
// Used on the pooled sessions' hot path (listeners/pool/pooledSession.ts), by the byte relay (relay.ts) and, through
// writeDirectLatin1, by the http listener's HTTP/1 answers and backend requests (bench/README.md "What each cut bought").
//
// The WriteWrap constructor and the write state come from Node's `stream_wrap` binding (streamWrap.ts). Without it, on a TLS socket (its handle encrypts
// in C++ and completes writes its own way), a socket with bytes in Node's own write buffer (they would be
// overtaken), or one still connecting or not writable (ended, destroyed: Node's own error path then), the write goes
// through socket.write as before. A socket with a timeout has it refreshed per write here, as socket.write does (the
// relay's idle and half-close timers, the http listener's deadlines). What a socket owes after a queued write is counted here;
// when the last one completes the socket emits `drain`, as Node does once its buffer empties, so a caller pauses its
// source when a write returns false and resumes it on `drain` either way. `bytesWritten` counts these writes too
// (Node reads it from the handle).
import type * as net from "node:net"
import { getSystemErrorName } from "node:util"
import { streamWrap, type WriteReq } from "./streamWrap.ts"

type Handle = {
  writeBuffer?: (req: WriteReq, buf: Uint8Array) => number
  /** Copies the string (to the stack, or to memory the request keeps when queued): nothing to hold on to here. */
  writeLatin1String: (req: WriteReq, text: string) => number
}

/** Node's Buffer methods for one encoding (what toString("latin1") and write(s, "latin1") end in). */
type Latin1Buffer = Buffer & {
  latin1Slice(start: number, end: number): string
  latin1Write(text: string, offset: number): number
}

/** The fields this module keeps on a socket it wrote to. */
type DirectSocket = net.Socket & {
  _handle?: Handle | null
  encrypted?: boolean
  connecting: boolean
  timeout?: number
  /** Node's timeout refresh (net.Socket's kUpdateTimer). */
  _unrefTimer?: () => void
  /** Queued writes not yet completed. */
  _directQueued?: number
}

const writeError = (status: number): Error => {
  const code = getSystemErrorName(status)
  return Object.assign(new Error(`write ${code}`), { errno: status, code, syscall: "write" })
}

function onQueuedWriteDone(this: WriteReq, status: number) {
  const socket = this.socket as DirectSocket
  this.socket = null
  this.buffer = null
  if (socket.destroyed) return
  if (status < 0) {
    socket.destroy(writeError(status))
    return
  }
  // Node restarts a socket's timeout when a write completes too: a timer set while this write was queued (the relay's
  // half-close one) counts from here, as it would after socket.write.
  if (socket.timeout) socket._unrefTimer?.()
  if (--socket._directQueued! === 0) socket.emit("drain")
}

const newReq = (): WriteReq | undefined => {
  if (streamWrap === undefined) return undefined
  const req = new streamWrap.WriteWrap()
  req.handle = null
  req.oncomplete = onQueuedWriteDone
  req.buffer = null
  req.socket = null
  return req
}

/** The request object of writes that complete at once; replaced by a new one whenever a write is queued with it. */
let spare = newReq()

/**
 * The handle to write to past Node's Writable, or undefined when `s` must take socket.write (see the top). A socket
 * with a timeout has its timer refreshed here, as socket.write does.
 */
const directHandle = (s: DirectSocket): Handle | undefined => {
  const handle = s._handle
  if (
    spare === undefined ||
    handle == null ||
    handle.writeBuffer === undefined ||
    s.encrypted === true ||
    s.writableLength !== 0 ||
    s.connecting ||
    !s.writable
  ) {
    return undefined
  }
  if (s.timeout) {
    if (s._unrefTimer === undefined) return undefined
    s._unrefTimer()
  }
  return handle
}

/** After the handle was given `req` (`buf`: the bytes to keep alive while queued, or null for a copied string). */
const settle = (s: DirectSocket, req: WriteReq, err: number, buf: Buffer | null): boolean => {
  if (err !== 0) {
    // Not queued: the request is free again.
    req.handle = null
    s.destroy(writeError(err))
    return false
  }
  if (streamWrap!.streamBaseState[streamWrap!.kLastWriteWasAsync] === 0) {
    req.handle = null
    return true
  }
  // Queued: this request is libuv's until it completes.
  req.buffer = buf
  req.socket = s
  s._directQueued = (s._directQueued ?? 0) + 1
  spare = newReq()
  return false
}

/**
 * Writes `buf` (kept unchanged until its write completes) to `socket`. True when the kernel took it all; false when
 * some of it waits: `drain` follows once nothing this socket was given waits any more.
 */
export const writeDirect = (socket: net.Socket, buf: Buffer): boolean => {
  const s = socket as DirectSocket
  const handle = directHandle(s)
  if (handle === undefined) return socket.write(buf)
  const req = spare!
  req.handle = handle
  return settle(s, req, handle.writeBuffer!(req, buf), buf)
}

/** writeDirect of a latin1 string (an HTTP head: one syscall, no cork), for the http listener. */
export const writeDirectLatin1 = (socket: net.Socket, text: string): boolean => {
  const s = socket as DirectSocket
  const handle = directHandle(s)
  if (handle === undefined) return socket.write(text, "latin1")
  const req = spare!
  req.handle = handle
  return settle(s, req, handle.writeLatin1String(req, text), null)
}

/** Where writeDirectJoined puts a head and its body; a new one when a write from it was queued (libuv reads it then). */
let joined = Buffer.allocUnsafeSlow(32 * 1024) as Latin1Buffer

/**
 * writeDirectLatin1 of `head` followed by `body[start, end)`, in one write: both copied into one reused buffer
 * (no string built from the body, none flattened, nothing left for the GC); too large for it, or not direct, as one
 * latin1 string as before. The body bytes may be reused once this returns.
 */
export const writeDirectJoined = (
  socket: net.Socket,
  head: string,
  body: Buffer,
  start: number,
  end: number
): boolean => {
  const s = socket as DirectSocket
  const size = head.length + end - start
  const handle = size > joined.length ? undefined : directHandle(s)
  if (handle === undefined) return socket.write(head + (body as Latin1Buffer).latin1Slice(start, end), "latin1")
  const buf = joined
  buf.latin1Write(head, 0)
  body.copy(buf, head.length, start, end)
  const req = spare!
  req.handle = handle
  const done = settle(s, req, handle.writeBuffer!(req, buf.subarray(0, size)), buf)
  if (spare !== req) joined = Buffer.allocUnsafeSlow(buf.length) as Latin1Buffer
  return done
}
