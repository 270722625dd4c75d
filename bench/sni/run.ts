// SNI passthrough: new TLS connections per second through polyproxy (`listeners.tcp.route: sni`) and through HAProxy
// (`req.ssl_sni`, 1 thread), beside the origins reached directly, in the same run, interleaved round by round.
//   node bench/sni/run.ts [--duration S] [--warmup S] [--rounds N] [--concurrency N] [--proxy dist|src] [--out DIR]
// Writes DIR/sni.md and DIR/sni.json. The figure that carries to other machines is each proxy's CPU seconds per
// 1,000 connections (from /proc/PID/stat over the measured window); connections/s on a 2-core box mostly says how
// much CPU the proxy leaves to the TLS client and origin.
import { type ChildProcess, spawn } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import * as net from "node:net"
import { join } from "node:path"
import * as tls from "node:tls"
import { parseArgs } from "node:util"
import { makeTempDir } from "../../spec/support/backends/local.ts"
import { makeSiteCerts } from "../../spec/support/certs.ts"
import { defaultEntry, type ProxyEntry, repoRoot, staleDistWarning, startPolyproxy } from "../support/polyproxy.ts"
import {
  busyShare,
  cpuSeconds,
  foreignCpuSeconds,
  installExitHooks,
  killEverything,
  machineCpu,
  machineInfo,
  sleep,
  track,
  treeCpuSeconds,
  versionOf
} from "../support/process.ts"

const { values } = parseArgs({
  options: {
    duration: { type: "string", default: "10" },
    warmup: { type: "string", default: "2" },
    rounds: { type: "string", default: "3" },
    concurrency: { type: "string", default: "32" },
    proxy: { type: "string" },
    out: { type: "string", default: join(repoRoot, "bench", "results") }
  }
})
const duration = Number(values.duration)
const warmup = Number(values.warmup)
const rounds = Number(values.rounds)
const concurrency = Number(values.concurrency)
const entry = (values.proxy ?? defaultEntry()) as ProxyEntry
const outDir = String(values.out)
const hosts = ["a.bench.test", "b.bench.test"] as const

const VARIANTS = ["direct", "polyproxy", "haproxy", "polyproxy-fixed"] as const
type Variant = (typeof VARIANTS)[number]

installExitHooks()
const plannedMs = rounds * VARIANTS.length * (duration + warmup + 1.5) * 1000 + 30_000
setTimeout(
  () => {
    process.stderr.write("bench: ran far past its planned time, stopping\n")
    killEverything()
    process.exit(1)
  },
  plannedMs * 1.5 + 120_000
).unref()

const here = (file: string) => join(repoRoot, "bench", "sni", file)

/** Spawns a node script of this folder with a pipe on stdin (it exits when we do) and waits for its first JSON line. */
const startScript = async <A>(
  file: string,
  args: ReadonlyArray<string>
): Promise<{ child: ChildProcess; first: A }> => {
  const child = track(spawn(process.execPath, [here(file), ...args], { stdio: ["pipe", "pipe", "pipe"] }))
  let err = ""
  child.stderr?.on("data", (d) => (err += d))
  const first = await new Promise<A>((resolve, reject) => {
    let out = ""
    child.stdout?.on("data", (d) => {
      out += d
      const nl = out.indexOf("\n")
      if (nl >= 0) resolve(JSON.parse(out.slice(0, nl)) as A)
    })
    child.once("exit", (code) => reject(new Error(`${file} exited (${code}): ${err}`)))
  })
  return { child, first }
}

const freePort = async (): Promise<number> => {
  const s = net.createServer()
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r))
  const port = (s.address() as net.AddressInfo).port
  await new Promise((r) => s.close(r))
  return port
}

/** One verified TLS handshake through `port` to `servername`, read to the origin's "ok". */
const handshakeThrough = (port: number, servername: string, ca: ReadonlyArray<string>) =>
  new Promise<void>((resolve, reject) => {
    const s = tls.connect({ host: "127.0.0.1", port, servername, ca: [...ca] })
    s.once("data", () => {
      s.destroy()
      resolve()
    })
    s.once("error", reject)
    setTimeout(() => {
      s.destroy()
      reject(new Error("no answer in 2 s"))
    }, 2_000).unref()
  })

