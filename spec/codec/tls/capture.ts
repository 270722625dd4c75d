// Real ClientHellos, captured from real TLS clients (node:tls, curl) by a TCP server that only listens.
import { execFile } from "node:child_process"
import * as net from "node:net"
import * as tls from "node:tls"
import { decodeClientHello } from "../../../src/codec/tls/index.ts"

/** Listens on a free port, hands each client's bytes to `capture` once they hold a whole ClientHello (or 2 s pass). */
const captureFrom = async (connect: (port: number) => void): Promise<Buffer> => {
  const server = net.createServer()
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  const port = (server.address() as net.AddressInfo).port
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no ClientHello within 5 s")), 5_000)
      server.once("connection", (socket) => {
        let buf = Buffer.alloc(0)
        socket.on("error", () => {})
        socket.on("data", (chunk: Buffer) => {
          buf = Buffer.concat([buf, chunk])
          if (decodeClientHello(buf)._tag === "Need") return
          clearTimeout(timer)
          socket.destroy()
          resolve(buf)
        })
      })
      connect(port)
    })
  } finally {
    server.close()
  }
}

export const nodeHello = (options: tls.ConnectionOptions): Promise<Buffer> =>
  captureFrom((port) => {
    const s = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false, ...options })
    s.on("error", () => {})
  })

export const curlAvailable = (): Promise<boolean> =>
  new Promise((resolve) => execFile("curl", ["--version"], (error) => resolve(!error)))

export const curlHello = (host: string, extra: ReadonlyArray<string> = []): Promise<Buffer> =>
  captureFrom((port) => {
    execFile(
      "curl",
      ["-sk", "--max-time", "5", "--resolve", `${host}:${port}:127.0.0.1`, ...extra, `https://${host}:${port}/`],
      () => {}
    )
  })

/** Re-frames one record's handshake bytes as several records of at most `size` bytes each. */
export const refragment = (hello: Buffer, size: number): Buffer => {
  const body = hello.subarray(5, 5 + hello.readUInt16BE(3))
  const records: Array<Buffer> = []
  for (let i = 0; i < body.length; i += size) {
    const part = body.subarray(i, i + size)
    const header = Buffer.from([0x16, hello[1]!, hello[2]!, 0, 0])
    header.writeUInt16BE(part.length, 3)
    records.push(header, part)
  }
  return Buffer.concat(records)
}
