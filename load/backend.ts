// The load backend: a lightweight echo server on several addresses. Several of these processes listen on the same
// addresses (SO_REUSEPORT: the kernel spreads connections over them), so together they hold more sockets than one
// process may open. tcp mode echoes every byte; postgres mode answers the first packet (the startup message) with
// AuthenticationOk, BackendKeyData and ReadyForQuery, then echoes.
//   node load/backend.ts --listen 127.0.0.1:7001,127.0.0.1:7002 --mode tcp|postgres [--id K] [--lifetime S]
// Per socket: the socket, one number and one shared handler set. Reports a JSON line every 500 ms on stdout; exits
// when stdin closes (its coordinator is gone), on SIGTERM, or when its lifetime is over.
// load/native/backend.c does the same in C, and is what load/run.ts starts when it builds.
import * as net from "node:net"
import { type BackendReport, startupAnswer } from "./protocol.ts"

type Sock = net.Socket & { _need: number; _buf: Buffer | undefined }

const args = process.argv.slice(2)
const arg = (name: string, fallback: string): string => {
  const i = args.indexOf(name)
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback
}
const listen = arg("--listen", "127.0.0.1:0")
  .split(",")
  .filter((s) => s !== "")
const postgres = arg("--mode", "tcp") === "postgres"
const backendId = Number(arg("--id", "0"))
const lifetimeS = Number(arg("--lifetime", "3600"))

let open = 0
let accepted = 0
let errors = 0
const errorCodes: Record<string, number> = {}
const sockets = new Set<Sock>()
let nextPid = (backendId + 1) * 1_000_000

function onData(this: Sock, chunk: Buffer) {
  if (this._need === 0) {
    this.write(chunk)
    return
  }
  // postgres: the startup message is length-prefixed; answer once it is all here.
  const buf = this._buf === undefined ? chunk : Buffer.concat([this._buf, chunk])
  if (this._need < 0 && buf.length >= 4) this._need = buf.readInt32BE(0)
  if (this._need < 0 || buf.length < this._need) {
    this._buf = buf
    return
  }
  const rest = buf.subarray(this._need)
  this._need = 0
  this._buf = undefined
  this.write(startupAnswer(nextPid++, (Math.random() * 0x7fffffff) | 0))
  if (rest.length > 0) this.write(rest)
}

function onError(err: NodeJS.ErrnoException) {
  errors++
  const code = err.code ?? "ERROR"
  errorCodes[code] = (errorCodes[code] ?? 0) + 1
}

function onClose(this: Sock) {
  open--
  sockets.delete(this)
}

const onConnection = (socket: net.Socket) => {
  const s = socket as Sock
  s._need = postgres ? -1 : 0
  s._buf = undefined
  open++
  accepted++
  sockets.add(s)
  s.on("data", onData)
  s.on("error", onError)
  s.on("close", onClose)
}

const listening: Array<string> = []
const servers: Array<net.Server> = []
const report = () => {
  const r: BackendReport = {
    t: "backend",
    pid: process.pid,
    listening,
    open,
    accepted,
    errors,
    errorCodes,
    rssBytes: process.memoryUsage.rss()
  }
  process.stdout.write(`${JSON.stringify(r)}\n`)
}

const stop = (why: string) => {
  process.stderr.write(`backend ${backendId}: stopping (${why})\n`)
  for (const s of servers) s.close()
  for (const s of sockets) s.resetAndDestroy()
  setTimeout(() => process.exit(0), 100).unref()
}

let waiting = listen.length
for (const hp of listen) {
  const colon = hp.lastIndexOf(":")
  const server = net.createServer({ noDelay: true }, onConnection)
  servers.push(server)
  server.on("error", (e) => {
    process.stderr.write(`backend ${backendId}: ${hp}: ${e.message}\n`)
    process.exit(1)
  })
  server.listen(
    { host: hp.slice(0, colon), port: Number(hp.slice(colon + 1)), backlog: 65535, reusePort: true },
    () => {
      const a = server.address() as net.AddressInfo
      listening.push(`${a.address}:${a.port}`)
      if (--waiting === 0) report()
    }
  )
}

setInterval(report, 500).unref()
setTimeout(() => stop("lifetime over"), lifetimeS * 1000).unref()
process.stdin.on("data", () => {})
process.stdin.on("end", () => stop("stdin closed"))
process.on("SIGTERM", () => stop("SIGTERM"))
process.on("SIGINT", () => stop("SIGINT"))