const startHaproxy = async (dir: string, port: number, origins: ReadonlyArray<number>) => {
  const cfg = join(dir, "haproxy.cfg")
  writeFileSync(
    cfg,
    [
      "global",
      "  nbthread 1",
      "  maxconn 5000", // fds needed stay under this machine's 20,000 limit
      "defaults",
      "  mode tcp",
      "  timeout connect 5s",
      "  timeout client 30s",
      "  timeout server 30s",
      "frontend sni",
      `  bind 127.0.0.1:${port}`,
      "  tcp-request inspect-delay 5s",
      "  tcp-request content accept if { req.ssl_hello_type 1 }",
      ...hosts.map((h, i) => `  use_backend origin${i} if { req.ssl_sni -i ${h} }`),
      ...hosts.flatMap((_, i) => [`backend origin${i}`, `  server o${i} 127.0.0.1:${origins[i]}`]),
      ""
    ].join("\n")
  )
  // -db: stay in the foreground as one process, so its pid is the one whose CPU we read.
  const child = track(spawn("/usr/sbin/haproxy", ["-db", "-f", cfg], { stdio: ["ignore", "pipe", "pipe"] }))
  let log = ""
  child.stdout?.on("data", (d) => (log += d))
  child.stderr?.on("data", (d) => (log += d))
  return { child, log: () => log }
}

interface Sample {
  readonly variant: Variant
  readonly round: number
  readonly rate: number
  readonly errors: number
  readonly firstError?: string
  /** Proxy CPU seconds per 1,000 connections (undefined for direct). */
  readonly cpuPer1k: number | undefined
  /** Share of all cores busy during the window. */
  readonly busy: number
  /** Cores' worth of CPU used by processes outside this bench during the window (neighbours on a shared machine). */
  readonly foreign: number
}

/** Runs the load generator against `targets`, reading `pid`'s CPU at the start and end of its measured window. */
const measure = async (
  variant: Variant,
  round: number,
  targets: string,
  caFiles: string,
  pid: number | undefined
): Promise<Sample> => {
  const child = track(
    spawn(
      process.execPath,
      [
        here("loadgen.ts"),
        "--targets",
        targets,
        "--ca",
        caFiles,
        "--concurrency",
        String(concurrency),
        "--duration",
        String(duration),
        "--warmup",
        String(warmup)
      ],
      { stdio: ["pipe", "pipe", "pipe"] }
    )
  )
  let cpuStart: number | undefined
  let machineStart = machineCpu()
  let treeStart = treeCpuSeconds()
  return await new Promise<Sample>((resolve, reject) => {
    let out = ""
    let err = ""
    child.stderr?.on("data", (d) => (err += d))
    child.stdout?.on("data", (d) => {
      out += d
      for (let nl = out.indexOf("\n"); nl >= 0; nl = out.indexOf("\n")) {
        const line = JSON.parse(out.slice(0, nl)) as { event: string } & Record<string, unknown>
        out = out.slice(nl + 1)
        if (line.event === "measuring") {
          cpuStart = cpuSeconds(pid)
          machineStart = machineCpu()
          treeStart = treeCpuSeconds()
        } else if (line.event === "result") {
          const cpuEnd = cpuSeconds(pid)
          const machineEnd = machineCpu()
          const foreign = foreignCpuSeconds(machineStart, machineEnd, treeStart, treeCpuSeconds())
          const ops = Number(line.ops)
          const cpu = cpuStart === undefined || cpuEnd === undefined ? undefined : cpuEnd - cpuStart
          resolve({
            variant,
            round,
            rate: Number(line.rate),
            errors: Number(line.errors),
            ...(line.firstError ? { firstError: String(line.firstError) } : {}),
            cpuPer1k: cpu === undefined || ops === 0 ? undefined : (cpu / ops) * 1000,
            busy: busyShare(machineStart, machineEnd),
            foreign: foreign / Number(line.seconds)
          })
        }
      }
    })
    child.once("exit", (code) => reject(new Error(`loadgen exited (${code}) without a result: ${err}`)))
  })
}

