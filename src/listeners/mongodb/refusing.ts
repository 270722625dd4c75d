// proxy → client: after a refusal, the same error to every request for a moment, then close.
//
// Closing right after the error reply races the driver: a driver retries a retryable code at once, and its pool hands
// back the connection it just returned (LIFO) before the FIN behind our reply has been read. The retry then fails
// with a network error, which marks the server Unknown and clears the whole pool. Answering the retry (or any quick
// next command) with the same error instead surfaces that error cleanly; closing after a pause lets the pool drop the
// connection while it is idle, as it does any connection found closed on checkout.

import type * as net from "node:net"
import { MAX_MESSAGE_SIZE, OP_MSG, OP_QUERY, OpMsgFlags } from "../../codec/mongo/index.ts"
import type { ProxyError } from "../../domain/ProxyError.ts"
import { refusalFor } from "./replies.ts"

/** Long enough for an immediate retry, short enough that a driver's pool does not keep the connection in use. */
export const keepRefusingMs = 1_000

const empty = Buffer.alloc(0)

/** Answers each request on `client` with `error` (only headers are read; bodies are skipped), then ends it. */
export const keepRefusing = (client: net.Socket, error: ProxyError, ms: number = keepRefusingMs): void => {
  let head: Buffer = empty
  let skip = 0
  const onData = (chunk: Buffer) => {
    let data = chunk
    while (data.length > 0) {
      if (skip > 0) {
        const n = Math.min(skip, data.length)
        skip -= n
        data = data.subarray(n)
        continue
      }
      head = head.length === 0 ? data : Buffer.concat([head, data])
      data = empty
      // Header and OP_MSG flag bits: enough to answer (or not, for moreToCome) and to know what to skip.
      if (head.length < 20) return
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
  const timer = setTimeout(() => stop(), ms)
  const stop = () => {
    clearTimeout(timer)
    client.off("data", onData)
    client.off("end", stop)
    if (!client.destroyed) client.end()
  }
  client.on("data", onData)
  client.once("end", stop)
  client.once("close", () => clearTimeout(timer))
  client.resume()
}
