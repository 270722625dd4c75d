// Helpers shared by the pg codec specs: raw packets, and a loop that decodes a buffer message by message.
import { createServer, type Socket } from "node:net"
import { type Decoded, decodeErrorResponse } from "../../../src/codec/pg/index.ts"

import { decodeAll, feedByteByByte } from "../support.ts"

export { decodeAll, feedByteByByte }

/** An int32 length and code followed by `body`, with the length written as given (right or wrong). */
export const packet = (length: number, code: number, body: Uint8Array = new Uint8Array()): Buffer => {
  const out = Buffer.alloc(8 + body.length)
  out.writeInt32BE(length | 0, 0)
  out.writeInt32BE(code | 0, 4)
  out.set(body, 8)
  return out
}

/** A typed message: type byte, int32 length counting itself, body. */
export const message = (type: string, body: Uint8Array = new Uint8Array()): Buffer => {
  const out = Buffer.alloc(5 + body.length)
  out.write(type, 0, "latin1")
  out.writeInt32BE(4 + body.length, 1)
  out.set(body, 5)
  return out
}

/** The fields of the one whole ErrorResponse `bytes` must be, by type letter. */
export const fieldsOf = (bytes: Buffer): Record<string, string> => {
  const result = decodeErrorResponse(bytes)
  if (result._tag !== "Frame") throw new Error(`expected an ErrorResponse, got ${JSON.stringify(result)}`)
  if (result.size !== bytes.length) throw new Error(`${bytes.length - result.size} bytes after the ErrorResponse`)
  return Object.fromEntries(result.value.fields)
}

export const int32 = (...values: number[]): Buffer => {
  const out = Buffer.alloc(4 * values.length)
  for (const [i, value] of values.entries()) out.writeInt32BE(value, 4 * i)
  return out
}

/** The check every decoder result must pass whatever the input. */
export const wellFormed = <A>(result: Decoded<A>, inputLength: number): boolean => {
  switch (result._tag) {
    case "Need":
      return Number.isInteger(result.bytes) && result.bytes > 0
    case "Frame":
      return Number.isInteger(result.size) && result.size > 0 && result.size <= inputLength
    case "Invalid":
      return typeof result.reason === "string" && result.reason.length > 0
  }
}

export interface TestServer {
  readonly port: number
  readonly close: () => Promise<void>
}

/** A TCP server on 127.0.0.1 and a free port, closing every connection it accepted when closed. */
export const listen = async (onConnection: (socket: Socket) => void): Promise<TestServer> => {
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.once("close", () => sockets.delete(socket))
    socket.on("error", () => {})
    onConnection(socket)
  })
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", resolve)
  })
  const address = server.address()
  if (address === null || typeof address === "string") throw new Error("expected a TCP address")
  return {
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      })
  }
}

/** Reads until `decode` stops answering Need; resolves with its answer and every byte read so far. */
export const readFrame = <A>(
  socket: Socket,
  decode: (buf: Buffer) => Decoded<A>
): Promise<{ readonly result: Decoded<A>; readonly bytes: Buffer }> =>
  new Promise((resolve, reject) => {
    let bytes = Buffer.alloc(0)
    const onData = (chunk: Buffer) => {
      bytes = Buffer.concat([bytes, chunk])
      const result = decode(bytes)
      if (result._tag === "Need") return
      socket.off("data", onData)
      socket.off("close", onClose)
      socket.pause()
      resolve({ result, bytes })
    }
    const onClose = () => reject(new Error(`connection closed after ${bytes.length} bytes`))
    socket.on("data", onData)
    socket.once("close", onClose)
  })
