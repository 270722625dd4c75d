// Three polyproxy instances as separate processes (`polyproxy serve`, as three pods would run), sharing one real
// Redis through `cache.redis`, in front of echo backends, with an HTTP route service (`resolver: { type: http }`)
// served here so that every lookup and every wake is counted:
// - a purge on one instance reaches all of them;
// - 60 clients on a cold resource, spread over the three instances, wake it exactly once (Redis wake lock);
// - SIGKILL of one instance loses its own connections only.
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type RedisServer, startRedis } from "../support/backends/index.ts"

const cli = path.resolve(import.meta.dirname, "../../src/cli.ts")
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "polyproxy-cluster-"))
const RESOURCE = "svc"
const WAKE_DELAY_MS = 1_000

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const within = <A>(ms: number, what: string, p: Promise<A>): Promise<A> =>
  Promise.race([p, sleep(ms).then(() => Promise.reject(new Error(`${what}: no answer within ${ms} ms`)))])

// ---- echo backends: each answers "<name>:<line>" so a reply tells which backend the proxy chose ----

interface Echo {
  readonly name: string
  readonly port: number
  readonly open: () => number
  readonly close: () => void
}

const startEcho = async (name: string): Promise<Echo> => {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((s) => {
    sockets.add(s)
    s.on("close", () => sockets.delete(s))
    s.on("error", () => {})
    let buffered = ""
    s.on("data", (d) => {
      buffered += d.toString("utf8")
      let nl = buffered.indexOf("\n")
      while (nl >= 0) {
        s.write(`${name}:${buffered.slice(0, nl)}\n`)
        buffered = buffered.slice(nl + 1)
        nl = buffered.indexOf("\n")
      }
    })
  })
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  return {
    name,
    port: (server.address() as net.AddressInfo).port,
    open: () => sockets.size,
    close: () => {
      for (const s of sockets) s.destroy()
      server.close()
    }
  }
}

/** A line-oriented client of the echo protocol, through a proxy instance. */
class EchoClient {
  closed = false
  private buffered = ""
  private readonly pending: Array<{ resolve: (line: string) => void; reject: (e: Error) => void }> = []
  private readonly socket: net.Socket
  private constructor(socket: net.Socket) {
    this.socket = socket
    socket.on("data", (d) => {
      this.buffered += d.toString("utf8")
      let nl = this.buffered.indexOf("\n")
      while (nl >= 0) {
        this.pending.shift()?.resolve(this.buffered.slice(0, nl))
        this.buffered = this.buffered.slice(nl + 1)
        nl = this.buffered.indexOf("\n")
      }
    })
    socket.on("error", () => {})
    socket.on("close", () => {
      this.closed = true
      for (const p of this.pending.splice(0)) p.reject(new Error("closed"))
    })
  }
  static connect(port: number): Promise<EchoClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, "127.0.0.1", () => {
        s.off("error", reject)
        resolve(new EchoClient(s))
      })
      s.once("error", reject)
    })
  }
  /** Sends one line and waits for its echo; fails when the connection closes or stays silent. */
  ask(line: string, ms = 5_000): Promise<string> {
    if (this.closed) return Promise.reject(new Error("closed"))
    const answer = new Promise<string>((resolve, reject) => this.pending.push({ resolve, reject }))
    this.socket.write(`${line}\n`)
    return within(ms, `echo of ${line}`, answer)
  }
  destroy() {
    this.socket.destroy()
  }
}

const once = async (port: number, line: string): Promise<string> => {
  const c = await EchoClient.connect(port)
  try {
    return await c.ask(line)
  } finally {
    c.destroy()
  }
}

// ---- the route service: GET /resolve?id=&via=, POST /wake?id=&via= (via = which instance asked) ----

type Answer = { readonly endpoint: string } | "cold"
const routes = new Map<string, Answer>()
const lookups: Array<{ id: string; via: string; answer: string }> = []
const wakes: Array<{ id: string; via: string }> = []
let routeService: http.Server
let routePort = 0

