// proxy → client: after a refusal, the same error to every request for a moment, then close.
//
// Closing right after the error reply races the driver: a driver retries a retryable code at once, and its pool hands
// back the connection it just returned (LIFO) before the FIN behind our reply has been read. The retry then fails
// with a network error, which marks the server Unknown and clears the whole pool. Answering the retry (or any quick
// next command) with the same error instead surfaces that error cleanly; closing after a pause lets the pool drop the
// connection while it is idle, as it does any connection found closed on checkout.
//
// A request refused before its end (a first command too large to read before routing) is still on its way: its rest
// is read and dropped, never kept. A driver reads no reply before its whole request is written, so a proxy that
// stopped reading would leave it blocked until the connection is torn down, and it would then show a network error
// (and clear its pool) instead of ours. What is dropped is read into a shared scratch buffer (scratchReads.ts).

import type * as net from "node:net"
import { MAX_MESSAGE_SIZE, OP_MSG, OP_QUERY, OpMsgFlags } from "../../codec/mongo/index.ts"
import type { ProxyError } from "../../domain/ProxyError.ts"
import { refusalFor } from "./replies.ts"
import { readIntoScratch } from "./scratchReads.ts"

/** Long enough for an immediate retry, short enough that a driver's pool does not keep the connection in use. */
export const keepRefusingMs = 1_000
/** For the rest of a refused request: the largest message a server accepts (48 MB) at 100 Mbit/s takes 4 s. */
export const dropRestMs = 5_000

const empty = Buffer.alloc(0)

/**
 * Answers each request on `client` with `error` (only headers are read; bodies are skipped), then ends it. `unread`:
 * bytes of the refused request yet to come, dropped first (for up to `dropRestMs`, then `ms` starts).
 */
export const keepRefusing = (client: net.Socket, error: ProxyError, unread = 0, ms: number = keepRefusingMs): void => {
  let head: Buffer = empty
  let skip = unread
  let droppingRest = unread > 0
  let stopped = false
  /** `chunk` may be a view into the scratch buffer: nothing of it is kept past the call but a copied partial header. */
  const onData = (chunk: Buffer) => {
    if (stopped) return
    let data = chunk
    while (data.length > 0) {
      if (skip > 0) {
        const n = Math.min(skip, data.length)
        skip -= n
        data = data.subarray(n)
        if (skip === 0 && droppingRest) {
          droppingRest = false
          clearTimeout(timer)
          timer = setTimeout(() => stop(), ms)
        }
        continue
      }
      head = head.length === 0 ? data : Buffer.concat([head, data])
      data = empty
      // Header and OP_MSG flag bits: enough to answer (or not, for moreToCome) and to know what to skip.
      if (head.length < 20) {
        head = Buffer.from(head)
        return
      }
      const length = head.readInt32LE(0)
      if (length < 20 || length > MAX_MESSAGE_SIZE) return stop()
      const opCode = head.readInt32LE(12)
      const moreToCome = opCode === OP_MSG && (head.readUInt32LE(16) & OpMsgFlags.moreToCome) !== 0
      if (!moreToCome) {
        client.write(refusalFor(error, { requestId: head.readInt32LE(4), legacy: opCode === OP_QUERY }))
      }
      if (head.length >= length) data = head.subarray(length)
      else skip = length - head.length
      head = empty
    }
  }
  let timer = setTimeout(() => stop(), droppingRest ? dropRestMs : ms)
  const stop = () => {
    stopped = true
    clearTimeout(timer)
    client.off("data", onData)
    client.off("end", stop)
    // Still in a request whose answer went out long ago: nothing it sends can be answered, stop reading it.
    if (skip > 0) client.destroy()
    else if (!client.destroyed) client.end()
  }
  client.on("data", onData)
  readIntoScratch(client, onData)
  client.once("end", stop)
  client.once("close", () => clearTimeout(timer))
  client.resume()
}
