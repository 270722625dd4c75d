// `workers: N`: several proxy processes sharing each port, one admin endpoint summing their metrics,
// restarts of a dead worker, cluster-wide cancel keys, and a drain on SIGTERM that reaches every worker.
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type PostgresServer, startPostgres } from "../support/backends/index.ts"
import { eventually } from "../support/proxy.ts"

const cli = path.resolve("src/cli.ts")
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "polyproxy-workers-"))

let db: PostgresServer
let echo: net.Server
let child: ChildProcess
let output = ""
let admin = 0

const metric = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? Number.NaN)
const get = (p: string) => fetch(`http://127.0.0.1:${admin}${p}`)
const ready = async () => {
  await eventually(() => /"event":"admin listening".*?"port":(\d+)/.test(output), 15_000)
  admin = Number(/"event":"admin listening".*?"port":(\d+)/.exec(output)![1])
  const deadline = Date.now() + 20_000
  for (;;) {
    const r = await get("/readyz").catch(() => undefined)
    if (r?.status === 200) {
      return (await r.json()) as { listeners: Record<string, { type: string; port: number; open: number }> }
    }
    if (Date.now() > deadline) throw new Error(`workers never became ready:\n${output}`)
    await new Promise((res) => setTimeout(res, 100))
  }
}

beforeAll(async () => {
  db = await startPostgres({ databases: ["appdb"] })
  echo = net.createServer((s) => s.pipe(s))
  await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r))
  const config = path.join(dir, "workers.yaml")
  fs.writeFileSync(
    config,
    `workers: 2
admin: { host: 127.0.0.1, port: 0 }
listeners:
  tcp: { host: 127.0.0.1, port: 0, route: echo }
  echo-alt: { type: tcp, host: 127.0.0.1, port: 0, route: echo }
  postgres: { host: 127.0.0.1, port: 0 }
routes:
  echo: "127.0.0.1:${(echo.address() as net.AddressInfo).port}"
  appdb: "127.0.0.1:${db.port}"
ssrf: { allow: ["127.0.0.0/8"] }
timeouts: { drain: 5 }
log: { format: json }
`
  )
  child = spawn(process.execPath, [cli, "serve", "--config", config], { stdio: ["ignore", "pipe", "pipe"] })
  child.stdout!.on("data", (d) => (output += d))
  child.stderr!.on("data", (d) => (output += d))
})

afterAll(async () => {
  if (child && child.exitCode === null) child.kill("SIGKILL")
  echo?.close()
  await db?.stop()
})