const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length === 0 ? Number.NaN : s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

const main = async () => {
  const warning = staleDistWarning()
  if (entry === "dist" && warning) process.stderr.write(`bench: ${warning}\n`)
  const dir = makeTempDir("bench-sni")
  const sites = await Promise.all(hosts.map((h) => makeSiteCerts([h])))
  const caFiles = sites.map((s) => s.ca.certPath).join(",")
  const caPems = sites.map((s) => s.ca.cert)
  const origin = await startScript<{ ports: Array<number> }>(
    "origin.ts",
    sites.map((s) => `${s.server.certPath}:${s.server.keyPath}`)
  )
  const originPorts = origin.first.ports

  const polyPort = await freePort()
  const poly = await startPolyproxy({
    entry,
    dir,
    config: {
      admin: false,
      log: { level: "warn", connections: false },
      listeners: { tcp: { host: "127.0.0.1", port: polyPort, route: "sni", protocol: "http" } },
      routes: Object.fromEntries(hosts.map((h, i) => [h, `127.0.0.1:${originPorts[i]}`])),
      ssrf: { allow: ["127.0.0.0/8"] }
    },
    ready: () => handshakeThrough(polyPort, hosts[0], caPems)
  })

  // The same listener with a fixed route (nothing peeked, one origin): what the ClientHello peek itself costs.
  const fixedPort = await freePort()
  const fixed = await startPolyproxy({
    entry,
    dir: makeTempDir("bench-sni-fixed"),
    config: {
      admin: false,
      log: { level: "warn", connections: false },
      listeners: { tcp: { host: "127.0.0.1", port: fixedPort, route: hosts[0] } },
      routes: { [hosts[0]]: `127.0.0.1:${originPorts[0]}` },
      ssrf: { allow: ["127.0.0.0/8"] }
    },
    ready: () => handshakeThrough(fixedPort, hosts[0], caPems)
  })

  const haPort = await freePort()
  const ha = await startHaproxy(dir, haPort, originPorts)
  for (let i = 0; ; i++) {
    try {
      await handshakeThrough(haPort, hosts[1], caPems)
      break
    } catch (e) {
      if (i > 50) throw new Error(`haproxy not ready: ${(e as Error).message}\n${ha.log()}`)
      await sleep(100)
    }
  }

  const setups: Record<Variant, { targets: string; pid: number | undefined }> = {
    direct: { targets: hosts.map((h, i) => `${h}@${originPorts[i]}`).join(","), pid: undefined },
    polyproxy: { targets: hosts.map((h) => `${h}@${polyPort}`).join(","), pid: poly.pid },
    haproxy: { targets: hosts.map((h) => `${h}@${haPort}`).join(","), pid: ha.child.pid },
    "polyproxy-fixed": { targets: `${hosts[0]}@${fixedPort}`, pid: fixed.pid }
  }
  const samples: Array<Sample> = []
  for (let round = 0; round < rounds; round++) {
    // Rotate the order so no variant always runs first (or right after the same neighbour).
    const order = VARIANTS.map((_, i) => VARIANTS[(i + round) % VARIANTS.length]!)
    for (const variant of order) {
      const s = await measure(variant, round, setups[variant].targets, caFiles, setups[variant].pid)
      samples.push(s)
      process.stderr.write(
        `round ${round + 1}/${rounds} ${variant.padEnd(9)} ${s.rate.toFixed(0).padStart(6)} conn/s` +
          `${s.cpuPer1k === undefined ? "" : `  ${s.cpuPer1k.toFixed(3)} CPU s/1k`}  errors ${s.errors}` +
          `${s.firstError ? ` (${s.firstError})` : ""}\n`
      )
      await sleep(500)
    }
  }
  await poly.stop()
  await fixed.stop()
  ha.child.kill("SIGTERM")

  const info = machineInfo()
  const rows = VARIANTS.map((v) => {
    const mine = samples.filter((s) => s.variant === v)
    const rates = mine.map((s) => s.rate)
    const cpus = mine.flatMap((s) => (s.cpuPer1k === undefined ? [] : [s.cpuPer1k]))
    return {
      variant: v,
      rate: median(rates),
      min: Math.min(...rates),
      max: Math.max(...rates),
      cpuPer1k: cpus.length > 0 ? median(cpus) : undefined,
      errors: mine.reduce((n, s) => n + s.errors, 0),
      busy: median(mine.map((s) => s.busy)),
      foreign: median(mine.map((s) => s.foreign))
    }
  })
  const label: Record<Variant, string> = {
    direct: "direct (client → origin)",
    polyproxy: "polyproxy `route: sni` (1 process)",
    haproxy: "HAProxy `req.ssl_sni` (nbthread 1)",
    "polyproxy-fixed": "polyproxy `route: <fixed id>`, no peek (one origin)"
  }
  const byName = Object.fromEntries(rows.map((r) => [r.variant, r]))
  const ratio = (a?: number, b?: number) => (a === undefined || b === undefined ? "n/a" : `${(a / b).toFixed(2)}×`)
  const md = [
    "# SNI passthrough: new TLS connections per second",
    "",
    `Generated by \`node bench/sni/run.ts\` (${rounds} interleaved rounds of ${duration} s after ${warmup} s warm-up, ` +
      `${concurrency} concurrent connection loops) on ${info.date.slice(0, 10)}.`,
    "",
    `Machine: ${info.nproc} × ${info.cpuModel}, Linux ${info.kernel}, Node ${info.node}, ${versionOf("/usr/sbin/haproxy", ["-v"])}, polyproxy from \`${entry}\`.`,
    "",
    "Each connection: TCP connect, full TLS 1.3 handshake (no session resumption, ECDSA P-256, the client verifies the",
    "origin's certificate against that origin's own CA), the origin writes `ok`, close. Connections alternate between",
    "two server names routed to two node:tls origins with different certificates. The proxies only peek at the",
    "ClientHello and relay bytes; TLS is between the client and the origin.",
    "",
    "| variant | conn/s (median) | min–max | proxy CPU s / 1k conn (median) | cores busy | other processes (cores) | errors |",
    "|---|---:|---:|---:|---:|---:|---:|",
    ...rows.map(
      (r) =>
        `| ${label[r.variant]} | ${r.rate.toFixed(0)} | ${r.min.toFixed(0)}–${r.max.toFixed(0)} | ` +
        `${r.cpuPer1k === undefined ? "—" : r.cpuPer1k.toFixed(3)} | ${(r.busy * 100).toFixed(0)} % | ${r.foreign.toFixed(2)} | ${r.errors} |`
    ),
    "",
    `polyproxy ÷ HAProxy: ${ratio(byName.polyproxy?.rate, byName.haproxy?.rate)} the connection rate, ` +
      `${ratio(byName.polyproxy?.cpuPer1k, byName.haproxy?.cpuPer1k)} the CPU per connection. ` +
      `SNI peek vs fixed route: ${ratio(byName.polyproxy?.cpuPer1k, byName["polyproxy-fixed"]?.cpuPer1k)} the CPU ` +
      "per connection (the rest is the shared accept → resolve → dial → relay path).",
    "",
    "On a 2-core machine the TLS client and origins (Node, OpenSSL handshakes on both ends) use most of",
    "the CPU, so conn/s mostly reflects how much CPU each proxy takes away from them; CPU s / 1k conn is the figure",
    "that carries to other machines.",
    ""
  ].join("\n")
  mkdirSync(outDir, { recursive: true })
  writeFileSync(join(outDir, "sni.md"), md)
  writeFileSync(
    join(outDir, "sni.json"),
    `${JSON.stringify({ info, rounds, duration, warmup, concurrency, samples, rows }, null, 2)}\n`
  )
  process.stdout.write(md)
  killEverything()
  process.exit(0)
}

main().catch((error) => {
  process.stderr.write(`bench: ${error instanceof Error ? error.stack : error}\n`)
  killEverything()
  process.exit(1)
})
