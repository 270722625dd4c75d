// The SNI bench's load generator: N loops of new TLS connections (full handshakes, no session resumption), each
// verifying the origin's certificate, reading its "ok", then closing. op = one connection.
//   node bench/sni/loadgen.ts --targets NAME@PORT,NAME@PORT --ca FILE,FILE [--concurrency N] [--duration S]
//                             [--warmup S]
// Loops take the targets in turn (server name NAME, TCP to 127.0.0.1:PORT). Prints {"event":"measuring"} when the
// measured window starts and {"event":"result",…} when it ends, so the runner reads proxy CPU time at those lines.
import { fstatSync, readFileSync } from "node:fs"
import * as tls from "node:tls"
import { parseArgs } from "node:util"

const { values } = parseArgs({
  options: {
    targets: { type: "string" },
    ca: { type: "string" },
    concurrency: { type: "string", default: "32" },
    duration: { type: "string", default: "10" },
    warmup: { type: "string", default: "2" }
  }
})
const targets = String(values.targets ?? "")
  .split(",")
  .filter(Boolean)
  .map((t) => {
    const [servername, port] = t.split("@")
    return { servername: servername!, port: Number(port) }
  })
const ca = String(values.ca ?? "")
  .split(",")
  .filter(Boolean)
  .map((f) => readFileSync(f))
const concurrency = Number(values.concurrency)
const durationMs = Number(values.duration) * 1000
const warmupMs = Number(values.warmup) * 1000
if (targets.length === 0 || ca.length === 0 || !(concurrency > 0) || !(durationMs > 0)) {
  process.stderr.write("loadgen: usage: --targets NAME@PORT[,…] --ca FILE[,…] [--concurrency N] [--duration S]\n")
  process.exit(2)
}

const emit = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`)
setTimeout(() => process.exit(3), durationMs + warmupMs + 15_000).unref()
if (fstatSync(0).isFIFO()) process.stdin.on("close", () => process.exit(4)).resume()

let measuring = false
let stopped = false
let ops = 0
let errors = 0
let firstError: string | undefined
let next = 0

const loop = () => {
  if (stopped) return
  const target = targets[next++ % targets.length]!
  let answered = false
  const socket = tls.connect({ host: "127.0.0.1", port: target.port, servername: target.servername, ca })
  socket.on("data", () => {
    answered = true
  })
  socket.on("error", (e) => {
    if (measuring) errors++
    firstError ??= e.message
  })
  socket.on("close", () => {
    if (measuring && answered) ops++
    loop()
  })
}

for (let i = 0; i < concurrency; i++) loop()
setTimeout(() => {
  measuring = true
  const started = performance.now()
  emit({ event: "measuring" })
  setTimeout(() => {
    measuring = false
    stopped = true
    const seconds = (performance.now() - started) / 1000
    emit({ event: "result", ops, seconds, rate: ops / seconds, errors, firstError })
    setTimeout(() => process.exit(0), 200)
  }, durationMs)
}, warmupMs)
