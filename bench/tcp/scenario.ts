// The tcp scenario of bench/run.ts: polyproxy's generic `tcp` listener (1 and 2 workers) beside the echo backend
// reached directly, HAProxy (`mode tcp`, 1 thread) and nginx (`stream`, 1 worker process). Four workloads, each
// run by bench/tcp/loadgen.ts in its own process against every variant, interleaved round by round.
import { join } from "node:path"
import { type Baseline, startHaproxy, startNginxStream } from "../support/baselines.ts"
import { echoRoundTrip, spawnNodeScript } from "../support/children.ts"
import {
  cpuFields,
  interleave,
  type LatencyUs,
  type Measurement,
  type ScenarioResult,
  sampleCpu,
  type Workload,
  windowCpu
} from "../support/interleave.ts"
import type { Polyproxy, ProxyEntry } from "../support/polyproxy.ts"
import { sleep } from "../support/process.ts"
import { startProxyVariant } from "../support/proxies.ts"
import { childAlive, directVariant, processVariant, type Variant as VariantOf } from "../support/variant.ts"

export const TCP_VARIANTS = ["direct", "polyproxy-1", "polyproxy-2", "haproxy", "nginx"] as const
export type TcpVariantName = (typeof TCP_VARIANTS)[number]

export const TCP_WORKLOADS: readonly Workload[] = [
  {
    id: "conn",
    label: "new connections: connect, 64 B round trip, close; 100 concurrent",
    kind: "rate",
    unit: "conn/s",
    displayDivisor: 1,
    cpuPer: 1000,
    cpuUnit: "CPU s / 1k conn"
  },
  {
    id: "echo",
    label: "1 KB echo, 100 connections, 1 in flight each",
    kind: "rate",
    unit: "round trips/s",
    displayDivisor: 1,
    cpuPer: 1000,
    cpuUnit: "CPU s / 1k ops"
  },
  {
    id: "bulk",
    label: "bulk: 64 KB writes, 4 connections, echoed back",
    kind: "rate",
    unit: "MB/s",
    displayDivisor: 1e6,
    cpuPer: 1e9,
    cpuUnit: "CPU s / GB"
  },
  {
    id: "latency",
    label: "round trip at low load: 1 connection, 64 B ping-pong",
    kind: "latency",
    unit: "round trips/s",
    displayDivisor: 1,
    cpuPer: 1000,
    cpuUnit: "CPU s / 1k ops"
  }
]

export interface TcpOptions {
  readonly entry: ProxyEntry
  readonly dir: string
  readonly rounds: number
  /** Seconds per measured run, and the unmeasured warm-up the load generator does right before it. */
  readonly duration: number
  readonly warmup: number
  readonly variants: readonly TcpVariantName[]
  readonly workloads?: readonly string[]
  readonly cpuProfDir?: string | undefined
  readonly lifetimeSeconds: number
  readonly log: (line: string) => void
}

type Variant = VariantOf<TcpVariantName>

/** Seconds the scenario is expected to take (for the runner's deadline). */
export const plannedTcpSeconds = (
  o: Pick<TcpOptions, "rounds" | "duration" | "warmup" | "variants" | "workloads">
): number =>
  (o.workloads?.length ?? TCP_WORKLOADS.length) * o.rounds * o.variants.length * (o.duration + o.warmup + 0.8) + 10

const startEcho = async (lifetimeSeconds: number): Promise<{ port: number; pid: number; stop: () => void }> => {
  let resolvePort: (port: number) => void = () => {}
  const gotPort = new Promise<number>((resolve) => {
    resolvePort = resolve
  })
  const echo = spawnNodeScript("tcp/echo.ts", ["--lifetime", String(Math.ceil(lifetimeSeconds))], (line) => {
    const port = (JSON.parse(line) as { port?: number }).port
    if (port) resolvePort(port)
  })
  const port = await Promise.race([
    gotPort,
    echo.exited.then((code) => Promise.reject(new Error(`echo backend exited (${code}): ${echo.stderr()}`))),
    sleep(10_000).then(() => Promise.reject(new Error("echo backend did not start within 10 s")))
  ])
  return { port, pid: echo.child.pid!, stop: () => echo.child.kill("SIGTERM") }
}

