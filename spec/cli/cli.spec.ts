// The `polyproxy` command as a user runs it: a child process, its exit code and what it prints.
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"

const cli = path.resolve("src/cli.ts")
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "polyproxy-cli-"))
const write = (name: string, text: string) => {
  const file = path.join(dir, name)
  fs.writeFileSync(file, text)
  return file
}
const run = (args: Array<string>, env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [cli, ...args], { encoding: "utf8", env: { ...process.env, ...env }, timeout: 20_000 })

const children: Array<ChildProcess> = []
afterEach(() => {
  for (const c of children.splice(0)) c.kill("SIGKILL")
})

/** Starts `polyproxy serve` and resolves once /readyz lists the listeners. */
const serve = async (config: string, env: Record<string, string> = {}) => {
  const child = spawn(process.execPath, [cli, "serve", "--config", config], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  children.push(child)
  let out = ""
  child.stdout!.on("data", (d) => (out += d))
  child.stderr!.on("data", (d) => (out += d))
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)))
  const deadline = Date.now() + 15_000
  let admin: number | undefined
  while (admin === undefined) {
    if (Date.now() > deadline) throw new Error(`serve did not start:\n${out}`)
    const m = /"event":"admin listening".*?"port":(\d+)/.exec(out)
    if (m) admin = Number(m[1])
    else await new Promise((r) => setTimeout(r, 50))
  }
  return { child, exited, admin, output: () => out }
}

describe("polyproxy CLI", () => {
  it("prints help", () => {
    const r = run(["--help"])
    expect(r.status).toBe(0)
    expect(r.stdout).toContain("polyproxy serve [--config FILE]")
    expect(r.stdout).toContain("check-config FILE")
  })

  it("refuses an unknown command with exit 2", () => {
    const r = run(["serv"])
    expect(r.status).toBe(2)
    expect(r.stderr).toContain('unknown command "serv"')
  })

  it("check-config accepts the embedded example", () => {
    const r = run(["check-config", "fixtures/example.yaml"])
    expect(r.stderr).toBe("")
    expect(r.status).toBe(0)
    expect(r.stdout).toContain("listeners tcp:7000")
  })

  it("check-config rejects a broken file with exit 2, naming the key and why", () => {
    const r = run(["check-config", write("bad.yaml", "listeners:\n  postgres: { port: 99999 }\n")])
    expect(r.status).toBe(2)
    expect(r.stderr).toContain("listeners.postgres.port: expected an integer from 0 to 65535, got 99999")
  })

  it("check-config names a TLS file that cannot be read", () => {
    const r = run([
      "check-config",
      write("tls.yaml", "listeners:\n  postgres: { port: 0, tls: { cert: nope.crt, key: nope.key } }\n")
    ])
    expect(r.status).toBe(2)
    expect(r.stderr).toContain("listeners.postgres.tls.cert: cannot read")
  })

  it("check-config applies the environment and rejects a bad variable by name", () => {
    const r = run(["check-config", "fixtures/example.yaml"], { POLYPROXY_ADMIN_PORT: "abc" })
    expect(r.status).toBe(2)
    expect(r.stderr).toContain("POLYPROXY_ADMIN_PORT")
  })

  it("serve starts on port 0 everywhere, reports ports on /readyz, and exits 0 on SIGTERM after draining", async () => {
    const backend = net.createServer((s) => s.pipe(s))
    await new Promise<void>((r) => backend.listen(0, "127.0.0.1", r))
    const config = write(
      "serve.yaml",
      `admin: { host: 127.0.0.1, port: 0 }
listeners: { tcp: { host: 127.0.0.1, port: 0, route: echo } }
routes: { echo: "127.0.0.1:${(backend.address() as net.AddressInfo).port}" }
ssrf: { allow: ["127.0.0.0/8"] }
timeouts: { drain: 5 }
log: { format: json }
`
    )
    const p = await serve(config)
    expect((await fetch(`http://127.0.0.1:${p.admin}/healthz`)).status).toBe(200)
    const ready = (await (await fetch(`http://127.0.0.1:${p.admin}/readyz`)).json()) as {
      listeners: { tcp: { port: number } }
    }
    const port = ready.listeners.tcp.port
    expect(port).toBeGreaterThan(0)
    // An open connection keeps working while the proxy drains after SIGTERM.
    const c = net.connect(port, "127.0.0.1")
    await new Promise((r) => c.once("connect", r))
    c.write("ping")
    await new Promise((r) => c.once("data", r))
    p.child.kill("SIGTERM")
    await new Promise((r) => setTimeout(r, 300))
    expect(p.child.exitCode).toBe(null)
    const echoed = new Promise<string>((r) => c.once("data", (d) => r(String(d))))
    c.write("still here")
    expect(await echoed).toBe("still here")
    c.end()
    expect(await p.exited).toBe(0)
    expect(p.output()).toContain('"event":"drained"')
    backend.close()
  })

  it("serve exits 1 with a clear message when a port is taken", async () => {
    const taken = net.createServer()
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r))
    const port = (taken.address() as net.AddressInfo).port
    const config = write(
      "taken.yaml",
      `admin: false\nlisteners: { tcp: { host: 127.0.0.1, port: ${port}, route: x } }\n`
    )
    const r = spawnSync(process.execPath, [cli, "serve", "--config", config], { encoding: "utf8", timeout: 15_000 })
    expect(r.status).toBe(1)
    expect(r.stderr).toContain(`cannot listen on 127.0.0.1:${port}: EADDRINUSE`)
    taken.close()
  })
})
