// A forwarder between the proxy and PostgreSQL that hands the server's messages on one write at a time and waits
// after each ErrorResponse: what PostgreSQL sends in two flushes close together (an error, then its ReadyForQuery)
// reaches the proxy in reads of their own, as it does on a busy machine, with time for the client to send more between.
import * as net from "node:net"
import { setTimeout as sleep } from "node:timers/promises"

export interface SplitReplies {
  readonly port: number
  close(): Promise<void>
}

export const startSplitReplies = async (target: number, pauseMs: number): Promise<SplitReplies> => {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((client) => {
    const upstream = net.connect(target, "127.0.0.1")
    sockets.add(client)
    sockets.add(upstream)
    client.pipe(upstream)
    let pending = Buffer.alloc(0)
    let chain = Promise.resolve()
    upstream.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk])
      while (pending.length >= 5 && pending.length >= 1 + pending.readInt32BE(1)) {
        const frame = pending.subarray(0, 1 + pending.readInt32BE(1))
        pending = pending.subarray(frame.length)
        chain = chain.then(async () => {
          if (!client.destroyed) client.write(frame)
          if (frame[0] === 0x45) await sleep(pauseMs)
        })
      }
    })
    const end = () => {
      client.destroy()
      upstream.destroy()
    }
    for (const s of [client, upstream]) {
      s.on("close", end)
      s.on("error", end)
    }
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}