const startRouteService = async () => {
  routeService = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://route-service")
    const id = url.searchParams.get("id") ?? ""
    const via = url.searchParams.get("via") ?? "?"
    if (req.method === "POST" && url.pathname === "/wake") {
      wakes.push({ id, via })
      // The backend takes a while to start: clients keep arriving (and waiting) on every instance meanwhile.
      setTimeout(() => routes.set(id, { endpoint: `127.0.0.1:${echoes.c.port}` }), WAKE_DELAY_MS)
      res.writeHead(202).end()
      return
    }
    const answer = routes.get(id)
    lookups.push({ id, via, answer: answer === undefined ? "404" : answer === "cold" ? "503" : answer.endpoint })
    if (answer === undefined) res.writeHead(404, { "content-type": "application/json" }).end("{}")
    else if (answer === "cold") {
      res.writeHead(503, { "retry-after": "1", "content-type": "application/json" })
      res.end(JSON.stringify({ message: `${id} is asleep` }))
    } else res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(answer))
  })
  await new Promise<void>((r) => routeService.listen(0, "127.0.0.1", r))
  routePort = (routeService.address() as net.AddressInfo).port
}

// ---- polyproxy instances ----

interface Instance {
  readonly name: string
  readonly child: ChildProcess
  readonly port: number
  readonly admin: string
  readonly output: () => string
}

const children = new Set<ChildProcess>()
const killChildren = () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL")
}
process.once("exit", killChildren)

