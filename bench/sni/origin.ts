// The SNI bench's TLS origins: one node:tls server per certificate, each answering "ok\n" as soon as the handshake
// is done, then closing. Prints {"ports":[…]} once listening; exits when stdin closes (the runner is gone).
//   node bench/sni/origin.ts CERT:KEY [CERT:KEY …]
import { fstatSync, readFileSync } from "node:fs"
import type * as net from "node:net"
import * as tls from "node:tls"

const ok = Buffer.from("ok\n")
function onSecure(this: tls.Server, socket: tls.TLSSocket) {
  socket.on("error", ignore)
  socket.end(ok)
}
function ignore() {}

const servers = process.argv.slice(2).map((pair) => {
  const [cert, key] = pair.split(":")
  const server = tls.createServer({ cert: readFileSync(cert!), key: readFileSync(key!) })
  server.on("secureConnection", onSecure)
  // Clients that drop mid-handshake (the load generator stopping) are not an error here.
  server.on("tlsClientError", ignore)
  return server
})
const ports = await Promise.all(
  servers.map(
    (s) =>
      new Promise<number>((resolve) =>
        s.listen({ host: "127.0.0.1", port: 0, backlog: 4096 }, () => resolve((s.address() as net.AddressInfo).port))
      )
  )
)
process.stdout.write(`${JSON.stringify({ ports })}\n`)

const quit = () => process.exit(0)
if (fstatSync(0).isFIFO()) {
  process.stdin.on("end", quit)
  process.stdin.on("close", quit)
  process.stdin.resume()
}
process.on("SIGTERM", quit)
setTimeout(quit, 3_600_000).unref()
