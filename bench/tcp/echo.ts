// The TCP scenario's backend: a minimal echo server (plain `net`, shared handlers, pause/resume backpressure).
//   node bench/tcp/echo.ts [--lifetime SECONDS]
// Listens on 127.0.0.1, a free port, and prints {"port":N} on stdout once it accepts connections. Exits when stdin
// closes (the runner is gone), on SIGTERM, or when its lifetime is over, so it never outlives the bench.
import { fstatSync } from "node:fs"
import * as net from "node:net"

const args = process.argv.slice(2)
const lifetimeIndex = args.indexOf("--lifetime")
const lifetimeS = lifetimeIndex >= 0 ? Number(args[lifetimeIndex + 1]) : 3600

function onData(this: net.Socket, chunk: Buffer) {
  if (!this.write(chunk)) this.pause()
}
function onDrain(this: net.Socket) {
  this.resume()
}
function ignore() {}

// allowHalfOpen false: the client's FIN ends our side too, once what we still have to echo is written.
const server = net.createServer({ noDelay: true }, (socket) => {
  socket.on("data", onData)
  socket.on("drain", onDrain)
  socket.on("error", ignore)
})
server.listen({ host: "127.0.0.1", port: 0, backlog: 4096 }, () => {
  const address = server.address() as net.AddressInfo
  process.stdout.write(`${JSON.stringify({ port: address.port })}\n`)
})

const quit = () => process.exit(0)
if (fstatSync(0).isFIFO()) {
  process.stdin.on("end", quit)
  process.stdin.on("close", quit)
  process.stdin.resume()
}
process.on("SIGTERM", quit)
setTimeout(quit, lifetimeS * 1000).unref()