interface LoadgenResult {
  readonly rate: number
  readonly ops: number
  readonly bytes: number
  readonly seconds: number
  readonly errors: number
  readonly errorCodes: Record<string, number>
  readonly loadgenCpuSeconds: number
  readonly latencyUs?: LatencyUs
}

/** One measured run: the load generator against `variant`, CPU read at its "measuring" and "result" lines. */
const measureOnce = async (
  workload: Workload,
  variant: Variant,
  backendPid: number,
  opts: TcpOptions
): Promise<Omit<Measurement, "workload" | "variant" | "round" | "position">> => {
  if (!variant.alive()) throw new Error(`${variant.name} is not running any more`)
  const args = [
    "--mode",
    workload.id,
    "--port",
    String(variant.port),
    "--duration",
    String(opts.duration),
    "--warmup",
    String(opts.warmup)
  ]
  let before: ReturnType<typeof sampleCpu> | undefined
  let after: ReturnType<typeof sampleCpu> | undefined
  let result: LoadgenResult | undefined
  const lg = spawnNodeScript("tcp/loadgen.ts", args, (line) => {
    const msg = JSON.parse(line) as { event: string } & LoadgenResult
    if (msg.event === "measuring") before = sampleCpu(variant.pids, backendPid)
    else if (msg.event === "result") {
      after = sampleCpu(variant.pids, backendPid)
      result = msg
    }
  })
  const limitMs = (opts.duration + opts.warmup + 20) * 1000
  const timer = setTimeout(() => lg.child.kill("SIGKILL"), limitMs)
  const code = await lg.exited
  clearTimeout(timer)
  if (result === undefined || before === undefined || after === undefined) {
    throw new Error(`loadgen exited with ${code} without a result: ${lg.stderr() || "(no output)"}`)
  }
  const w = windowCpu(before, after)
  const amount = workload.cpuPer >= 1e6 ? result.bytes : result.ops
  if (amount === 0) throw new Error(`no ${workload.cpuPer >= 1e6 ? "bytes" : "ops"} completed`)
  return {
    command: `node bench/tcp/loadgen.ts ${args.join(" ")}`,
    rate: result.rate,
    ops: result.ops,
    bytes: result.bytes,
    seconds: result.seconds,
    errors: result.errors,
    ...(result.latencyUs ? { latencyUs: result.latencyUs } : {}),
    loadgenCpuSeconds: result.loadgenCpuSeconds,
    ...cpuFields(w, workload.cpuPer, amount)
  }
}

