// identify helper: reads a peer's messages into one buffer that outlives each read, so bytes already received are
// never lost when the proxy stops reading to answer, route or close. Chunks are joined only once a decoder's Need
// says enough has arrived (one copy per message, not one per chunk; nothing is allocated ahead for a length a
// message only announces, and the client's decoders wait for 64 KiB at most by default, maxRoutingCommand), and a
// read can give up on a silent connection: that is how idle connections that never named a database are closed
// before the listener's deadline.

import type * as net from "node:net"
import * as Effect from "effect/Effect"
import type { Decoded, Frame } from "../../codec/mongo/index.ts"
import { type ProxyError, proxyError } from "../../domain/ProxyError.ts"

const empty = Buffer.alloc(0)

export class MessageReader {
  /** Received and not consumed. Read it only after `read` has returned (chunks may still be pending before). */
  private buf: Buffer = empty
  private parts: Array<Buffer> = []
  private partsLength = 0

  /** Replaced when the connection is upgraded to TLS. */
  socket: net.Socket
  private readonly peer: "client" | "backend"

  constructor(socket: net.Socket, peer: "client" | "backend") {
    this.socket = socket
    this.peer = peer
  }

  /** The unconsumed bytes, contiguous. */
  get bytes(): Buffer {
    this.join()
    return this.buf
  }

  consume(n: number): void {
    this.join()
    this.buf = this.buf.length === n ? empty : this.buf.subarray(n)
  }

  /** Everything unconsumed, copied so it does not pin the socket's chunks, and forgotten here. */
  take(): Buffer {
    this.join()
    const out = Buffer.from(this.buf)
    this.buf = empty
    return out
  }

  private join(): void {
    if (this.parts.length === 0) return
    this.buf = Buffer.concat([this.buf, ...this.parts], this.buf.length + this.partsLength)
    this.parts = []
    this.partsLength = 0
  }

  /**
   * Waits until `decode` answers Frame (returned; nothing is consumed) or Invalid (BAD_REQUEST). With `quietAfter`
   * (epoch ms), a connection with nothing buffered at that time fails with a quiet HANDSHAKE_TIMEOUT; a message
   * already under way is waited for (the listener's own deadline bounds it).
   */
  read<A>(decode: (buf: Buffer) => Decoded<A>, quietAfter?: number): Effect.Effect<Frame<A>, ProxyError> {
    return Effect.callback<Frame<A>, ProxyError>((resume) => {
      const socket = this.socket
      let wanted = 0
      let timer: NodeJS.Timeout | undefined
      const finish = () => {
        clearTimeout(timer)
        socket.pause()
        socket.off("data", onData)
        socket.off("end", onEnd)
        socket.off("close", onEnd)
        socket.off("error", onError)
      }
      const attempt = (): boolean => {
        this.join()
        if (this.buf.length === 0) return false
        const d = decode(this.buf)
        if (d._tag === "Need") {
          wanted = this.buf.length + d.bytes
          return false
        }
        finish()
        resume(d._tag === "Frame" ? Effect.succeed(d) : Effect.fail(proxyError("BAD_REQUEST", this.peer, d.reason)))
        return true
      }
      const onData = (chunk: Buffer) => {
        this.parts.push(chunk)
        this.partsLength += chunk.length
        if (this.buf.length + this.partsLength >= wanted) attempt()
      }
      const onEnd = () => {
        finish()
        const between = this.buf.length + this.partsLength === 0
        resume(
          Effect.fail(
            proxyError(
              "BAD_REQUEST",
              this.peer,
              between
                ? `${this.peer} closed the connection`
                : `${this.peer} closed the connection in the middle of a message`,
              // A driver closing an idle connection is routine, not an incident.
              { quiet: between && this.peer === "client" }
            )
          )
        )
      }
      const onError = (err: Error) => {
        finish()
        resume(Effect.fail(proxyError("BAD_REQUEST", this.peer, `${this.peer} connection failed: ${err.message}`)))
      }
      const onQuiet = () => {
        if (this.buf.length + this.partsLength > 0) return
        finish()
        resume(
          Effect.fail(
            proxyError(
              "HANDSHAKE_TIMEOUT",
              this.peer,
              "closed an idle connection that named no database (the driver opens a new one when it needs one)",
              { quiet: true }
            )
          )
        )
      }
      if (attempt()) return
      // Ended or reset while nobody listened (between two reads): say so now rather than wait for a deadline.
      if (socket.destroyed || socket.readableEnded) {
        onEnd()
        return
      }
      socket.on("data", onData)
      socket.once("end", onEnd)
      socket.once("close", onEnd)
      socket.once("error", onError)
      if (quietAfter !== undefined) timer = setTimeout(onQuiet, Math.max(0, quietAfter - Date.now()))
      socket.resume()
      return Effect.sync(finish)
    })
  }
}
