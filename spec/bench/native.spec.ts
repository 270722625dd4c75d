// The bench's C programs (bench/native/*.c, built on demand as bench/run.ts does) do what the scenarios count on:
// every load generator mode completes operations against the C echo backend and reports them in the runner's JSON
// lines, the TLS loops verify each origin's certificate by name, failures are counted by reason, and the minimal
// Node relay carries the traffic. Functional only: no figure here is compared with a speed.
import { createServer, type Server } from "node:net"
import { afterEach, describe, expect, it } from "vitest"
import { type ReadyChild, spawnLines, startHelper, startNodeRelay } from "../../bench/support/children.ts"
import { benchBinaries } from "../../bench/support/native.ts"
import { startEcho } from "../../bench/tcp/scenario.ts"
import { makeSiteCerts } from "../support/certs.ts"
import { closedPort } from "../support/net.ts"

// make test installs gcc and OpenSSL's headers (scripts/install-bench-deps.sh): a build failure fails this spec.
const native = benchBinaries()

interface Result {
  readonly event: string
  readonly mode: string
  readonly ops: number
  readonly bytes: number
  readonly rate: number
  readonly errors: number
  readonly errorCodes: Record<string, number>
  readonly loadgenCpuSeconds: number
  readonly latencyUs?: { p50: number; p99: number; max: number }
  readonly resumed?: number
}

const helpers: Array<ReadyChild<unknown>> = []
afterEach(() => {
  for (const h of helpers.splice(0)) h.stop()
})

/** Runs the load generator to its end; returns its lines (measuring, then result) and its exit code. */
const loadgen = async (args: ReadonlyArray<string>) => {
  const lines: Array<{ event: string }> = []
  const run = spawnLines(native.loadgen, ["--duration", "0.5", "--warmup", "0.1", ...args], (line) =>
    lines.push(JSON.parse(line) as { event: string })
  )
  const code = await run.exited
  expect(lines.map((l) => l.event)).toEqual(["measuring", "result"])
  return { code, result: lines[1] as Result }
}

const keep = <A>(h: ReadyChild<A>): ReadyChild<A> => {
  helpers.push(h as ReadyChild<unknown>)
  return h
}

