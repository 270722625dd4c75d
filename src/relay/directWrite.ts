// Writes straight to a socket's handle, past Node's Writable. socket.write(buf) runs Writable.write, writeOrBuffer,
// Socket._writeGeneric, a new WriteWrap (a C++ object with a global handle) per write, and an afterWrite on the next
// tick; the handle's writeBuffer alone tries the write at once (uv_try_write) and needs a WriteWrap only when the
// kernel did not take everything (then libuv queues the rest, in order behind any write already queued). Where the
// write completes at once, one WriteWrap object serves every such write: C++ reads it only for a write it queues.
// Used on the pooled sessions' hot path (listeners/pool/pooledSession.ts) and by the byte relay (relay.ts; bench/README.md
// "What each cut bought").
//
// The WriteWrap constructor and the write state come from Node's `stream_wrap` binding (what net.Socket itself uses;
// `process.binding` logs DEP0111 once under --pending-deprecation). Without it, on a TLS socket (its handle encrypts
// in C++ and completes writes its own way), a socket with bytes in Node's own write buffer (they would be
// overtaken), one not writable (ended, destroyed: Node's own error path then) or with an idle timer (Node refreshes it
// per write), the write goes through socket.write as before. What a socket owes after a queued write is counted here;
// when the last one completes the socket emits `drain`, as Node does once its buffer empties, so a caller pauses its
// source when a write returns false and resumes it on `drain` either way. `bytesWritten` counts these writes too
// (Node reads it from the handle).
import type * as net from "node:net"
import { getSystemErrorName } from "node:util"

interface WriteReq {
  handle: unknown
  oncomplete: (this: WriteReq, status: number) => void
  buffer: Buffer | null
  socket: DirectSocket | null
}

interface StreamWrap {
  readonly WriteWrap: new () => WriteReq
  readonly streamBaseState: Int32Array
  readonly kLastWriteWasAsync: number
}

type Handle = { writeBuffer?: (req: WriteReq, buf: Uint8Array) => number }

/** The fields this module keeps on a socket it wrote to. */
type DirectSocket = net.Socket & {
  _handle?: Handle | null
  encrypted?: boolean
  timeout?: number
  /** Node's timeout refresh (net.Socket's kUpdateTimer). */
  _unrefTimer?: () => void
  /** Queued writes not yet completed. */
  _directQueued?: number
}

const streamWrap = ((): StreamWrap | undefined => {
  try {
    const b = (process as { binding?: (name: string) => unknown }).binding?.("stream_wrap") as
      | Partial<StreamWrap>
      | undefined
    return typeof b?.WriteWrap === "function" &&
      b.streamBaseState instanceof Int32Array &&
      typeof b.kLastWriteWasAsync === "number"
      ? (b as StreamWrap)
      : undefined
  } catch {
    return undefined
  }
})()

const writeError = (status: number): Error => {
  const code = getSystemErrorName(status)
  return Object.assign(new Error(`write ${code}`), { errno: status, code, syscall: "write" })
}

function onQueuedWriteDone(this: WriteReq, status: number) {
  const socket = this.socket!
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
 * Writes `buf` (kept unchanged until its write completes) to `socket`. True when the kernel took it all; false when
 * some of it waits: `drain` follows once nothing this socket was given waits any more.
 */
export const writeDirect = (socket: net.Socket, buf: Buffer): boolean => {
  const s = socket as DirectSocket
  const handle = s._handle
  const req = spare
  if (
    req === undefined ||
    handle == null ||
    handle.writeBuffer === undefined ||
    s.encrypted === true ||
    s.timeout ||
    s.writableLength !== 0 ||
    !s.writable
  ) {
    return socket.write(buf)
  }
  req.handle = handle
  const err = handle.writeBuffer(req, buf)
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
