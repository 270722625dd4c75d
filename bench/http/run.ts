// HTTP reverse proxies side by side, same origin, same run, keep-alive everywhere: direct, polyproxy (1 worker and one
// per core), http-proxy, @fastify/http-proxy, nginx, HAProxy, and three node:http proxies that differ only in their
// upstream client (undici Pool, http.Agent, raw socket). Load from autocannon and, where installed, wrk.
// Writes bench/results/http.{md,json}.
//
//   node bench/http/run.ts [--duration 10] [--warmup 2] [--connections 50] [--tools autocannon,wrk]
//                          [--variants LIST] [--proxy dist|src] [--out DIR]
import { execFileSync } from "node:child_process"
import { mkdirSync, renameSync, writeFileSync } from "node:fs"
import * as http from "node:http"
import { join } from "node:path"
import { parseArgs } from "node:util"
import { freePort, makeTempDir } from "../../spec/support/backends/local.ts"
import { defaultEntry, type ProxyEntry, repoRoot, staleDistWarning, startPolyproxy } from "../support/polyproxy.ts"
import {
  busyShare,
  foreignCpuSeconds,
  installExitHooks,
  killEverything,
  machineCpu,
  machineInfo,
  runBounded,
  sleep,
  treeCpuSeconds,
  versionOf
} from "../support/process.ts"
import { type Running, spawnNode, startHaproxy, startNginx, startNodeProxy } from "./baselines.ts"

const HOST = "bench.test"

const ALL = [
  "direct",
  "polyproxy",
  "polyproxy-all-cores",
  "http-proxy",
  "fastify-http-proxy",
  "nginx",
  "haproxy",
  "node-undici",
  "node-agent",
  "node-raw"
] as const
type Variant = (typeof ALL)[number]

const labels: Record<Variant, string> = {
  direct: "direct (origin)",
  polyproxy: "polyproxy, 1 worker",
  "polyproxy-all-cores": "polyproxy, workers: 0",
  "http-proxy": "http-proxy",
  "fastify-http-proxy": "@fastify/http-proxy",
  nginx: "nginx, 1 worker",
  haproxy: "HAProxy, 1 thread",
  "node-undici": "node:http + undici Pool",
  "node-agent": "node:http + http.Agent",
  "node-raw": "node:http + raw socket"
}

interface Options {
  readonly duration: number
  readonly warmup: number
  readonly connections: number
  readonly tools: ReadonlyArray<"autocannon" | "wrk">
  readonly variants: ReadonlyArray<Variant>
  readonly proxy: ProxyEntry
  readonly outDir: string
}

const die = (message: string): never => {
  process.stderr.write(`http bench: ${message}\n`)
  process.exit(2)
}

const parseOptions = (): Options => {
  const { values } = parseArgs({
    options: {
      duration: { type: "string", default: "10" },
      warmup: { type: "string", default: "2" },
      connections: { type: "string", default: "50" },
      tools: { type: "string", default: "autocannon,wrk" },
      variants: { type: "string", default: ALL.join(",") },
      proxy: { type: "string", default: defaultEntry() },
      out: { type: "string", default: join(repoRoot, "bench", "results") }
    },
    strict: true
  })
  const int = (name: string, v: string, min: number) => {
    const n = Number(v)
    return Number.isInteger(n) && n >= min ? n : die(`--${name} must be an integer >= ${min}`)
  }
  const variants = String(values.variants).split(",") as Array<Variant>
  for (const v of variants) if (!ALL.includes(v)) die(`unknown variant ${v} (known: ${ALL.join(", ")})`)
  const tools = String(values.tools).split(",") as Array<"autocannon" | "wrk">
  for (const t of tools) if (t !== "autocannon" && t !== "wrk") die(`unknown tool ${t}`)
  const proxy = String(values.proxy)
  if (proxy !== "dist" && proxy !== "src") die("--proxy must be dist or src")
  return {
    duration: int("duration", String(values.duration), 1),
    warmup: int("warmup", String(values.warmup), 0),
    connections: int("connections", String(values.connections), 1),
    tools: tools.filter((t) => t !== "wrk" || hasWrk()),
    variants: variants.includes("direct") ? variants : ["direct", ...variants],
    proxy: proxy as ProxyEntry,
    outDir: String(values.out)
  }
}

const hasWrk = (): boolean => {
  try {
    execFileSync("wrk", ["--version"], { stdio: "ignore" })
    return true
  } catch (e) {
    // wrk --version exits 1 after printing its version
    return (e as NodeJS.ErrnoException).code !== "ENOENT"
  }
}

