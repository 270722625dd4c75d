// backend → frontend, watched: the BackendKeyData of a session, remembered so that its CancelRequests can be routed.
// Listens beside the relay (it never consumes or changes bytes) and detaches at ReadyForQuery or an ErrorResponse.
import type * as net from "node:net"
import { decodeBackendKeyData, decodeBackendMessage } from "../../codec/pg/index.ts"
import type { VettedEndpoint } from "../../domain/Endpoint.ts"
import type { CancelKeys } from "./CancelKeys.ts"

/** Authentication and the startup parameters fit in far less; a backend that sends more is not a Postgres we know. */
const maxWatchedBytes = 256 * 1024

export const watchBackendKeyData = (backend: net.Socket, target: VettedEndpoint, keys: CancelKeys): void => {
  let buf: Buffer = Buffer.alloc(0)
  const stop = () => backend.off("data", onData)
  function onData(chunk: Buffer) {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
    for (;;) {
      const d = decodeBackendMessage(buf)
      if (d._tag === "Need") {
        if (buf.length > maxWatchedBytes) stop()
        return
      }
      if (d._tag === "Invalid") return stop()
      buf = buf.subarray(d.size)
      const type = d.value.type
      if (type === "K") {
        const k = decodeBackendKeyData(d.value.body)
        if (k._tag === "Frame") {
          const key = keys.remember(k.value.processId, k.value.secretKey, target)
          backend.once("close", () => keys.forget(key))
        }
      } else if (type === "Z" || type === "E") {
        return stop()
      }
    }
  }
  backend.on("data", onData)
}