describe("bench/native: the C load generator and TLS origin", () => {
  it("conn, echo, bulk and latency complete operations against the C echo backend", async () => {
    const echo = keep(await startEcho(60))
    for (const mode of ["conn", "echo", "bulk", "latency"]) {
      const { code, result } = await loadgen(["--mode", mode, "--port", String(echo.info)])
      expect(code).toBe(0)
      expect(result).toMatchObject({ event: "result", mode, errors: 0, errorCodes: {} })
      if (mode === "bulk") expect(result.bytes).toBeGreaterThan(0)
      else expect(result.ops).toBeGreaterThan(0)
      expect(result.rate).toBeGreaterThan(0)
      expect(result.loadgenCpuSeconds).toBeGreaterThanOrEqual(0)
      if (mode === "latency") {
        expect(result.latencyUs!.p50).toBeGreaterThan(0)
        expect(result.latencyUs!.p99).toBeGreaterThanOrEqual(result.latencyUs!.p50)
        expect(result.latencyUs!.max).toBeGreaterThanOrEqual(result.latencyUs!.p99)
      }
    }
  })

  it("goes through the minimal Node relay, and counts refused connections by reason", async () => {
    const echo = keep(await startEcho(60))
    const relay = keep(await startNodeRelay(echo.info))
    for (const mode of ["conn", "echo"]) {
      const { result } = await loadgen(["--mode", mode, "--port", String(relay.info)])
      expect(result).toMatchObject({ errors: 0 })
      expect(result.ops).toBeGreaterThan(0)
    }
    const refused = await loadgen(["--mode", "conn", "--port", String(await closedPort()), "--concurrency", "4"])
    expect(refused.result.ops).toBe(0)
    expect(Object.keys(refused.result.errorCodes)).toEqual(["ECONNREFUSED"])
    expect(refused.result.errors).toBeGreaterThan(0)
  })

  it("tls: full handshakes to two origins by server name, each certificate verified; a wrong name fails", async () => {
    const hosts = ["a.bench.test", "b.bench.test"]
    const sites = await Promise.all(hosts.map((h) => makeSiteCerts([h])))
    const origin = keep(
      await startHelper(
        "tls origin",
        native.tlsOrigin,
        sites.map((s) => `${s.server.certPath}:${s.server.keyPath}`),
        (line) => (JSON.parse(line) as { ports?: number[] }).ports
      )
    )
    const [a, b] = origin.info
    const ca = sites.map((s) => s.ca.certPath).join(",")
    const ok = await loadgen(["--mode", "tls", "--targets", `${hosts[0]}@${a},${hosts[1]}@${b}`, "--ca", ca])
    expect(ok.result).toMatchObject({ errors: 0, errorCodes: {} })
    expect(ok.result.ops).toBeGreaterThan(1)

    // b's certificate does not name a.bench.test (and a's CA did not sign it): every handshake is refused.
    const wrong = await loadgen(["--mode", "tls", "--targets", `${hosts[0]}@${b}`, "--ca", ca, "--concurrency", "2"])
    expect(wrong.result.ops).toBe(0)
    expect(Object.keys(wrong.result.errorCodes)).toEqual(["CERT_VERIFY"])
  })

  it("conn: new connections rotate over loopback source addresses; --sources 0 leaves one", async () => {
    // An echo server of our own, to see where each connection comes from. Only connections that send the
    // generator's payload ('a's) count: another spec running beside this one may probe any free port, and one the
    // generator gave up at its end may be gone before it is accepted (no address left to read).
    const seen = new Set<string>()
    const server: Server = createServer((socket) => {
      const from = socket.remoteAddress
      socket.once("data", (chunk: Buffer) => {
        if (from !== undefined && chunk[0] === 0x61) seen.add(from)
      })
      socket.on("error", () => {})
      socket.pipe(socket)
    })
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    try {
      const port = String((server.address() as { port: number }).port)
      const rotated = await loadgen(["--mode", "conn", "--port", port, "--concurrency", "4"])
      expect(rotated.result).toMatchObject({ errors: 0 })
      expect(rotated.result.ops).toBeGreaterThan(64)
      expect(seen.size).toBe(64)
      expect(seen.has("127.0.0.2") && seen.has("127.0.0.65") && !seen.has("127.0.0.1")).toBe(true)
      seen.clear()
      const one = await loadgen(["--mode", "conn", "--port", port, "--concurrency", "4", "--sources", "0"])
      expect(one.result.ops).toBeGreaterThan(0)
      expect([...seen]).toEqual(["127.0.0.1"])
    } finally {
      server.close()
    }
  })

  it("tls --resume 1: every measured connection resumes with the origin's ticket; an origin without tickets is refused", async () => {
    const sites = await Promise.all(["a.bench.test", "b.bench.test"].map((h) => makeSiteCerts([h])))
    const pairs = sites.map((s) => `${s.server.certPath}:${s.server.keyPath}`)
    const ports = (line: string) => (JSON.parse(line) as { ports?: number[] }).ports
    const ticketing = keep(await startHelper("tls origin", native.tlsOrigin, ["--tickets", ...pairs], ports))
    const ca = sites.map((s) => s.ca.certPath).join(",")
    const targets = `a.bench.test@${ticketing.info[0]},b.bench.test@${ticketing.info[1]}`
    const resumed = await loadgen(["--mode", "tls", "--targets", targets, "--ca", ca, "--resume", "1"])
    expect(resumed.result).toMatchObject({ errors: 0, errorCodes: {} })
    expect(resumed.result.ops).toBeGreaterThan(1)
    expect(resumed.result.resumed).toBe(resumed.result.ops)
    // Without --resume each connection is a full handshake, tickets or not.
    const full = await loadgen(["--mode", "tls", "--targets", targets, "--ca", ca])
    expect(full.result.ops).toBeGreaterThan(1)
    expect(full.result.resumed).toBe(0)

    const plain = keep(await startHelper("tls origin", native.tlsOrigin, pairs, ports))
    const refused = spawnLines(
      native.loadgen,
      ["--mode", "tls", "--targets", `a.bench.test@${plain.info[0]}`, "--ca", ca, "--resume", "1", "--duration", "0.5"],
      () => {}
    )
    expect(await refused.exited).toBe(1)
    expect(refused.stderr()).toContain("sent no session ticket")
  })

  it("stops when its stdin (the runner) closes", async () => {
    const echo = keep(await startEcho(60))
    const run = spawnLines(
      native.loadgen,
      ["--mode", "echo", "--port", String(echo.info), "--duration", "60"],
      () => {}
    )
    run.child.stdin!.end()
    expect(await run.exited).toBe(4)
  })
})
