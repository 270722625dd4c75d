// The smtp scenario's load generator: one process, one nodemailer pooled SMTP transport, sending prebuilt raw
// messages of a fixed size as fast as the pool's connections take them.
//   node bench/smtp/loadgen.ts --port P [--host 127.0.0.1] [--connections N] [--size BYTES] [--duration S]
//                              [--warmup S] [--name tenant-a.example]
// The transport: `pool: true, maxConnections: N, maxMessages: Infinity, ignoreTLS: true, name` (the EHLO name the
// proxy routes by). 2 × N messages are kept queued so no pooled connection waits for work; each message is the same
// raw RFC 5322 buffer of exactly SIZE bytes (76-character lines), so nodemailer composes no MIME per message.
// It first sends unmeasured for --warmup seconds (the pool's N connections are opened and greeted then), prints
// {"event":"measuring"} when the measured window starts and {"event":"result",...} when it ends, then stops queuing,
// waits (at most 5 s) for what is in flight, closes the pool and exits. A message counts when its 250 reply to the
// final "." arrives inside the window. Exits on its own at duration + warmup + 20 s whatever happens, and when stdin
// closes.
import { fstatSync } from "node:fs"
import { parseArgs } from "node:util"
import nodemailer from "nodemailer"

const { values } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string" },
    connections: { type: "string", default: "1" },
    size: { type: "string", default: "1024" },
    duration: { type: "string", default: "5" },
    warmup: { type: "string", default: "1" },
    name: { type: "string", default: "tenant-a.example" }
  }
})
const host = String(values.host)
const port = Number(values.port)
const connections = Number(values.connections)
const size = Number(values.size)
const durationMs = Number(values.duration) * 1000
const warmupMs = Number(values.warmup) * 1000
const name = String(values.name)
if (!(port > 0) || !(connections >= 1) || !(size >= 512) || !(durationMs > 0) || !(warmupMs >= 0)) {
  process.stderr.write(
    "loadgen: usage: --port P [--connections N] [--size BYTES >= 512] [--duration S] [--warmup S] [--name EHLO]\n"
  )
  process.exit(2)
}

const emit = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`)
const hardStop = setTimeout(
  () => {
    process.stderr.write("loadgen: ran past its deadline\n")
    process.exit(3)
  },
  durationMs + warmupMs + 20_000
)
hardStop.unref()
// Started by the runner with a pipe on stdin: the pipe closing means the runner is gone.
const stdin = fstatSync(0)
if (stdin.isFIFO() || stdin.isSocket()) {
  process.stdin.on("end", () => process.exit(4))
  process.stdin.resume()
}

/** A plain-text message of exactly `bytes` bytes: headers, a blank line, 76-character lines of letters. */
const rawMessage = (bytes: number): Buffer => {
  const head =
    `From: bench@${name}\r\nTo: sink@${name}\r\nSubject: polyproxy smtp bench\r\n` +
    `Message-ID: <bench.${bytes}@${name}>\r\nDate: ${new Date().toUTCString()}\r\nMIME-Version: 1.0\r\n` +
    "Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
  let body = ""
  let i = 0
  while (head.length + body.length + 78 <= bytes) {
    body += `${String.fromCharCode(97 + (i++ % 26)).repeat(76)}\r\n`
  }
  const rest = bytes - head.length - body.length
  if (rest >= 3) body += `${"z".repeat(rest - 2)}\r\n`
  else body += "\r\n".slice(0, rest)
  const out = Buffer.from(head + body, "ascii")
  if (out.length !== bytes) throw new Error(`message is ${out.length} bytes, wanted ${bytes}`)
  return out
}

const raw = rawMessage(size)
const envelope = { from: `bench@${name}`, to: [`sink@${name}`] }
const transport = nodemailer.createTransport({
  host,
  port,
  secure: false,
  ignoreTLS: true,
  name,
  pool: true,
  maxConnections: connections,
  maxMessages: Number.POSITIVE_INFINITY,
  connectionTimeout: 5_000,
  greetingTimeout: 5_000,
  socketTimeout: 15_000,
  logger: false,
  debug: false,
  disableFileAccess: true,
  disableUrlAccess: true
})

const queued = connections * 2
let inFlight = 0
let measuring = false
let stopped = false
let ops = 0
let errors = 0
const errorCodes: Record<string, number> = {}
let retryScheduled = false

const pump = (): void => {
  while (!stopped && inFlight < queued) sendOne()
}

const sendOne = (): void => {
  inFlight++
  transport.sendMail({ envelope, raw }, (error) => {
    inFlight--
    if (error) {
      if (stopped) return
      errors++
      const e = error as Error & { code?: string; responseCode?: number }
      const code = e.responseCode === undefined ? (e.code ?? "ERROR") : String(e.responseCode)
      errorCodes[code] = (errorCodes[code] ?? 0) + 1
      // No hot loop against a proxy or sink that refuses: try again a little later.
      if (!retryScheduled) {
        retryScheduled = true
        setTimeout(() => {
          retryScheduled = false
          pump()
        }, 20)
      }
      return
    }
    if (measuring) ops++
    pump()
  })
}

const finish = async (): Promise<void> => {
  stopped = true
  const deadline = Date.now() + 5_000
  while (inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  transport.close()
  setTimeout(() => process.exit(0), 100)
}

pump()
setTimeout(() => {
  const cpu0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  measuring = true
  emit({ event: "measuring" })
  setTimeout(() => {
    measuring = false
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9
    const cpu = process.cpuUsage(cpu0)
    emit({
      event: "result",
      rate: ops / seconds,
      ops,
      bytes: ops * size,
      seconds,
      errors,
      errorCodes,
      loadgenCpuSeconds: (cpu.user + cpu.system) / 1e6
    })
    void finish()
  }, durationMs)
}, warmupMs)
