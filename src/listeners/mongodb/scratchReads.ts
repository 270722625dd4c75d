// proxy ← client: the reads of a refused connection into one scratch buffer that all of them share.
//
// A refused client may still be sending its request: up to 48 MB that the proxy reads only to drop (refusing.ts).
// Node reads each chunk into a new Buffer, and V8 frees those only once about 64 MB of them have piled up; forty
// clients dropping 16 MB each raised the proxy's RSS by 94 MB at the peak and left 42 MB of it pinned in the
// allocator. Read into one buffer instead, the dropped bytes cost nothing (spec/conformance/mongodb-unrouted.spec.ts).
// This uses what `onread` uses, as the relay does (src/relay/userBuffer.ts says how). A TLSSocket's handle is the TLS
// layer, which hands its decrypted bytes to the same hook: refused TLS clients drop theirs the same way
// (spec/conformance/mongodb.spec.ts).

import type * as net from "node:net"
import { useUserBuffer } from "../../relay/userBuffer.ts"

const scratch = Buffer.allocUnsafeSlow(64 * 1024)

/**
 * From now on, hands each read of `socket` to `onBytes` as a view into the scratch buffer, valid only during the call
 * (copy what you keep); the end of the stream still comes as "end". Chunks read before still come as "data" events.
 * Never for the socket under a TLSSocket (the TLS layer reads it). Returns false and changes nothing for a socket
 * already reading into a buffer of its own, or when Node lacks what this relies on: its reads then stay "data" events.
 */
export const readIntoScratch = (socket: net.Socket, onBytes: (bytes: Buffer) => void): boolean =>
  useUserBuffer(socket, scratch, (nread) => {
    onBytes(scratch.subarray(0, nread))
    return true
  })
