// Hot reload of a running `polyproxy serve`: SIGHUP and POST /admin/reload apply a new config without dropping a
// connection; an invalid file is refused and the old config keeps running.
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { closedPort as freePort } from "../support/net.ts"
import { eventually } from "../support/proxy.ts"

const cli = path.resolve("src/cli.ts")
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "polyproxy-reload-"))
const file = path.join(dir, "reload.yaml")
let child: ChildProcess
let output = ""
let admin = 0
const servers: Array<net.Server> = []

/** A backend that answers every chunk with its own name. */
const named = async (name: string) => {
  const s = net.createServer((c) => c.on("data", () => c.write(name)))
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r))
  servers.push(s)
  return (s.address() as net.AddressInfo).port
}

const config = (backend: number, listenPort: number, extra = "") => `admin: { host: 127.0.0.1, port: 0 }
listeners: { tcp: { host: 127.0.0.1, port: ${listenPort}, route: app } }
routes: { app: "127.0.0.1:${backend}" }
ssrf: { allow: ["127.0.0.0/8"] }
log: { format: json }
${extra}`

const tcpPort = async () =>
  ((await (await fetch(`http://127.0.0.1:${admin}/readyz`)).json()) as { listeners: { tcp: { port: number } } })
    .listeners.tcp.port

const ask = (s: net.Socket) =>
  new Promise<string>((resolve) => {
    s.once("data", (d) => resolve(String(d)))
    s.write("?")
  })

const open = async (port: number) => {
  const s = net.connect(port, "127.0.0.1")
  await new Promise((r) => s.once("connect", r))
  return s
}

let a = 0
let b = 0

beforeAll(async () => {
  a = await named("A")
  b = await named("B")
  fs.writeFileSync(file, config(a, 0))
  child = spawn(process.execPath, [cli, "serve", "--config", file], { stdio: ["ignore", "pipe", "pipe"] })
  child.stdout!.on("data", (d) => (output += d))
  child.stderr!.on("data", (d) => (output += d))
  await eventually(() => /"event":"admin listening".*?"port":(\d+)/.test(output), 20_000)
  admin = Number(/"event":"admin listening".*?"port":(\d+)/.exec(output)![1])
})

afterAll(() => {
  child?.kill("SIGKILL")
  for (const s of servers) s.close()
})

describe("hot reload", () => {
  it("SIGHUP swaps the routes: new connections go to the new backend, open ones stay where they were", async () => {
    const old = await open(await tcpPort())
    expect(await ask(old)).toBe("A")
    fs.writeFileSync(file, config(b, 0))
    child.kill("SIGHUP")
    await eventually(() => output.includes('"event":"config reloaded"'), 10_000)
    const fresh = await open(await tcpPort())
    expect(await ask(fresh)).toBe("B")
    expect(await ask(old)).toBe("A")
    old.destroy()
    fresh.destroy()
  })

  it("refuses an invalid file with the reason and keeps running the old config", async () => {
    fs.writeFileSync(file, "listeners: { tcp: { port: 99999 } }\n")
    const r = await fetch(`http://127.0.0.1:${admin}/admin/reload`, { method: "POST" })
    expect(r.status).toBe(422)
    expect(((await r.json()) as { error: string }).error).toContain("listeners.tcp.port")
    expect(output).toContain('"event":"config reload refused, keeping the running config"')
    const s = await open(await tcpPort())
    expect(await ask(s)).toBe("B")
    s.destroy()
  })

  it("POST /admin/reload moves a listener to a new port without dropping its open connections", async () => {
    const oldPort = await tcpPort()
    const old = await open(oldPort)
    expect(await ask(old)).toBe("B")
    const next = await freePort()
    fs.writeFileSync(file, config(a, next, "limits: { maxConnections: 100 }\n"))
    const r = await fetch(`http://127.0.0.1:${admin}/admin/reload`, { method: "POST" })
    const report = (await r.json()) as { applied: Array<string>; needsRestart: Array<string> }
    expect(report.applied).toEqual(
      expect.arrayContaining(["routes", "limits", `listeners.tcp restarted on 127.0.0.1:${next}`])
    )
    expect(await tcpPort()).toBe(next)
    const moved = await open(next)
    expect(await ask(moved)).toBe("A")
    // the old connection is still relayed to its backend
    expect(await ask(old)).toBe("B")
    // the old port no longer accepts
    const refused = await new Promise<string>((resolve) => {
      const s = net.connect(oldPort, "127.0.0.1")
      s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? ""))
      s.once("connect", () => resolve("connected"))
    })
    expect(refused).toBe("ECONNREFUSED")
    old.destroy()
    moved.destroy()
  })

  it("says which changed keys need a restart", async () => {
    fs.writeFileSync(file, config(a, await tcpPort(), "cache: { ttl: 5 }\n"))
    const report = (await (await fetch(`http://127.0.0.1:${admin}/admin/reload`, { method: "POST" })).json()) as {
      needsRestart: Array<string>
    }
    expect(report.needsRestart).toContain("cache")
  })
})