const startInstance = async (name: string, redisUrl: string): Promise<Instance> => {
  const config = path.join(dir, `${name}.yaml`)
  fs.writeFileSync(
    config,
    `admin: { host: 127.0.0.1, port: 0 }
listeners:
  tcp: { host: 127.0.0.1, port: 0, route: ${RESOURCE} }
resolver:
  type: http
  url: "http://127.0.0.1:${routePort}/resolve?via=${name}"
  wakeUrl: "http://127.0.0.1:${routePort}/wake?via=${name}"
  timeout: 2
  retries: 0
cache: { ttl: 60, negativeTtl: 5, redis: "${redisUrl}" }
coldStart: { timeout: 20, maxQueue: 1000 }
ssrf: { allow: ["127.0.0.0/8"] }
timeouts: { drain: 1 }
log: { format: json, connections: false }
`
  )
  const child = spawn(process.execPath, [cli, "serve", "--config", config], { stdio: ["ignore", "pipe", "pipe"] })
  children.add(child)
  let output = ""
  child.stdout!.on("data", (d) => (output += d))
  child.stderr!.on("data", (d) => (output += d))
  const deadline = Date.now() + 20_000
  const portOf = (re: RegExp) => Number(re.exec(output)?.[1] ?? 0)
  for (;;) {
    const port = portOf(/"event":"listening","listener":"tcp".*?"port":(\d+)/)
    const admin = portOf(/"event":"admin listening".*?"port":(\d+)/)
    if (port && admin) {
      const ready = await fetch(`http://127.0.0.1:${admin}/readyz`).catch(() => undefined)
      if (ready?.status === 200) {
        return { name, child, port, admin: `http://127.0.0.1:${admin}`, output: () => output }
      }
    }
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${name} did not start:\n${output}`)
    await sleep(50)
  }
}

const activeConnections = async (i: Instance) => {
  const text = await (await fetch(`${i.admin}/metrics`)).text()
  return Number(/^polyproxy_connections_active\{listener="tcp"[^}]*\} (\S+)$/m.exec(text)?.[1] ?? Number.NaN)
}

let redis: RedisServer
const echoes = {} as Record<"a" | "b" | "c", Echo>
let nodes: Instance[] = []

beforeAll(async () => {
  redis = await startRedis()
  echoes.a = await startEcho("A")
  echoes.b = await startEcho("B")
  echoes.c = await startEcho("C")
  await startRouteService()
  nodes = await Promise.all(["p1", "p2", "p3"].map((n) => startInstance(n, redis.url)))
})

afterAll(async () => {
  killChildren()
  await Promise.all(
    [...children].map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once("exit", r)) : 0))
  )
  for (const e of Object.values(echoes)) e.close()
  routeService?.close()
  await redis?.stop()
  fs.rmSync(dir, { recursive: true, force: true })
})

describe("three instances sharing one Redis", () => {
  it("share resolver answers, and a purge on one instance is a purge on all", async () => {
    routes.set(RESOURCE, { endpoint: `127.0.0.1:${echoes.a.port}` })
    for (const n of nodes) expect(await once(n.port, `hello-${n.name}`)).toBe(`A:hello-${n.name}`)
    // One instance asked the route service; the other two found its answer in Redis.
    expect(lookups.filter((l) => l.id === RESOURCE)).toHaveLength(1)

    // The route moves. Without a purge every instance keeps its cached answer (cache.ttl: 60).
    routes.set(RESOURCE, { endpoint: `127.0.0.1:${echoes.b.port}` })
    for (const n of nodes) expect(await once(n.port, "still")).toBe("A:still")

    const purge = await fetch(`${nodes[0]!.admin}/admin/purge?id=${RESOURCE}`, { method: "POST" })
    expect(await purge.json()).toEqual({ purged: RESOURCE })
    const before = lookups.length
    // The purge travels by Redis pub/sub: within moments, the next connection through each instance sees B.
    for (const n of nodes) {
      const deadline = Date.now() + 3_000
      let seen = await once(n.port, "moved")
      while (seen !== "B:moved" && Date.now() < deadline) {
        await sleep(50)
        seen = await once(n.port, "moved")
      }
      expect(seen, `${n.name} after the purge`).toBe("B:moved")
    }
    expect(lookups.slice(before).every((l) => l.id === RESOURCE && l.answer === `127.0.0.1:${echoes.b.port}`)).toBe(
      true
    )
    expect(lookups.length).toBeGreaterThan(before)
  })

  it("wakes a cold resource exactly once for 60 clients spread over the three instances", async () => {
    routes.set(RESOURCE, "cold")
    await fetch(`${nodes[1]!.admin}/admin/purge?id=${RESOURCE}`, { method: "POST" })
    await sleep(300) // the purge reaches the other two instances
    const firstColdLookup = lookups.length
    const started = Date.now()
    const answers = await Promise.all(
      Array.from({ length: 60 }, async (_, i) => {
        const n = nodes[i % 3]!
        return once(n.port, `client-${i}`)
      })
    )
    const waited = Date.now() - started
    expect(answers).toEqual(Array.from({ length: 60 }, (_, i) => `C:client-${i}`))
    // Each instance saw the resource cold and held its clients; one wake for the whole cluster.
    const cold = lookups.slice(firstColdLookup).filter((l) => l.answer === "503")
    expect(new Set(cold.map((l) => l.via))).toEqual(new Set(["p1", "p2", "p3"]))
    expect(wakes).toHaveLength(1)
    expect(wakes[0]!.id).toBe(RESOURCE)
    expect(waited).toBeGreaterThanOrEqual(WAKE_DELAY_MS - 100)
    // Those clients are gone; nothing is left open anywhere.
    for (const n of nodes) await expect.poll(() => activeConnections(n)).toBe(0)
  })

  it("loses only the killed instance's connections when one instance is SIGKILLed mid-run", async () => {
    const backendBefore = echoes.c.open()
    const clients = await Promise.all(
      Array.from({ length: 30 }, async (_, i) => ({
        via: nodes[i % 3]!,
        c: await EchoClient.connect(nodes[i % 3]!.port)
      }))
    )
    for (const { c } of clients) expect(await c.ask("warm")).toBe("C:warm")
    for (const n of nodes) expect(await activeConnections(n)).toBe(10)
    expect(echoes.c.open() - backendBefore).toBe(30)

    const victim = nodes[2]!
    const rounds = 20
    const killAt = 5
    const failures = new Map<EchoClient, number[]>()
    for (let round = 0; round < rounds; round++) {
      if (round === killAt) victim.child.kill("SIGKILL")
      const results = await Promise.allSettled(clients.map(({ c }) => c.ask(`tick-${round}`, 2_000)))
      results.forEach((r, i) => {
        const c = clients[i]!.c
        if (r.status === "fulfilled") expect(r.value).toBe(`C:tick-${round}`)
        else failures.set(c, [...(failures.get(c) ?? []), round])
      })
      await sleep(50)
    }
    for (const { via, c } of clients) {
      if (via === victim) {
        // Its connections ended with it, and not before.
        expect(c.closed).toBe(true)
        expect(Math.min(...(failures.get(c) ?? [Number.POSITIVE_INFINITY]))).toBeGreaterThanOrEqual(killAt)
      } else {
        // The other two instances never missed a beat.
        expect(failures.get(c), `client through ${via.name}`).toBeUndefined()
        expect(c.closed).toBe(false)
      }
    }
    expect(victim.child.signalCode).toBe("SIGKILL")
    // The kernel closed the victim's backend sockets; the survivors' stay.
    await expect.poll(() => echoes.c.open() - backendBefore).toBe(20)
    for (const n of nodes.slice(0, 2)) {
      expect(await activeConnections(n)).toBe(10)
      expect(await once(n.port, "after")).toBe("C:after")
    }
    await expect(EchoClient.connect(victim.port)).rejects.toThrow(/ECONNREFUSED/)
    for (const { c } of clients) c.destroy()
  })
})
