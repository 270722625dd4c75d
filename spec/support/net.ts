// Small socket helpers the specs share: ports, an echo backend, a one-shot round trip.
import * as net from "node:net"
import { freePort } from "./backends/local.ts"

/** A loopback port nothing listens on (bound, then released): for "backend is down" cases. */
export const closedPort = freePort

/** An echo server on 127.0.0.1 (port 0 = any). */
export const echoServer = async (port = 0): Promise<net.Server> => {
  const s = net.createServer((c) => c.pipe(c))
  await new Promise<void>((r) => s.listen(port, "127.0.0.1", r))
  return s
}

/** Writes "ping" and resolves with the first answer, or "closed" when the proxy closes without one. */
export const ping = (port: number) =>
  new Promise<string>((resolve) => {
    const s = net.connect(port, "127.0.0.1", () => s.write("ping"))
    s.once("data", (d) => {
      resolve(String(d))
      s.destroy()
    })
    s.once("close", () => resolve("closed"))
    s.once("error", () => resolve("closed"))
  })

/** Writes `text` and resolves with what comes back once as many bytes arrived (or the peer closed). */
export const roundTrip = (port: number, text: string) =>
  new Promise<string>((res, rej) => {
    const s = net.connect(port, "127.0.0.1")
    let got = ""
    s.on("data", (d) => {
      got += d
      if (got.length >= text.length) {
        s.end()
        res(got)
      }
    })
    s.once("error", rej)
    s.once("close", () => res(got))
    s.write(text)
  })
