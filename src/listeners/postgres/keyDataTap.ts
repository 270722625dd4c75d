// backend → frontend, watched: the BackendKeyData of a session, remembered so that its CancelRequests can be routed.
// Listens beside the relay (it never consumes or changes bytes) and detaches at ReadyForQuery or an ErrorResponse,
// handing the backend's reads to the relay's shared buffer.
// One small object per session and one shared handler: a closure here would keep its whole scope (and the last
// chunk read) for the session's life, ≈ 1 KB per idle connection.
import type * as net from "node:net"
import { decodeBackendKeyData, decodeBackendMessage } from "../../codec/pg/index.ts"
import type { VettedEndpoint } from "../../domain/Endpoint.ts"
import { readIntoSharedFromNow } from "../../relay/relay.ts"
import type { RelayWatch } from "../Protocol.ts"
import type { CancelKeys } from "./CancelKeys.ts"

/** Authentication and the startup parameters fit in far less; a backend that sends more is not a Postgres we know. */
const maxWatchedBytes = 256 * 1024

const empty = Buffer.alloc(0)

type Watched = net.Socket & { _keyTap?: KeyTap | undefined }

class KeyTap implements RelayWatch {
  buf: Buffer = empty
  /** The remembered key, forgotten when the session closes. */
  key: string | undefined = undefined
  readonly keys: CancelKeys
  readonly target: VettedEndpoint
  constructor(keys: CancelKeys, target: VettedEndpoint) {
    this.keys = keys
    this.target = target
  }
  closed(): void {
    if (this.key !== undefined) this.keys.forget(this.key)
    this.key = undefined
  }
}

const stop = (socket: Watched, tap: KeyTap) => {
  tap.buf = empty
  socket._keyTap = undefined
  // The relay's own `data` listener stays, so this leaves one function, not an emptied event slot.
  socket.removeListener("data", onKeyData)
  // Only the relay reads the backend from now on: its next reads go to the shared buffer, not a new Buffer each
  // (the relay still forwards the chunk at hand).
  readIntoSharedFromNow(socket)
}

function onKeyData(this: Watched, chunk: Buffer) {
  const tap = this._keyTap
  if (tap === undefined) return
  // Copy only while a message is split across reads: the chunk itself is not kept past this call.
  let buf = tap.buf.length === 0 ? chunk : Buffer.concat([tap.buf, chunk])
  for (;;) {
    const d = decodeBackendMessage(buf)
    if (d._tag === "Need") {
      if (buf.length > maxWatchedBytes) return stop(this, tap)
      tap.buf = Buffer.from(buf)
      return
    }
    if (d._tag === "Invalid") return stop(this, tap)
    buf = buf.subarray(d.size)
    const type = d.value.type
    if (type === "K") {
      const k = decodeBackendKeyData(d.value.body)
      if (k._tag === "Frame") tap.key = tap.keys.remember(k.value.processId, k.value.secretKey, tap.target)
    } else if (type === "Z" || type === "E") {
      return stop(this, tap)
    }
  }
}

/** Starts watching `backend`; the listener calls `closed()` on the result when the session's relay ends. */
export const watchBackendKeyData = (backend: net.Socket, target: VettedEndpoint, keys: CancelKeys): RelayWatch => {
  const tap = new KeyTap(keys, target)
  ;(backend as Watched)._keyTap = tap
  backend.on("data", onKeyData)
  return tap
}
