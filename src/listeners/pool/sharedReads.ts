// The pooled sockets of every protocol (clients served by a pooled session, server connections once logged in) read
// into the relay's shared buffer instead of a new Buffer per read (Node's own reads allocate an external ArrayBuffer
// per read and run it through the stream's push; bench/README.md "What each cut bought"). Each read is copied into a
// slab. A pooled session's own sockets hand it straight to the session (pooledSession.ts); any other (a server
// connection idle in its pool, logging in, resetting) emits it as its `data`, so those handlers stay as they were
// (serverConnBase.ts). The slab is only ever appended to: a chunk may be kept past its read (a write the kernel did
// not take at once, a waiting client's held bytes, a split message), and a new slab is taken when one is full, the old
// one living as long as something keeps a piece of it. A socket that cannot switch (TLS, bytes already buffered)
// keeps Node's reads. A socket reading shared stops reading at pause() (Node's reads go on into the stream's buffer up
// to its high-water mark), so a stop and start costs epoll changes: the pooled sockets are paused only when needed —
// a waiting client once it sent `holdLimit` bytes, a server connection not at all between holders (one tick).
import type * as net from "node:net"
import { readIntoSharedWith } from "../../relay/relay.ts"
import type { ReadCallback } from "../../relay/userBuffer.ts"
import type { Sock } from "./sessionSockets.ts"

const slabSize = 64 * 1024
let slab = Buffer.allocUnsafeSlow(slabSize)
let slabUsed = 0

function onSharedRead(this: Sock, nread: number, buf: Buffer): boolean {
  if (slabUsed + nread > slab.length) {
    slab = Buffer.allocUnsafeSlow(Math.max(slabSize, nread))
    slabUsed = 0
  }
  slab.set(buf.subarray(0, nread), slabUsed)
  const chunk = slab.subarray(slabUsed, slabUsed + nread)
  slabUsed += nread
  const s = this._pooled
  if (s !== undefined) {
    if (s.client === this) {
      s.clientRead(chunk)
      return true
    }
    const link = s.link
    if (link !== undefined && link.conn.socket === this) {
      s.serverRead(link, chunk)
      return true
    }
  }
  this.emit("data", chunk)
  return true
}

/** What a waiting client reading shared may send before it is paused: a stream's default high-water mark. */
export const holdLimit = 16 * 1024

/**
 * From its next read on, `socket` reads into the shared buffer, its `data` listeners getting each read as before.
 * Call it while the socket is paused with nothing buffered; false (and nothing changed) when it cannot switch.
 */
export const readPooledShared = (socket: net.Socket): boolean =>
  readIntoSharedWith(socket, onSharedRead as ReadCallback)
