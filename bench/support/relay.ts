// The Node floor: the least a Node TCP relay can be. net.createServer, net.connect to one fixed target, data and
// drain handlers for backpressure both ways, end and close passed on, nothing else (no routing, no limits, no
// metrics, no timeouts). polyproxy beside it in the same run shows what its own code costs over raw Node.
//   node bench/support/relay.ts TARGET_PORT [TARGET_PORT...]
// Several targets take connections in turn (the smtp scenario's two sinks, as HAProxy's roundrobin does).
// Prints {"port":N} once listening on 127.0.0.1; exits when stdin (a pipe) closes or on SIGTERM.
import { fstatSync } from "node:fs"
import * as net from "node:net"

const targets = process.argv.slice(2).map(Number)
if (targets.length === 0 || !targets.every((t) => t > 0)) {
  process.stderr.write("usage: node bench/support/relay.ts TARGET_PORT [TARGET_PORT...]\n")
  process.exit(2)
}
let next = 0

const pipe = (from: net.Socket, to: net.Socket) => {
  from.on("data", (chunk: Buffer) => {
    if (!to.write(chunk)) from.pause()
  })
  to.on("drain", () => from.resume())
  from.on("end", () => to.end())
  from.on("error", () => to.destroy())
  from.on("close", () => to.destroy())
}

const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
  const port = targets[next++ % targets.length]!
  const upstream = net.connect({ host: "127.0.0.1", port, allowHalfOpen: true, noDelay: true })
  pipe(client, upstream)
  pipe(upstream, client)
})
server.listen({ host: "127.0.0.1", port: 0, backlog: 4096 }, () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as net.AddressInfo).port })}\n`)
})

const quit = () => process.exit(0)
const stdin = fstatSync(0)
if (stdin.isFIFO() || stdin.isSocket()) process.stdin.on("close", quit).resume()
process.on("SIGTERM", quit)
