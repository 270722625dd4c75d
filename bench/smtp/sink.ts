// The smtp scenario's backend: an smtp-server sink in its own process (so its CPU is not the load generator's).
//   node bench/smtp/sink.ts [--lifetime SECONDS]
// No TLS (STARTTLS not offered), no AUTH; every message is read to its end, discarded and counted. Listens on
// 127.0.0.1, a free port, and prints {"port":N} on stdout once it accepts connections. Each "count" line on stdin
// is answered with {"count":MESSAGES,"bytes":BYTES,"sessions":N} (totals since start). Exits when stdin closes
// (the runner is gone), on SIGTERM, or when its lifetime is over, so it never outlives the bench.
import { fstatSync } from "node:fs"
import type { AddressInfo } from "node:net"
import { SMTPServer } from "smtp-server"

const args = process.argv.slice(2)
const lifetimeIndex = args.indexOf("--lifetime")
const lifetimeS = lifetimeIndex >= 0 ? Number(args[lifetimeIndex + 1]) : 3600

let count = 0
let bytes = 0
let sessions = 0

const server = new SMTPServer({
  name: "sink.polyproxy.bench",
  banner: "polyproxy bench sink",
  disabledCommands: ["STARTTLS", "AUTH"],
  authOptional: true,
  disableReverseLookup: true,
  logger: false,
  closeTimeout: 500,
  onConnect(_session, callback) {
    sessions++
    callback()
  },
  onData(stream, _session, callback) {
    stream.on("data", (chunk: Buffer) => {
      bytes += chunk.length
    })
    stream.once("error", (error) => callback(error))
    stream.once("end", () => {
      count++
      callback()
    })
  }
})
server.on("error", () => {}) // a client reset mid-session is not the sink's problem

server.listen(0, "127.0.0.1", () => {
  const port = (server.server.address() as AddressInfo).port
  process.stdout.write(`${JSON.stringify({ port })}\n`)
})

const quit = () => process.exit(0)
// The runner's stdin pipe is a socket pair (Node's `stdio: "pipe"`), a shell's is a FIFO.
const stdin = fstatSync(0)
if (stdin.isFIFO() || stdin.isSocket()) {
  let buffered = ""
  process.stdin.setEncoding("utf8").on("data", (s: string) => {
    buffered += s
    for (let i = buffered.indexOf("\n"); i >= 0; i = buffered.indexOf("\n")) {
      const line = buffered.slice(0, i).trim()
      buffered = buffered.slice(i + 1)
      if (line === "count") process.stdout.write(`${JSON.stringify({ count, bytes, sessions })}\n`)
    }
  })
  process.stdin.on("end", quit)
  process.stdin.on("close", quit)
}
process.on("SIGTERM", quit)
setTimeout(quit, lifetimeS * 1000).unref()