describe("workers: 2", () => {
  it("shares one port among the workers and sums their metrics on one /metrics", async () => {
    const status = await ready()
    const port = status.listeners.tcp!.port
    expect(port).toBeGreaterThan(0)
    const sockets = await Promise.all(
      Array.from(
        { length: 40 },
        () =>
          new Promise<net.Socket>((resolve, reject) => {
            const s = net.connect(port, "127.0.0.1", () => s.write("hi"))
            s.once("data", () => resolve(s))
            s.once("error", reject)
          })
      )
    )
    const text = await (await get("/metrics")).text()
    expect(metric(text, "polyproxy_workers")).toBe(2)
    expect(metric(text, 'polyproxy_connections_active\\{listener="tcp",protocol="tcp"\\}')).toBe(40)
    // Each worker opened the listener itself (on the shared port).
    expect([...output.matchAll(/"event":"listening","listener":"tcp"/g)].length).toBeGreaterThanOrEqual(2)
    const open = ((await (await get("/readyz")).json()) as { listeners: Record<string, { open: number }> }).listeners
    expect(open.tcp!.open).toBe(40)
    for (const s of sockets) s.destroy()
  })

  it("gives a named listener on port 0 one port, the same in every worker", async () => {
    const status = await ready()
    const alt = status.listeners["echo-alt"]!
    expect(alt.type).toBe("tcp")
    expect(alt.port).not.toBe(status.listeners.tcp!.port)
    const ports = [...output.matchAll(/"event":"listening","listener":"echo-alt".*?"port":(\d+)/g)].map((m) =>
      Number(m[1])
    )
    expect(ports.length).toBeGreaterThanOrEqual(2)
    expect(new Set(ports)).toEqual(new Set([alt.port]))
    const answer = await new Promise<string>((resolve, reject) => {
      const c = net.connect(alt.port, "127.0.0.1", () => c.write("alt"))
      c.once("data", (d) => {
        resolve(String(d))
        c.destroy()
      })
      c.once("error", reject)
    })
    expect(answer).toBe("alt")
  })

  it("routes a cancel request to the session's backend whichever worker it lands on", async () => {
    const status = await ready()
    const port = status.listeners.postgres!.port
    const cfg = { host: "127.0.0.1", port, user: db.user, password: db.userPassword, database: "appdb" }
    // Round-robin sends consecutive connections to different workers: most cancels cross workers.
    for (let i = 0; i < 4; i++) {
      const c = new pg.Client(cfg)
      await c.connect()
      const q = new pg.Query("select pg_sleep(30)")
      const failed = new Promise<{ code?: string }>((r) => q.once("error", r))
      c.query(q)
      await new Promise((r) => setTimeout(r, 200))
      const started = Date.now()
      ;(new pg.Client(cfg) as unknown as { cancel(c: pg.Client, q: pg.Query): void }).cancel(c, q)
      expect((await failed).code).toBe("57014")
      expect(Date.now() - started).toBeLessThan(2_000)
      await c.end()
    }
  })

  it("restarts a worker that dies and counts it", async () => {
    await ready()
    const pids = fs
      .readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, "utf8")
      .trim()
      .split(/\s+/)
      .map(Number)
    expect(pids.length).toBe(2)
    process.kill(pids[0]!, "SIGKILL")
    await eventually(() => output.includes('"event":"worker died, restarting"'), 5_000)
    await ready()
    const text = await (await get("/metrics")).text()
    expect(metric(text, "polyproxy_worker_restarts_total")).toBe(1)
    expect(metric(text, "polyproxy_workers")).toBe(2)
  })

  it("answers the admin API for all workers: stats per worker, purge everywhere", async () => {
    await ready()
    const stats = (await (await get("/admin/stats")).json()) as { workers: Array<{ pid: number; resolver: unknown }> }
    expect(stats.workers.length).toBe(2)
    expect(new Set(stats.workers.map((w) => w.pid)).size).toBe(2)
    const purge = await fetch(`http://127.0.0.1:${admin}/admin/purge?id=appdb`, { method: "POST" })
    expect(await purge.json()).toEqual({ purged: "appdb" })
  })

  it("drains every worker on SIGTERM and exits 0", async () => {
    const status = await ready()
    const c = net.connect(status.listeners.tcp!.port, "127.0.0.1")
    await new Promise((r) => c.once("connect", r))
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)))
    child.kill("SIGTERM")
    await new Promise((r) => setTimeout(r, 300))
    // still open and working while draining
    c.write("still")
    expect(String(await new Promise((r) => c.once("data", r)))).toBe("still")
    c.end()
    expect(await exited).toBe(0)
    expect(output).toContain('"event":"stopped"')
  })
})

describe("workers: 2 that cannot start", () => {
  it("exits 1 with the workers' reason instead of restarting them forever (a port in use)", async () => {
    const taken = net.createServer()
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r))
    const port = (taken.address() as net.AddressInfo).port
    const config = path.join(dir, "taken.yaml")
    fs.writeFileSync(
      config,
      `workers: 2\nadmin: false\nlisteners: { tcp: { host: 127.0.0.1, port: ${port}, route: x } }\n`
    )
    const p = spawn(process.execPath, [cli, "serve", "--config", config], { stdio: ["ignore", "pipe", "pipe"] })
    let out = ""
    p.stdout!.on("data", (d) => (out += d))
    p.stderr!.on("data", (d) => (out += d))
    const code = await new Promise<number | null>((r) => p.once("exit", (c) => r(c)))
    taken.close()
    expect(code).toBe(1)
    expect(out).toContain(`cannot listen on 127.0.0.1:${port}: EADDRINUSE`)
    expect(out).toContain('"event":"cannot start: a worker exited before it was ready"')
    expect(out).not.toContain("worker died, restarting")
  })
})