export const runTcpScenario = async (opts: TcpOptions): Promise<ScenarioResult> => {
  const log = opts.log
  const echo = await startEcho(opts.lifetimeSeconds)
  log(`tcp: echo backend on 127.0.0.1:${echo.port}, pid ${echo.pid}`)
  const proxies: Polyproxy[] = []
  const baselines: Baseline[] = []
  const variants: Variant[] = []
  const notes: string[] = []
  const startupErrors: Measurement[] = []
  try {
    for (const name of opts.variants) {
      try {
        if (name === "direct") {
          variants.push(directVariant(name, echo.port, "the echo backend itself (Node `net`), no proxy"))
        } else if (name === "polyproxy-1" || name === "polyproxy-2") {
          const workers = name === "polyproxy-1" ? 1 : 2
          const { proxy, port } = await startProxyVariant({
            entry: opts.entry,
            dir: join(opts.dir, name),
            cpuProfDir: opts.cpuProfDir === undefined ? undefined : join(opts.cpuProfDir, name),
            config: (port) => ({
              workers,
              admin: false,
              listeners: { tcp: { host: "127.0.0.1", port, route: "echo" } },
              routes: { echo: `127.0.0.1:${echo.port}` },
              ssrf: { allow: ["127.0.0.0/8"] },
              timeouts: { idle: 0 },
              log: { level: "warn", connections: false }
            }),
            // A few round trips: with 2 workers the second one may come up a moment after the first.
            ready: async (port) => {
              for (let i = 0; i < 4; i++) await echoRoundTrip(port)
            }
          })
          proxies.push(proxy)
          variants.push(
            processVariant(
              name,
              port,
              { pid: proxy.pid, alive: childAlive(proxy.child) },
              `polyproxy ${workers} worker${workers > 1 ? "s" : ""}`,
              `\`node ${opts.entry === "dist" ? "dist/cli.js" : "src/cli.ts"} serve\`, generic \`tcp\` listener, ` +
                `\`workers: ${workers}\`${workers > 1 ? " (node:cluster primary + 2 workers; CPU of all three)" : ""}, ` +
                "log level warn, connection log off"
            )
          )
        } else {
          const start = name === "haproxy" ? startHaproxy : startNginxStream
          const b = await start({
            dir: join(opts.dir, name),
            backendPort: echo.port,
            ready: (port) => echoRoundTrip(port)
          })
          baselines.push(b)
          variants.push(
            processVariant(
              name,
              b.port,
              b,
              name === "haproxy" ? "HAProxy 1 thread" : "nginx stream",
              name === "haproxy"
                ? `${b.version}, \`mode tcp\`, \`nbthread 1\`, maxconn 8000`
                : `${b.version}, \`stream { proxy_pass }\`, 1 worker_process (CPU of master + worker)`
            )
          )
        }
        log(`tcp: ${name} on 127.0.0.1:${variants.at(-1)?.port}`)
      } catch (error) {
        const message = (error as Error).message
        log(`tcp: ${name} could not be started: ${message}`)
        notes.push(`${name} could not be started: ${message.split("\n")[0]}`)
        for (const w of TCP_WORKLOADS) {
          startupErrors.push({ workload: w.id, variant: name, round: 0, position: 0, error: `not started: ${message}` })
        }
      }
    }
    await sleep(500)
    const measurements: Measurement[] = [...startupErrors]
    const workloads = TCP_WORKLOADS.filter((w) => opts.workloads === undefined || opts.workloads.includes(w.id))
    for (const workload of workloads) {
      const runs = await interleave({
        workload,
        variants,
        rounds: opts.rounds,
        log: (line) => log(`tcp ${line}`),
        measure: async (variant, round, position) => {
          const m = await measureOnce(workload, variant, echo.pid, opts)
          // Let the previous run's sockets finish closing before the next variant starts.
          await sleep(workload.id === "conn" ? 400 : 150)
          return { variant: variant.name, round, position, ...m }
        }
      })
      measurements.push(...runs)
    }
    const reference = "direct"
    const compareTo = variants.some((v) => v.name === "haproxy") ? "haproxy" : undefined
    return {
      scenario: "tcp",
      title: "tcp: generic `tcp` listener vs direct, HAProxy and nginx",
      workloads,
      variants: opts.variants.map(
        (name) =>
          variants.find((v) => v.name === name)?.info ?? { name, label: name, description: "could not be started" }
      ),
      reference,
      ...(compareTo ? { compareTo } : {}),
      measurements,
      setup: {
        rounds: opts.rounds,
        durationSeconds: opts.duration,
        warmupSeconds: opts.warmup,
        backend: "bench/tcp/echo.ts (Node net echo, one process)",
        loadgen: "bench/tcp/loadgen.ts (Node net, one process per run)",
        baselineConfigs: Object.fromEntries(baselines.map((b) => [b.name, b.config]))
      },
      notes: [
        ...notes,
        `${opts.rounds} round(s); each run: ${opts.warmup} s unmeasured warm-up by the same load generator process, ` +
          `then ${opts.duration} s measured; order rotated every round.`,
        "Bulk MB/s counts payload echoed back to the client: the proxy carries it both ways (2× on its sockets).",
        "Proxy CPU = utime+stime of the proxy's processes (with descendants) from /proc over the measured window."
      ]
    }
  } finally {
    for (const p of proxies) await p.stop().catch(() => {})
    for (const b of baselines) await b.stop().catch(() => {})
    echo.stop()
  }
}
