// identify helper: read from a socket until a pure decoder returns a frame. The decoder never sees the socket and the
// socket is paused again before the frame is handed over, so nothing after the frame is lost or read twice.

import type * as net from "node:net"
import * as Effect from "effect/Effect"
import type { Decoded } from "../codec/Decode.ts"
import { type ProxyError, proxyError } from "../domain/ProxyError.ts"

/** The result shape every codec in src/codec returns. */
export type DecodeResult<A> = Decoded<A>

export interface ReadFrame<A> {
  readonly value: A
  /** The frame's own bytes. */
  readonly bytes: Buffer
  /** Bytes that arrived after the frame. */
  readonly rest: Buffer
}

const empty = Buffer.alloc(0)

/**
 * Reads until `decode` answers Frame (success) or Invalid (BAD_REQUEST). Fails if the client closes first or sends
 * more than `maxBytes` without completing a frame. `initial` holds bytes already read (the rest of an earlier frame).
 * The callback form: `done` is called once, unless the returned function (cancel) comes first.
 */
export const readFrameNow = <A>(
  socket: net.Socket,
  decode: (buf: Buffer) => DecodeResult<A>,
  maxBytes: number,
  done: (read: ReadFrame<A> | undefined, error: ProxyError | undefined) => void,
  initial: Buffer = empty
): (() => void) => {
  let buf = initial
  const cleanup = () => {
    socket.pause()
    socket.off("data", onData)
    socket.off("end", onEnd)
    socket.off("close", onEnd)
    socket.off("error", onError)
  }
  const attempt = (): boolean => {
    if (buf.length === 0) return false
    const d = decode(buf)
    if (d._tag === "Need") {
      if (buf.length + d.bytes > maxBytes) {
        cleanup()
        done(undefined, proxyError("BAD_REQUEST", "client", `handshake larger than ${maxBytes} bytes`))
        return true
      }
      return false
    }
    cleanup()
    if (d._tag === "Invalid") done(undefined, proxyError("BAD_REQUEST", "client", d.reason))
    else done({ value: d.value, bytes: buf.subarray(0, d.size), rest: buf.subarray(d.size) }, undefined)
    return true
  }
  function onData(chunk: Buffer) {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
    attempt()
  }
  function onEnd() {
    cleanup()
    done(undefined, proxyError("BAD_REQUEST", "client", "client closed the connection during its handshake"))
  }
  function onError(err: Error) {
    cleanup()
    done(
      undefined,
      proxyError("BAD_REQUEST", "client", `client connection failed during its handshake: ${err.message}`)
    )
  }
  if (attempt()) return cleanup
  socket.on("data", onData)
  socket.once("end", onEnd)
  socket.once("close", onEnd)
  socket.once("error", onError)
  socket.resume()
  return cleanup
}

/** readFrameNow for a fiber. */
export const readFrame = <A>(
  socket: net.Socket,
  decode: (buf: Buffer) => DecodeResult<A>,
  maxBytes: number,
  initial: Buffer = empty
): Effect.Effect<ReadFrame<A>, ProxyError> =>
  Effect.callback<ReadFrame<A>, ProxyError>((resume) => {
    const cancel = readFrameNow(
      socket,
      decode,
      maxBytes,
      (read, error) => resume(error === undefined ? Effect.succeed(read!) : Effect.fail(error)),
      initial
    )
    return Effect.sync(cancel)
  })
