// The HTTP bench's origin: node:http answering every request with the same small body (keep-alive), its request
// body read and dropped. Prints {"port":N} once listening; exits when stdin closes (the runner is gone) or on SIGTERM.
//   node bench/http/origin.ts [--size BYTES]
import { fstatSync } from "node:fs"
import * as http from "node:http"
import type * as net from "node:net"

const args = process.argv.slice(2)
const sizeAt = args.indexOf("--size")
const size = sizeAt >= 0 ? Number(args[sizeAt + 1]) : 64
const body = Buffer.alloc(size, "x")
const headers = { "content-type": "text/plain", "content-length": String(size) }

const server = http.createServer((req, res) => {
  req.resume()
  res.writeHead(200, headers)
  res.end(body)
})
server.keepAliveTimeout = 60_000
server.listen({ host: "127.0.0.1", port: 0, backlog: 4096 }, () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as net.AddressInfo).port })}\n`)
})

const quit = () => process.exit(0)
if (fstatSync(0).isFIFO()) {
  process.stdin.on("end", quit)
  process.stdin.on("close", quit)
  process.stdin.resume()
}
process.on("SIGTERM", quit)
