// Cold start across workers without Redis: the primary holds the wake-up lock, so clients landing on every worker
// make one wake call in all.
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { eventually } from "../support/proxy.ts"

const cli = path.resolve("src/cli.ts")
const cleanup: Array<() => void> = []
afterAll(() => {
  for (const c of cleanup.reverse()) c()
})

describe("workers: 2, no Redis", () => {
  it("wakes a cold backend once for 30 clients spread over both workers", async () => {
    const echo = net.createServer((s) => s.pipe(s))
    await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r))
    cleanup.push(() => echo.close())
    let woken = false
    let wakes = 0
    // The route service: 503 + Retry-After while asleep; POST /wake wakes it after half a second.
    const routes = http.createServer((req, res) => {
      if (req.method === "POST" && req.url?.startsWith("/wake")) {
        wakes++
        setTimeout(() => (woken = true), 500)
        res.end("ok")
        return
      }
      if (!woken) {
        res.writeHead(503, { "retry-after": "1" }).end()
        return
      }
      res.writeHead(200, { "content-type": "application/json" })
      res.end(JSON.stringify({ endpoint: `127.0.0.1:${(echo.address() as net.AddressInfo).port}` }))
    })
    await new Promise<void>((r) => routes.listen(0, "127.0.0.1", r))
    cleanup.push(() => routes.close())
    const base = `http://127.0.0.1:${(routes.address() as net.AddressInfo).port}`
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "polyproxy-coldstart-"))
    const config = path.join(dir, "c.yaml")
    fs.writeFileSync(
      config,
      `workers: 2
admin: { host: 127.0.0.1, port: 0 }
listeners: { tcp: { host: 127.0.0.1, port: 0, route: sleepy } }
resolver: { type: http, url: "${base}/resolve", wakeUrl: "${base}/wake" }
ssrf: { allow: ["127.0.0.0/8"] }
coldStart: { timeout: 20 }
log: { format: json, connections: false }
`
    )
    let output = ""
    const child: ChildProcess = spawn(process.execPath, [cli, "serve", "--config", config], {
      stdio: ["ignore", "pipe", "pipe"]
    })
    cleanup.push(() => child.kill("SIGKILL"))
    child.stdout!.on("data", (d) => (output += d))
    child.stderr!.on("data", (d) => (output += d))
    await eventually(() => output.includes('"event":"workers ready"'), 20_000)
    const port = Number(/"listeners":\["tcp:(\d+)"\]/.exec(output)![1])
    const answers = await Promise.all(
      Array.from(
        { length: 30 },
        () =>
          new Promise<string>((resolve) => {
            const s = net.connect(port, "127.0.0.1", () => s.write("ping"))
            s.once("data", (d) => {
              resolve(String(d))
              s.destroy()
            })
            s.once("close", () => resolve("closed"))
            s.once("error", () => resolve("closed"))
          })
      )
    )
    expect(answers).toEqual(Array.from({ length: 30 }, () => "ping"))
    expect(wakes).toBe(1)
  })
})