/** One GET with the bench Host; resolves when a 200 came back. */
const probe = (port: number): Promise<void> =>
  new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/", headers: { host: HOST }, agent: false }, (res) => {
      res.resume()
      res.on("end", () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))))
    })
    req.on("error", reject)
    req.setTimeout(2_000, () => req.destroy(new Error("timeout")))
  })

interface Load {
  readonly rps: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly requests: number
  readonly errors: number
  readonly command: string
}

const autocannon = async (port: number, seconds: number, connections: number): Promise<Load> => {
  const args = [
    join(repoRoot, "node_modules", "autocannon", "autocannon.js"),
    "-c",
    String(connections),
    "-d",
    String(seconds),
    "-p",
    "1",
    "-H",
    `host=${HOST}`,
    "-j",
    `http://127.0.0.1:${port}/`
  ]
  const r = await runBounded(process.execPath, args, { env: process.env, timeoutMs: (seconds + 30) * 1000 })
  const j = JSON.parse(r.stdout) as {
    duration: number
    errors: number
    non2xx: number
    "2xx": number
    latency: { p50: number; p99: number }
  }
  return {
    rps: j["2xx"] / j.duration,
    p50Ms: j.latency.p50,
    p99Ms: j.latency.p99,
    requests: j["2xx"],
    errors: j.errors + j.non2xx,
    command: `autocannon ${args.slice(1).join(" ")}`
  }
}

const wrkMs = (s: string | undefined): number => {
  const m = /([\d.]+)(us|ms|s)/.exec(s ?? "")
  if (m === null) return Number.NaN
  const v = Number(m[1])
  return m[2] === "us" ? v / 1000 : m[2] === "s" ? v * 1000 : v
}

const wrk = async (port: number, seconds: number, connections: number): Promise<Load> => {
  const args = [
    "-t1",
    `-c${connections}`,
    `-d${seconds}s`,
    "--latency",
    "-H",
    `Host: ${HOST}`,
    `http://127.0.0.1:${port}/`
  ]
  const r = await runBounded("wrk", args, { env: process.env, timeoutMs: (seconds + 30) * 1000 })
  const out = r.stdout
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0)
  const errors =
    Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0) +
    [...out.matchAll(/(?:connect|read|write|timeout) (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0)
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0),
    p50Ms: wrkMs(/^\s+50%\s+(\S+)/m.exec(out)?.[1]),
    p99Ms: wrkMs(/^\s+99%\s+(\S+)/m.exec(out)?.[1]),
    requests,
    errors,
    command: `wrk ${args.join(" ")}`
  }
}

interface Run extends Load {
  readonly tool: string
  readonly variant: Variant
  readonly cpuSeconds: number
  readonly cpuPer1k: number
  readonly foreignCpuSeconds: number
  readonly machineBusy: number
}

const fmt = (n: number | undefined, digits: number) => (n === undefined || Number.isNaN(n) ? "–" : n.toFixed(digits))

