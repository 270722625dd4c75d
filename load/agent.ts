// A load agent: opens connections through the proxy, checks one round trip on each (tcp: an echoed probe;
// postgres: a startup message answered by AuthenticationOk/BackendKeyData/ReadyForQuery; postgres-pooled: a login as
// one of the configured roles, then `SELECT 1` read to ReadyForQuery: pgLogin.ts), then holds them idle and reports
// counts. It does what the coordinator says, as JSON lines (load/protocol.ts):
//   node load/agent.ts                                   control over stdin/stdout (spawned by load/run.ts)
//   node load/agent.ts --coordinator HOST:PORT [--index I]   control over TCP (a pod of load/k8s/agents-job.yaml;
//                                                        I defaults to $JOB_COMPLETION_INDEX)
// Per connection it keeps the socket, one small number of state and one shared handler set: no closures, no streams
// piped, no timers (one interval checks the few connections still pending).
// It exits by itself when its control channel closes, on `stop`, or when its configured lifetime is over.
// load/native/agent.c does the same in C (stdio control only), and is what load/run.ts starts when it builds.
import * as net from "node:net"
import * as os from "node:os"
import { PgLogin, type PgRole } from "./pgLogin.ts"
import {
  type AgentConfig,
  type FromAgent,
  jsonLines,
  loginsOf,
  PROBE,
  STARTUP_ANSWER_BYTES,
  startupMessage,
  type ToAgent
} from "./protocol.ts"

/** `_login`: postgres-pooled, while the login and its query are under way. */
type Conn = net.Socket & { _got: number; _t0: number; _ok: boolean; _login: PgLogin | undefined }

const args = process.argv.slice(2)
const arg = (name: string): string | undefined => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : undefined
}
const coordinator = arg("--coordinator") ?? process.env.LOAD_COORDINATOR
const id = Number(arg("--index") ?? process.env.JOB_COMPLETION_INDEX ?? 0)

let config: AgentConfig | undefined
let target = 0
let started = 0
let confirmed = 0
let failed = 0
let lost = 0
let skipped = 0
let closedByUs = 0
let stopping = false
const errors: Record<string, number> = {}
const pending = new Set<Conn>()
const held: Array<Conn | undefined> = []
let heldFree: Array<number> = []
let probes: Array<Buffer> = []
/** postgres-pooled: the role of each probe. */
let probeRoles: Array<PgRole> = []
let send: (m: FromAgent) => void = () => {}

const countError = (code: string) => {
  errors[code] = (errors[code] ?? 0) + 1
}

const report = () => {
  const mem = process.memoryUsage()
  send({
    t: "report",
    id,
    pid: process.pid,
    target,
    started,
    confirmed,
    pending: pending.size,
    failed,
    lost,
    skipped,
    errors,
    rssBytes: mem.rss,
    heapUsedBytes: mem.heapUsed
  })
}

// Shared handlers: `this` is the socket.
function onData(this: Conn, chunk: Buffer) {
  if (this._ok) return // idle connections get nothing; bytes after the check are ignored
  if (this._login !== undefined) {
    this._got += chunk.length
    const step = this._login.feed(chunk)
    if ("error" in step) {
      countError(step.error)
      fail(this)
    } else if (step.done) {
      this._login = undefined
      hold(this)
    }
    return
  }
  const expected = config!.mode === "tcp" ? PROBE.length : STARTUP_ANSWER_BYTES
  const at = this._got
  this._got += chunk.length
  let good = this._got <= expected
  if (good && config!.mode === "tcp") good = chunk.equals(PROBE.subarray(at, at + chunk.length))
  if (good && config!.mode === "postgres") {
    // R at 0, K at 9, Z at 22 and status I at 27, wherever the chunk boundaries fall.
    for (let i = 0; i < chunk.length && good; i++) {
      const p = at + i
      const c = chunk[i]
      if (p === 0) good = c === 0x52
      else if (p === 9) good = c === 0x4b
      else if (p === 22) good = c === 0x5a
      else if (p === 27) good = c === 0x49
    }
  }
  if (!good) {
    countError("BAD_ANSWER")
    fail(this)
    return
  }
  if (this._got < expected) return
  hold(this)
}

/** The round trip is checked: from pending to held. */
function hold(c: Conn) {
  c._ok = true
  pending.delete(c)
  confirmed++
  const slot = heldFree.pop()
  if (slot === undefined) held.push(c)
  else held[slot] = c
  if (confirmed === target) report()
  openMore()
}

function onError(this: Conn, err: NodeJS.ErrnoException) {
  // Our explicit source port is taken (someone listens on it): skip it, no failure.
  if (err.code === "EADDRINUSE" && !this._ok && this._got === 0) {
    this._got = -1
    return
  }
  countError(err.code ?? "ERROR")
}

