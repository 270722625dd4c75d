// `tcp.keepAlive` as the kernel sees it: `polyproxy serve` runs under strace, one connection goes through its tcp
// listener to an echo backend, and the setsockopt calls on the two sockets of that connection are read back. The
// probes configured reach both sockets, and a connection costs the same calls whatever is configured. On Linux the
// client side is set once, on the listening socket, and the kernel copies it to every accepted socket.
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { makeTempDir } from "../support/backends/local.ts"
import { echoServer } from "../support/net.ts"
import { eventually } from "../support/proxy.ts"

const cli = path.resolve("src/cli.ts")
const dir = makeTempDir("keepalive")
let backend: net.Server
const running: Array<ChildProcess> = []

beforeAll(async () => {
  backend = await echoServer()
})
afterAll(() => backend.close())
afterEach(() => {
  for (const c of running.splice(0)) c.kill("SIGKILL")
})

/** The child processes of `pid` (strace's child is the traced node). */
const childrenOf = (pid: number): Array<number> =>
  fs
    .readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
    .trim()
    .split(/\s+/)
    .filter((p) => p !== "")
    .map(Number)

/**
 * Runs serve with `extra` config under strace, proxies `connections` echo exchanges one after the other, and returns
 * every setsockopt call made. `whileOpen` runs while the first client is still connected.
 */
const traceOneConnection = async (
  name: string,
  extra: string,
  connections = 1,
  whileOpen?: (proxyPort: number, clientPort: number) => void
): Promise<Array<string>> => {
  const config = path.join(dir, `${name}.yaml`)
  fs.writeFileSync(
    config,
    `admin: false
listeners: { tcp: { host: 127.0.0.1, port: 0, route: echo } }
routes: { echo: "127.0.0.1:${(backend.address() as net.AddressInfo).port}" }
ssrf: { allow: ["127.0.0.0/8"] }
log: { format: json }
${extra}
`
  )
  const trace = path.join(dir, `${name}.strace`)
  const strace = spawn(
    "strace",
    ["-f", "-qq", "-e", "trace=setsockopt", "-o", trace, process.execPath, cli, "serve", "--config", config],
    { stdio: ["ignore", "pipe", "pipe"] }
  )
  running.push(strace)
  let out = ""
  strace.stdout!.on("data", (d) => (out += d))
  strace.stderr!.on("data", (d) => (out += d))
  const exited = new Promise<void>((resolve) => strace.once("exit", () => resolve()))
  const listening = /"event":"listening".*?"port":(\d+)/
  await eventually(() => listening.test(out) || strace.exitCode !== null, 30_000)
  const port = Number(listening.exec(out)?.[1] ?? Number.NaN)
  if (Number.isNaN(port)) throw new Error(`serve did not start under strace:\n${out}`)

  for (let i = 0; i < connections; i++) {
    const client = net.connect(port, "127.0.0.1")
    await new Promise((resolve) => client.once("connect", resolve))
    const echoed = new Promise<string>((resolve) => client.once("data", (d) => resolve(String(d))))
    client.write("ping")
    expect(await echoed).toBe("ping")
    if (i === 0) whileOpen?.(port, client.localPort!)
    client.end()
    await new Promise((resolve) => client.once("close", resolve))
  }

  // strace writes its log as the traced process exits.
  for (const pid of childrenOf(strace.pid!)) process.kill(pid, "SIGKILL")
  await exited
  return fs
    .readFileSync(trace, "utf8")
    .split("\n")
    .map((line) => /setsockopt\(\d+, (\w+, \w+, \[\d+\])/.exec(line)?.[1])
    .filter((call): call is string => call !== undefined)
}

const keepAliveCalls = (calls: ReadonlyArray<string>) => calls.filter((c) => /SO_KEEPALIVE|TCP_KEEP/.test(c)).sort()

/** What one socket gets: SO_KEEPALIVE on, then idle, interval and count. */
const perSocket = (idle: number, interval: number, count: number) => [
  "SOL_SOCKET, SO_KEEPALIVE, [1]",
  `SOL_TCP, TCP_KEEPCNT, [${count}]`,
  `SOL_TCP, TCP_KEEPIDLE, [${idle}]`,
  `SOL_TCP, TCP_KEEPINTVL, [${interval}]`
]
const bothSockets = (idle: number, interval: number, count: number) =>
  [...perSocket(idle, interval, count), ...perSocket(idle, interval, count)].sort()

describe("tcp.keepAlive", () => {
  it("sets idle, interval and count on the client and the backend socket, with no more calls than the defaults", async () => {
    const defaults = await traceOneConnection("defaults", "")
    expect(keepAliveCalls(defaults)).toEqual(bothSockets(60, 1, 10))

    const tuned = await traceOneConnection("tuned", "tcp: { keepAlive: { idle: 30, interval: 5, count: 4 } }")
    expect(keepAliveCalls(tuned)).toEqual(bothSockets(30, 5, 4))
    expect(tuned.length).toBe(defaults.length)

    const idleOnly = await traceOneConnection("idle-only", "tcp: { keepAlive: { idle: 7 } }")
    expect(keepAliveCalls(idleOnly)).toEqual(bothSockets(7, 1, 10))
    expect(idleOnly.length).toBe(defaults.length)
  }, 90_000)

  it.runIf(process.platform === "linux")(
    "sets the client side once, on the listening socket: accepted sockets need no call and still probe",
    async () => {
      let accepted = ""
      const one = await traceOneConnection("once", "")
      const three = await traceOneConnection("thrice", "", 3, (proxyPort, clientPort) => {
        // The proxy's end of this client's connection, as the kernel reports it: its keep-alive timer runs.
        accepted = execFileSync(
          "ss",
          ["-tnoH", "state", "established", `( sport = :${proxyPort} and dport = :${clientPort} )`],
          {
            encoding: "utf8"
          }
        )
      })
      expect(accepted).toMatch(/timer:\(keepalive,/)
      // Each further connection costs only its backend socket's calls: TCP_NODELAY and the four keep-alive ones.
      const perConnection = (three.length - one.length) / 2
      expect(perConnection).toBe(5)
      expect(keepAliveCalls(three).length - keepAliveCalls(one).length).toBe(2 * 4)
    },
    90_000
  )

  it("enabled: false leaves both sockets without keep-alive", async () => {
    const off = await traceOneConnection("off", "tcp: { keepAlive: { enabled: false } }")
    expect(keepAliveCalls(off)).toEqual([])
    expect(off.length).toBeGreaterThan(0)
  }, 60_000)
})
