// The TCP scenario's load generator: one process, plain `net` sockets, shared handlers, no stream or promise per op.
//   node bench/tcp/loadgen.ts --mode conn|echo|bulk|latency --port P [--host 127.0.0.1] [--duration S]
//                             [--warmup S] [--concurrency N] [--size BYTES]
// Modes (defaults in brackets):
//   conn     N [100] loops of: connect, write SIZE [64] bytes, read them back, end, wait for close. op = one connection
//   echo     N [100] connections opened up front, each writing SIZE [1024] bytes and waiting for them (one in
//            flight per connection). op = one round trip
//   bulk     N [4] connections each writing SIZE [65536]-byte chunks as fast as backpressure allows (at most 1 MiB
//            unanswered per connection) and reading the echo. bytes = bytes echoed back
//   latency  1 connection, SIZE [64] bytes ping-pong; every round trip timed (p50, p99)
// It first runs the workload unmeasured for --warmup seconds, prints {"event":"measuring"} when the measured window
// starts, {"event":"result",...} when it ends (before any teardown), then exits. The runner reads the proxy's CPU
// time at those two lines. Exits on its own at duration + warmup + 15 s whatever happens, and when stdin closes.
import { fstatSync } from "node:fs"
import * as net from "node:net"
import { parseArgs } from "node:util"

const { values } = parseArgs({
  options: {
    mode: { type: "string", default: "echo" },
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string" },
    duration: { type: "string", default: "5" },
    warmup: { type: "string", default: "1" },
    concurrency: { type: "string" },
    size: { type: "string" }
  }
})
const mode = String(values.mode)
const host = String(values.host)
const port = Number(values.port)
const durationMs = Number(values.duration) * 1000
const warmupMs = Number(values.warmup) * 1000
const defaults: Record<string, { concurrency: number; size: number }> = {
  conn: { concurrency: 100, size: 64 },
  echo: { concurrency: 100, size: 1024 },
  bulk: { concurrency: 4, size: 65536 },
  latency: { concurrency: 1, size: 64 }
}
const modeDefaults = defaults[mode]
if (modeDefaults === undefined || !(port > 0) || !(durationMs > 0) || !(warmupMs >= 0)) {
  process.stderr.write("loadgen: usage: --mode conn|echo|bulk|latency --port P [--duration S] [--warmup S]\n")
  process.exit(2)
}
const concurrency = values.concurrency === undefined ? modeDefaults.concurrency : Number(values.concurrency)
const size = values.size === undefined ? modeDefaults.size : Number(values.size)
const payload = Buffer.alloc(size, 0x61)