function onClose(this: Conn) {
  if (this._ok) {
    if (!stopping) {
      lost++
      confirmed--
      const i = held.indexOf(this)
      if (i >= 0) {
        held[i] = undefined
        heldFree.push(i)
      }
    }
    return
  }
  if (pending.delete(this)) {
    if (this._got === -1) {
      skipped++
      openMore()
      return
    }
    failed++
    if (this._got === 0 && !stopping) countError("CLOSED_BEFORE_ANSWER")
    openMore()
  }
}

const fail = (c: Conn) => {
  if (pending.delete(c)) failed++
  c.destroy()
  openMore()
}

const openOne = () => {
  const cfg = config!
  const n = started++
  const options: net.TcpNetConnectOpts = { host: cfg.host, port: cfg.port, noDelay: true }
  if (cfg.sources.length > 0) {
    options.localAddress = cfg.sources[Math.floor(n / cfg.perSource) % cfg.sources.length]
    options.localPort = cfg.portLo + (n % cfg.perSource)
  }
  const c = net.connect(options) as Conn
  c._got = 0
  c._t0 = Date.now()
  c._ok = false
  c._login = undefined
  if (cfg.mode === "postgres-pooled") {
    const sock = c
    c._login = new PgLogin(probeRoles[n % probes.length]!, (bytes) => sock.write(bytes))
  }
  c.on("data", onData)
  c.on("error", onError)
  c.on("close", onClose)
  pending.add(c)
  // Queued by Node until the connection is up: no `connect` handler needed.
  c.write(probes[n % probes.length]!)
}

function openMore() {
  if (config === undefined || stopping) return
  // Failed and lost connections are not replaced (skipped ports are): the coordinator sees the shortfall and fails
  // the run rather than this agent hammering a broken proxy.
  if (failed + lost > 0) return
  if (skipped > 1000 + config.perSource) {
    countError("NO_FREE_SOURCE_PORT")
    failed++
    return
  }
  while (started - skipped - closedByUs < target && pending.size < config.concurrency) openOne()
}

const stop = (why: string) => {
  if (stopping) return
  stopping = true
  report()
  // RST rather than FIN: no TIME_WAIT left behind on these source ports for the next run.
  for (const c of pending) c.destroy()
  for (const c of held) if (c !== undefined && !c.destroyed) c.resetAndDestroy()
  send({ t: "bye", id })
  process.stderr.write(`agent ${id}: stopping (${why})\n`)
  setTimeout(() => process.exit(0), 200).unref()
}

const onMessage = (value: unknown) => {
  const m = value as ToAgent
  switch (m.t) {
    case "config": {
      config = m.config
      if (config.mode === "tcp") probes = [PROBE]
      else {
        const logins = loginsOf(config.mode === "postgres" ? { ...config, users: [] } : config)
        probes = logins.map((l) => startupMessage(l.database, l.user))
        probeRoles = logins
      }
      setTimeout(() => stop("lifetime over"), config.lifetimeMs).unref()
      return
    }
    case "target":
      target = m.n
      if (target < confirmed) {
        // Ramp down: close the newest held connections.
        for (let i = held.length - 1; i >= 0 && confirmed > target; i--) {
          const c = held[i]
          if (c === undefined) continue
          held[i] = undefined
          heldFree.push(i)
          c._ok = false
          confirmed--
          closedByUs++
          c.resetAndDestroy()
        }
        heldFree = heldFree.filter((i) => i < held.length)
      }
      openMore()
      report()
      return
    case "stop":
      stop("asked")
  }
}

// One interval for every pending connection's deadline, and the periodic report.
setInterval(() => {
  if (config !== undefined) {
    const deadline = Date.now() - config.confirmTimeoutMs
    for (const c of pending) {
      if (c._t0 < deadline) {
        countError("TIMEOUT")
        fail(c)
      }
    }
  }
  report()
}, 500).unref()

if (coordinator === undefined) {
  send = (m) => {
    process.stdout.write(`${JSON.stringify(m)}\n`)
  }
  process.stdin.on("data", jsonLines(onMessage))
  process.stdin.on("end", () => stop("stdin closed"))
  process.stdin.on("error", () => stop("stdin error"))
  send({ t: "hello", id, pid: process.pid, host: os.hostname() })
} else {
  const [host, port] = [
    coordinator.slice(0, coordinator.lastIndexOf(":")),
    coordinator.slice(coordinator.lastIndexOf(":") + 1)
  ]
  const control = net.connect({ host, port: Number(port) })
  send = (m) => {
    if (!control.destroyed) control.write(`${JSON.stringify(m)}\n`)
  }
  control.on("connect", () => send({ t: "hello", id, pid: process.pid, host: os.hostname() }))
  control.on("data", jsonLines(onMessage))
  control.on("error", (e) => process.stderr.write(`agent ${id}: coordinator ${coordinator}: ${e.message}\n`))
  control.on("close", () => {
    stop("coordinator gone")
    setTimeout(() => process.exit(stopping ? 0 : 1), 300).unref()
  })
}