const render = (opts: Options, meta: Record<string, unknown>, runs: ReadonlyArray<Run>): string => {
  const nproc = machineInfo().nproc
  const lines: Array<string> = []
  lines.push("# HTTP reverse proxies side by side")
  lines.push("")
  lines.push(
    `Generated by \`node bench/http/run.ts --duration ${opts.duration} --warmup ${opts.warmup} --connections ${opts.connections}\`. Overwritten on every run; see bench/http/README.md.`
  )
  for (const tool of opts.tools) {
    const rows = runs.filter((r) => r.tool === tool)
    const direct = rows.find((r) => r.variant === "direct")
    lines.push("")
    lines.push(`## ${tool}, ${opts.connections} connections, keep-alive, ${opts.duration} s per run`)
    lines.push("")
    lines.push("| variant | req/s | ÷ direct | p50 ms | p99 ms | CPU s / 1k req | errors | other CPU s |")
    lines.push("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (const r of rows) {
      // More than a tenth of the machine went to other processes: the run measured the neighbours too.
      const noisy = r.foreignCpuSeconds > 0.1 * opts.duration * nproc ? " (noisy)" : ""
      lines.push(
        `| ${labels[r.variant]}${noisy} | ${fmt(r.rps, 0)} | ${direct ? fmt((100 * r.rps) / direct.rps, 1) : "–"} % | ${fmt(r.p50Ms, 2)} | ${fmt(r.p99Ms, 2)} | ${fmt(r.cpuPer1k, 4)} | ${r.errors} | ${fmt(r.foreignCpuSeconds, 1)} |`
      )
    }
    const by = (v: Variant) => rows.find((r) => r.variant === v)
    const pp = by("polyproxy")
    const ratio = (a: Run | undefined, b: Run | undefined, what: "rps" | "cpuPer1k") =>
      a && b ? (a[what] / b[what]).toFixed(2) : "–"
    if (pp) {
      lines.push("")
      lines.push(`- polyproxy ÷ http-proxy: ${ratio(pp, by("http-proxy"), "rps")}× req/s (target ≥ 2×)`)
      lines.push(
        `- polyproxy ÷ @fastify/http-proxy: ${ratio(pp, by("fastify-http-proxy"), "rps")}× req/s (target ≥ 1×)`
      )
      lines.push(
        `- polyproxy ÷ nginx: ${ratio(pp, by("nginx"), "rps")}× req/s, ${ratio(pp, by("nginx"), "cpuPer1k")}× the CPU per request`
      )
      lines.push(
        `- polyproxy ÷ HAProxy: ${ratio(pp, by("haproxy"), "rps")}× req/s, ${ratio(pp, by("haproxy"), "cpuPer1k")}× the CPU per request`
      )
    }
  }
  lines.push("")
  lines.push("## How to read it")
  lines.push("")
  lines.push(
    "- On a 2-core machine the load generator, the origin and the proxy share the cores: req/s ÷ direct mostly says how much CPU the proxy takes from the other two. **CPU s / 1k req** (user + system of the proxy's whole process tree during the run, from /proc) is the figure that carries to other machines."
  )
  lines.push(
    "- autocannon is itself a Node process and costs about as much CPU per request as the proxies under test; wrk (C) leaves more of the machine to the proxy, so its ratios are the less distorted ones."
  )
  lines.push(
    "- `workers: 0` forks one worker per core plus a primary (its CPU is counted too); on 2 cores those workers compete with the load generator and the origin for the same cores, so what a second worker buys here is mostly noise."
  )
  lines.push(
    "- node:http + undici / http.Agent / raw socket: one server, three upstream clients — the study behind polyproxy's own pooled-socket client."
  )
  lines.push(
    "- other CPU s: CPU used by processes outside the bench during the run; (noisy) marks runs where that was more than a tenth of the machine. Rerun those on a quiet machine before drawing conclusions from their req/s."
  )
  lines.push("")
  lines.push("## Setup")
  lines.push("")
  for (const [k, v] of Object.entries(meta)) lines.push(`- ${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`)
  lines.push("")
  return lines.join("\n")
}

const writeAtomically = (file: string, content: string) => {
  writeFileSync(`${file}.tmp`, content)
  renameSync(`${file}.tmp`, file)
}