const emit = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`)
const hardStop = setTimeout(
  () => {
    process.stderr.write("loadgen: ran past its deadline\n")
    process.exit(3)
  },
  durationMs + warmupMs + 15_000
)
hardStop.unref()
// Started by the runner with a pipe on stdin: the pipe closing means the runner is gone.
if (fstatSync(0).isFIFO()) {
  process.stdin.on("end", () => process.exit(4))
  process.stdin.resume()
}

type Sock = net.Socket & { _got: number; _sent: number; _done: boolean }

let measuring = false
let stopped = false
let ops = 0
let bytes = 0
let errors = 0
const errorCodes: Record<string, number> = {}
const sockets = new Set<Sock>()
// latency mode: round-trip times in ns
let rtts = new Float64Array(1 << 16)
let rttCount = 0
let sentAt = 0n

function onError(this: Sock, err: NodeJS.ErrnoException) {
  if (stopped) return
  errors++
  const code = err.code ?? "ERROR"
  errorCodes[code] = (errorCodes[code] ?? 0) + 1
}

// ---- conn: connect, round trip, close, repeat
function connOnConnect(this: Sock) {
  this.write(payload)
}
function connOnData(this: Sock, chunk: Buffer) {
  this._got += chunk.length
  if (this._got >= size && !this._done) {
    this._done = true
    this.end()
  }
}
function connOnClose(this: Sock) {
  sockets.delete(this)
  if (this._done) {
    if (measuring) ops++
  } else if (!stopped) {
    errors++
    errorCodes.EARLY_CLOSE = (errorCodes.EARLY_CLOSE ?? 0) + 1
  }
  if (!stopped) connOpen()
}
const connOpen = () => {
  const s = net.connect({ host, port, noDelay: true }) as Sock
  s._got = 0
  s._sent = 0
  s._done = false
  sockets.add(s)
  s.on("connect", connOnConnect)
  s.on("data", connOnData)
  s.on("error", onError)
  s.on("close", connOnClose)
}

// ---- echo / latency: one message in flight per connection
function echoOnData(this: Sock, chunk: Buffer) {
  this._got += chunk.length
  while (this._got >= size) {
    this._got -= size
    if (measuring) ops++
    if (mode === "latency") {
      if (measuring) {
        if (rttCount === rtts.length) {
          const bigger = new Float64Array(rtts.length * 2)
          bigger.set(rtts)
          rtts = bigger
        }
        rtts[rttCount++] = Number(process.hrtime.bigint() - sentAt)
      }
      sentAt = process.hrtime.bigint()
    }
    if (!stopped) this.write(payload)
  }
}

// ---- bulk: as fast as backpressure allows, at most `window` bytes unanswered per connection
const window = 1 << 20
const pump = (s: Sock) => {
  while (!stopped && s._sent - s._got < window) {
    s._sent += size
    if (!s.write(payload)) return // 'drain' pumps again
  }
}
function bulkOnData(this: Sock, chunk: Buffer) {
  this._got += chunk.length
  if (measuring) bytes += chunk.length
  if (this.writableLength === 0) pump(this)
}
function bulkOnDrain(this: Sock) {
  pump(this)
}

function onPersistentClose(this: Sock) {
  sockets.delete(this)
  if (!stopped) {
    errors++
    errorCodes.EARLY_CLOSE = (errorCodes.EARLY_CLOSE ?? 0) + 1
  }
}

const openPersistent = (): Promise<void> =>
  new Promise((resolve, reject) => {
    let pending = concurrency
    for (let i = 0; i < concurrency; i++) {
      const s = net.connect({ host, port, noDelay: true }) as Sock
      s._got = 0
      s._sent = 0
      s._done = false
      sockets.add(s)
      s.once("connect", () => {
        if (--pending === 0) resolve()
      })
      s.once("error", reject)
      s.on("error", onError)
      s.on("close", onPersistentClose)
      if (mode === "bulk") {
        s.on("data", bulkOnData)
        s.on("drain", bulkOnDrain)
      } else s.on("data", echoOnData)
    }
  })

const percentile = (sorted: Float64Array, p: number): number =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!

const main = async () => {
  if (mode === "conn") {
    for (let i = 0; i < concurrency; i++) connOpen()
  } else {
    await openPersistent()
    for (const s of sockets) {
      if (mode === "bulk") pump(s)
      else {
        sentAt = process.hrtime.bigint()
        s.write(payload)
      }
    }
  }
  await new Promise((r) => setTimeout(r, warmupMs))
  const cpu0 = process.cpuUsage()
  const errors0 = errors
  measuring = true
  emit({ event: "measuring" })
  const t0 = process.hrtime.bigint()
  await new Promise((r) => setTimeout(r, durationMs))
  measuring = false
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  const cpu = process.cpuUsage(cpu0)
  const result: Record<string, unknown> = {
    event: "result",
    mode,
    concurrency,
    size,
    seconds,
    ops,
    bytes,
    rate: mode === "bulk" ? bytes / seconds : ops / seconds,
    errors: errors - errors0,
    errorCodes,
    loadgenCpuSeconds: (cpu.user + cpu.system) / 1e6
  }
  if (mode === "latency") {
    const sorted = rtts.slice(0, rttCount).sort()
    result.latencyUs = {
      p50: percentile(sorted, 50) / 1000,
      p90: percentile(sorted, 90) / 1000,
      p99: percentile(sorted, 99) / 1000,
      max: (sorted[sorted.length - 1] ?? 0) / 1000,
      mean: sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length) / 1000
    }
  }
  emit(result)
  stopped = true
  for (const s of sockets) s.destroy()
  process.exit(0)
}

main().catch((error: unknown) => {
  process.stderr.write(`loadgen: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exit(1)
})
