// `workers: 2` with the HTTP listener: each worker binds the port itself (SO_REUSEPORT), so the kernel spreads the
// connections and the primary never accepts one (node:cluster's default would have the primary accept every client
// and pass it on). Read from the kernel's own tables with `ss`.
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import type * as net from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type CliProxy, startCliProxy } from "../support/cliProxy.ts"
import { eventually } from "../support/proxy.ts"

let proxy: CliProxy
let origin: http.Server

beforeAll(async () => {
  origin = http.createServer((_req, res) => res.end(`origin ${process.pid}`))
  await new Promise<void>((resolve) => origin.listen(0, "127.0.0.1", resolve))
  proxy = await startCliProxy(`workers: 2
admin: { host: 127.0.0.1, port: 0 }
listeners:
  http: { host: 127.0.0.1, port: 0 }
routes:
  app.test: "127.0.0.1:${(origin.address() as net.AddressInfo).port}"
ssrf: { allow: ["127.0.0.0/8"] }
log: { format: json }
`)
  await eventually(() => proxy.output().split('"event":"listening"').length > 2, 20_000)
})

afterAll(() => {
  proxy?.stop()
  origin?.close()
})

/** The pids `ss` names for the sockets it lists with `args` (one entry per socket, a pid per owner). */
const owners = (args: ReadonlyArray<string>): Array<Array<number>> =>
  execFileSync("ss", ["-Htnp", ...args], { encoding: "utf8" })
    .split("\n")
    .filter((line) => line.trim().length > 0)
    .map((line) => [...line.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1])))

const workerPids = (): Array<number> => {
  const pid = proxy.child.pid!
  return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).map(Number)
}

/** A GET kept open afterwards (its agent keeps the connection), answered with the origin's body. */
const get = (port: number, agent: http.Agent) =>
  new Promise<string>((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, headers: { host: "app.test" }, agent }, (res) => {
      let body = ""
      res.on("data", (d) => (body += d))
      res.on("end", () => resolve(body))
    })
    req.on("error", reject)
  })

describe("workers: 2, HTTP", () => {
  it("each worker holds its own listening socket on the port, the primary none", () => {
    const port = proxy.port("http")
    const workers = workerPids()
    expect(workers.length).toBe(2)
    const listening = owners(["-l", `sport = :${port}`])
    expect(listening.length).toBe(2)
    expect(listening.flat().sort()).toEqual([...workers].sort())
    expect(listening.flat()).not.toContain(proxy.child.pid)
  })

  it("answers requests, every client connection held by a worker and none by the primary", async () => {
    const port = proxy.port("http")
    const agent = new http.Agent({ keepAlive: true, maxSockets: 20 })
    try {
      const answers = await Promise.all(Array.from({ length: 20 }, () => get(port, agent)))
      expect(answers.every((a) => a === `origin ${process.pid}`)).toBe(true)
      const workers = workerPids()
      // The proxy's side of each client connection: source port = the listener's.
      const held = owners(["state", "established", `sport = :${port}`])
      expect(held.length).toBeGreaterThanOrEqual(20)
      for (const pids of held) {
        expect(pids.length).toBe(1)
        expect(workers).toContain(pids[0])
      }
    } finally {
      agent.destroy()
    }
  })
})