const main = async (): Promise<void> => {
  installExitHooks()
  const opts = parseOptions()
  const stale = opts.proxy === "dist" ? staleDistWarning() : undefined
  if (stale) process.stderr.write(`warning: ${stale}\n`)
  const dir = makeTempDir("http-bench")
  const started = Date.now()
  // The bench stops itself well past its planned time, whatever hangs.
  const planned = opts.tools.length * opts.variants.length * (opts.duration + opts.warmup + 3) + 60
  setTimeout(
    () => {
      process.stderr.write("http bench: far past its planned time, stopping\n")
      killEverything()
      process.exit(1)
    },
    planned * 1500 + 300_000
  ).unref()

  const origin = await spawnNode("bench/http/origin.ts", [])
  const running = new Map<Variant, Running>()
  const polyConfig = (port: number, workers: number) => ({
    admin: false,
    workers,
    log: { level: "warn" },
    listeners: { http: { host: "127.0.0.1", port } },
    routes: { [HOST]: `127.0.0.1:${origin.port}` },
    ssrf: { allow: ["127.0.0.0/8"] }
  })
  for (const v of opts.variants) {
    process.stderr.write(`starting ${v}\n`)
    switch (v) {
      case "direct":
        running.set(v, {
          pid: origin.child.pid!,
          port: origin.port,
          version: `node:http ${process.version}`,
          config: undefined,
          stop: async () => {}
        })
        break
      case "polyproxy":
      case "polyproxy-all-cores": {
        const port = await freePort()
        const workers = v === "polyproxy" ? 1 : 0
        mkdirSync(join(dir, v), { recursive: true })
        const p = await startPolyproxy({
          entry: opts.proxy,
          config: polyConfig(port, workers),
          dir: join(dir, v),
          ready: () => probe(port)
        })
        running.set(v, { pid: p.pid, port, version: `polyproxy (${opts.proxy})`, config: undefined, stop: p.stop })
        break
      }
      case "nginx":
        running.set(v, await startNginx(join(dir, "nginx"), origin.port, probe))
        break
      case "haproxy":
        running.set(v, await startHaproxy(join(dir, "haproxy"), origin.port, probe))
        break
      default: {
        const kind = v === "fastify-http-proxy" ? "fastify" : v.startsWith("node-") ? v.slice(5) : v
        const r = await startNodeProxy(kind, origin.port)
        const deadline = Date.now() + 10_000
        for (;;) {
          try {
            await probe(r.port)
            break
          } catch (e) {
            if (Date.now() > deadline) throw e
            await sleep(100)
          }
        }
        running.set(v, r)
      }
    }
  }

  const runs: Array<Run> = []
  let round = 0
  for (const tool of opts.tools) {
    const load = tool === "wrk" ? wrk : autocannon
    // Rotate the order from one tool to the next so no variant always runs first.
    const order = opts.variants.map((_, i) => opts.variants[(i + round) % opts.variants.length]!)
    round++
    for (const v of order) {
      const r = running.get(v)!
      if (opts.warmup > 0) await load(r.port, opts.warmup, opts.connections)
      await sleep(300)
      const cpu0 = treeCpuSeconds(r.pid)
      const self0 = treeCpuSeconds()
      const m0 = machineCpu()
      const result = await load(r.port, opts.duration, opts.connections)
      const m1 = machineCpu()
      const cpu = treeCpuSeconds(r.pid) - cpu0
      const run: Run = {
        ...result,
        tool,
        variant: v,
        cpuSeconds: cpu,
        cpuPer1k: result.requests > 0 ? cpu / (result.requests / 1000) : Number.NaN,
        foreignCpuSeconds: foreignCpuSeconds(m0, m1, self0, treeCpuSeconds()),
        machineBusy: busyShare(m0, m1)
      }
      runs.push(run)
      process.stderr.write(
        `${tool} ${v}: ${run.rps.toFixed(0)} req/s, p50 ${fmt(run.p50Ms, 2)} ms, p99 ${fmt(run.p99Ms, 2)} ms, ${fmt(run.cpuPer1k, 4)} CPU s/1k\n`
      )
    }
  }
  // Sort each tool's rows in the variant order asked for.
  runs.sort((a, b) =>
    a.tool === b.tool ? opts.variants.indexOf(a.variant) - opts.variants.indexOf(b.variant) : a.tool < b.tool ? -1 : 1
  )
  const info = machineInfo()
  const meta: Record<string, unknown> = {
    machine: `${info.nproc} cores (nproc), ${info.cpuModel}, Linux ${info.kernel}`,
    date: `${info.date}; whole run ${Math.round((Date.now() - started) / 1000)} s`,
    node: info.node,
    origin: "node:http, 64-byte text/plain body with Content-Length, keep-alive (bench/http/origin.ts)",
    request: `GET / with Host: ${HOST}, no body`,
    autocannon: opts.tools.includes("autocannon")
      ? versionOf(process.execPath, [join(repoRoot, "node_modules", "autocannon", "autocannon.js"), "--version"])
      : "not run",
    wrk: opts.tools.includes("wrk") ? "wrk -t1 (one thread)" : "not installed",
    versions: Object.fromEntries([...running].map(([v, r]) => [v, r.version])),
    polyproxy: "listeners.http on 127.0.0.1, routes { bench.test: origin }, log warn, admin off, defaults otherwise",
    "nginx config":
      "worker_processes 1, upstream keepalive 256, proxy_http_version 1.1, Host/X-Forwarded-* set, access_log off",
    "haproxy config": "nbthread 1, mode http, http-keep-alive, http-reuse always, option forwardfor"
  }
  mkdirSync(opts.outDir, { recursive: true })
  writeAtomically(join(opts.outDir, "http.md"), render(opts, meta, runs))
  writeAtomically(
    join(opts.outDir, "http.json"),
    `${JSON.stringify({ options: opts, meta, configs: Object.fromEntries([...running].filter(([, r]) => r.config).map(([v, r]) => [v, r.config])), runs }, null, 2)}\n`
  )
  process.stderr.write(`wrote ${join(opts.outDir, "http.md")}\n`)
  for (const r of running.values()) await r.stop()
  origin.child.kill("SIGTERM")
}

main().then(
  () => {
    killEverything()
    process.exit(0)
  },
  (e) => {
    process.stderr.write(`http bench failed: ${(e as Error).stack ?? e}\n`)
    killEverything()
    process.exit(1)
  }
)
