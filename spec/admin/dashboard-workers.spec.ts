// GET /admin/dashboard with `workers: 2`: the primary sums what every worker reports in /admin/stats (listeners,
// busiest resources, cache, resolver) and their breakers, and the page's purge reaches every worker.
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { Dashboard } from "../../src/admin/dashboard/data.ts"
import { eventually } from "../support/proxy.ts"

const cli = path.resolve("src/cli.ts")
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "polyproxy-dashboard-workers-"))
const token = "w0rkers-token"

let echo: net.Server
let child: ChildProcess
let output = ""
let admin = 0
const sockets: Array<net.Socket> = []

const api = (p: string, init: RequestInit = {}) =>
  fetch(`http://127.0.0.1:${admin}${p}`, { ...init, headers: { authorization: `Bearer ${token}` } })
const dashboard = async () => (await (await api("/admin/dashboard")).json()) as Dashboard
const perWorker = async () =>
  ((await (await api("/admin/stats")).json()) as { workers: Array<{ connections: Record<string, number> }> }).workers

beforeAll(async () => {
  echo = net.createServer((s) => s.pipe(s))
  await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r))
  const config = path.join(dir, "workers.yaml")
  fs.writeFileSync(
    config,
    `workers: 2
admin: { host: 127.0.0.1, port: 0, token: ${token} }
listeners:
  tcp: { host: 127.0.0.1, port: 0, route: echo }
routes:
  echo: "127.0.0.1:${(echo.address() as net.AddressInfo).port}"
ssrf: { allow: ["127.0.0.0/8"] }
timeouts: { drain: 1 }
log: { format: json, connections: false }
`
  )
  child = spawn(process.execPath, [cli, "serve", "--config", config], { stdio: ["ignore", "pipe", "pipe"] })
  child.stdout!.on("data", (d) => (output += d))
  child.stderr!.on("data", (d) => (output += d))
  await eventually(() => /"event":"admin listening".*?"port":(\d+)/.test(output), 15_000)
  admin = Number(/"event":"admin listening".*?"port":(\d+)/.exec(output)![1])
  await eventually(() => /"event":"workers ready"/.test(output), 20_000)
})

afterAll(async () => {
  for (const s of sockets) s.destroy()
  if (child && child.exitCode === null) child.kill("SIGKILL")
  echo?.close()
  fs.rmSync(dir, { recursive: true, force: true })
})

const hold = (port: number) =>
  new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1", () => s.write("hi"))
    s.once("data", () => resolve(s))
    s.once("error", reject)
  })

describe("dashboard with workers: 2", () => {
  it("sums every worker's listeners and resources", async () => {
    const first = await dashboard()
    expect(first.workers).toBe(2)
    expect(new Set(first.pids).size).toBe(2)
    const port = first.listeners.tcp!.port
    // Until both workers hold some (the kernel picks the worker per connection), at least 6.
    for (;;) {
      sockets.push(await hold(port))
      const open = (await perWorker()).map((w) => w.connections.tcp ?? 0)
      if (sockets.length >= 6 && open.every((n) => n > 0)) break
      if (sockets.length > 60) throw new Error(`connections never spread over both workers: ${open}`)
    }
    const d = await dashboard()
    expect(d.listeners.tcp!.active).toBe(sockets.length)
    expect(d.listeners.tcp!.accepted).toBeGreaterThanOrEqual(sockets.length)
    expect(d.listeners.tcp!.bytesFromClient).toBeGreaterThanOrEqual(2 * sockets.length)
    expect(d.resources.busiest).toEqual([
      {
        id: "echo",
        active: sockets.length,
        backend: `127.0.0.1:${(echo.address() as net.AddressInfo).port}`,
        address: `127.0.0.1:${(echo.address() as net.AddressInfo).port}`
      }
    ])
    expect(d.cache.size).toBe(2) // one cached route per worker
    expect((d.config as { admin: { token: string } }).admin.token).toBe("[redacted]")
    expect(JSON.stringify(d)).not.toContain(token)
  })

  it("purges in every worker: the next connection, wherever it lands, resolves again", async () => {
    const before = (await dashboard()).resolver.resolves as number
    expect((await api("/admin/purge?id=echo", { method: "POST" })).status).toBe(200)
    sockets.push(await hold((await dashboard()).listeners.tcp!.port))
    expect((await dashboard()).resolver.resolves).toBe(before + 1)
  })
})
