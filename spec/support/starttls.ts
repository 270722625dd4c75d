// A TLS client for any polyproxy listener: each protocol's own way into TLS (Postgres SSLRequest, MySQL SSLRequest
// after the greeting, SMTP STARTTLS, direct TLS for MongoDB and HTTPS), then a plain Node TLSSocket to probe the
// handshake itself (versions, ciphers, renegotiation, resumption).
import * as net from "node:net"
import * as tls from "node:tls"
import { encodePacket, encodeSslRequest, UTF8MB4_GENERAL_CI } from "../../src/codec/mysql/index.ts"

export type TlsEntry = "postgres" | "mysql" | "smtp" | "direct"

/** Reads from `socket` until `done(bytes so far)` holds (or fails when the socket ends first). */
const readUntil = (socket: net.Socket, done: (b: Buffer) => boolean): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    let got = Buffer.alloc(0)
    const onData = (d: Buffer) => {
      got = Buffer.concat([got, d])
      if (!done(got)) return
      socket.off("data", onData)
      socket.off("end", onEnd)
      socket.pause()
      resolve(got)
    }
    const onEnd = () => reject(new Error(`closed before the TLS upgrade; got ${JSON.stringify(String(got))}`))
    socket.on("data", onData)
    socket.once("end", onEnd)
    socket.resume()
  })

const lastLineStarts = (prefix: string) => (b: Buffer) => {
  const lines = String(b).split("\r\n")
  return lines.length > 1 && lines.at(-2)!.startsWith(prefix)
}

/** The protocol's plaintext exchange up to the point where the client starts TLS. */
const upgrade = async (entry: TlsEntry, socket: net.Socket): Promise<void> => {
  switch (entry) {
    case "postgres": {
      const request = Buffer.alloc(8)
      request.writeInt32BE(8, 0)
      request.writeInt32BE(80877103, 4)
      socket.write(request)
      const answer = await readUntil(socket, (b) => b.length >= 1)
      if (answer[0] !== 0x53) throw new Error(`SSLRequest answered ${JSON.stringify(String(answer))}`)
      return
    }
    case "mysql": {
      await readUntil(socket, (b) => b.length >= 4 && b.length >= 4 + b.readUIntLE(0, 3))
      const payload = encodeSslRequest({ capabilities: 0, maxPacketSize: 1 << 24, characterSet: UTF8MB4_GENERAL_CI })
      socket.write(encodePacket(payload, 1))
      return
    }
    case "smtp": {
      await readUntil(socket, lastLineStarts("220 "))
      socket.write("EHLO client.test\r\n")
      await readUntil(socket, lastLineStarts("250 "))
      socket.write("STARTTLS\r\n")
      await readUntil(socket, lastLineStarts("220 "))
      return
    }
    case "direct":
      return
  }
}

/**
 * Opens TLS to a listener on 127.0.0.1:`port` the way its clients do. Resolves once the handshake is done, rejects
 * with the TLS error when it fails.
 */
export const openTls = async (
  entry: TlsEntry,
  port: number,
  options: tls.ConnectionOptions = {}
): Promise<tls.TLSSocket> => {
  const socket = net.connect(port, "127.0.0.1")
  socket.on("error", () => {})
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve)
    socket.once("error", reject)
  })
  await upgrade(entry, socket)
  return new Promise((resolve, reject) => {
    const secure = tls.connect({ socket, servername: "localhost", rejectUnauthorized: false, ...options })
    secure.once("secureConnect", () => {
      secure.off("error", reject)
      secure.on("error", () => {})
      resolve(secure)
    })
    secure.once("error", (e) => {
      socket.destroy()
      reject(e)
    })
  })
}
