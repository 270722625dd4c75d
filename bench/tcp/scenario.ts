// The tcp scenario of bench/run.ts: polyproxy's generic `tcp` listener (1 and 2 workers) beside the C echo backend
// reached directly, the minimal Node relay (the Node floor), HAProxy (`mode tcp`, 1 thread) and nginx (`stream`,
// 1 worker process). Four workloads, each run by the C load generator (bench/native/loadgen.c) in its own process
// against every variant, interleaved round by round.
import { join } from "node:path"
import { type Baseline, startHaproxy, startNginxStream } from "../support/baselines.ts"
import { echoRoundTrip, type ReadyChild, startHelper, startNodeRelay } from "../support/children.ts"
import {
  interleave,
  type Measurement,
  type NoisePolicy,
  type ScenarioResult,
  type Workload
} from "../support/interleave.ts"
import { runLoadgen } from "../support/loadgen.ts"
import { benchBinaries } from "../support/native.ts"
import type { Polyproxy, ProxyEntry } from "../support/polyproxy.ts"
import { sleep } from "../support/process.ts"
import { startPolyproxyVariants } from "../support/proxies.ts"
import {
  type Compared,
  directVariant,
  processVariant,
  startedText,
  type Variant as VariantOf,
  variantInfos
} from "../support/variant.ts"

export const TCP_VARIANTS = ["direct", "polyproxy-1", "polyproxy-2", "node-relay", "haproxy", "nginx"] as const
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
  /** `--compare`: every polyproxy variant also from that revision (bench/support/compare.ts). */
  readonly compare?: ProxyEntry | undefined
  readonly dir: string
  readonly rounds: number
  /** Seconds per measured run, and the unmeasured warm-up the load generator does right before it. */
  readonly duration: number
  readonly warmup: number
  readonly variants: readonly TcpVariantName[]
  readonly workloads?: readonly string[]
  readonly cpuProfDir?: string | undefined
  readonly lifetimeSeconds: number
  readonly noise: NoisePolicy
  readonly log: (line: string) => void
}

type Variant = VariantOf<TcpVariantName | Compared<TcpVariantName>>

/** Seconds the scenario is expected to take (for the runner's deadline). */
export const plannedTcpSeconds = (
  o: Pick<TcpOptions, "rounds" | "duration" | "warmup" | "variants" | "workloads">
): number =>
  (o.workloads?.length ?? TCP_WORKLOADS.length) * o.rounds * o.variants.length * (o.duration + o.warmup + 0.8) + 10

/** The load harness's C echo backend (load/native/backend.c, tcp mode): one process, one thread, epoll. */
export const startEcho = (lifetimeSeconds: number): Promise<ReadyChild<number>> =>
  startHelper(
    "echo backend",
    benchBinaries().echo,
    ["--listen", "127.0.0.1:0", "--mode", "tcp", "--lifetime", String(Math.ceil(lifetimeSeconds))],
    (line) => {
      const listening = (JSON.parse(line) as { listening?: string[] }).listening?.[0]
      return listening === undefined ? undefined : Number(listening.split(":").at(-1))
    }
  )

export const runTcpScenario = async (opts: TcpOptions): Promise<ScenarioResult> => {
  const log = opts.log
  const echo = await startEcho(opts.lifetimeSeconds)
  const echoPort = echo.info
  log(`tcp: echo backend on 127.0.0.1:${echoPort}, pid ${echo.pid}`)
  const proxies: Polyproxy[] = []
  const relays: ReadyChild<number>[] = []
  const baselines: Baseline[] = []
  const variants: Variant[] = []
  const notes: string[] = []
  const startupErrors: Measurement[] = []
  try {
    for (const name of opts.variants) {
      try {
        if (name === "direct") {
          variants.push(directVariant(name, echoPort, "the C echo backend itself (load/native/backend.c), no proxy"))
        } else if (name === "node-relay") {
          const relay = await startNodeRelay(echoPort)
          relays.push(relay)
          variants.push(
            processVariant(
              name,
              relay.info,
              relay,
              "minimal Node relay",
              "the Node floor (bench/support/relay.ts): net.createServer + net.connect + data/drain handlers, " +
                "nothing else"
            )
          )
        } else if (name === "polyproxy-1" || name === "polyproxy-2") {
          const workers = name === "polyproxy-1" ? 1 : 2
          const started = await startPolyproxyVariants({
            name,
            entry: opts.entry,
            compare: opts.compare,
            dir: opts.dir,
            cpuProfDir: opts.cpuProfDir,
            workers,
            listener: (port) => ({ tcp: { host: "127.0.0.1", port, route: "echo" } }),
            routes: { echo: `127.0.0.1:${echoPort}` },
            // A few round trips: with 2 workers the second one may come up a moment after the first.
            ready: async (port) => {
              for (let i = 0; i < 4; i++) await echoRoundTrip(port)
            },
            label: `polyproxy ${workers} worker${workers > 1 ? "s" : ""}`,
            what: "generic `tcp` listener"
          })
          proxies.push(...started.proxies)
          variants.push(...started.variants)
        } else {
          const start = name === "haproxy" ? startHaproxy : startNginxStream
          const b = await start({
            dir: join(opts.dir, name),
            backendPort: echoPort,
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
        log(`tcp: ${startedText(variants, name)}`)
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
        noise: opts.noise,
        log: (line) => log(`tcp ${line}`),
        measure: async (variant, round, position) => {
          const m = await runLoadgen({
            workload,
            variant,
            backendPid: echo.pid,
            args: [
              "--mode",
              workload.id,
              "--port",
              String(variant.port),
              "--duration",
              String(opts.duration),
              "--warmup",
              String(opts.warmup)
            ],
            seconds: opts.duration + opts.warmup
          })
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
      title: "tcp: generic `tcp` listener vs direct, the minimal Node relay, HAProxy and nginx",
      workloads,
      variants: variantInfos(opts.variants, variants),
      reference,
      ...(compareTo ? { compareTo } : {}),
      measurements,
      setup: {
        rounds: opts.rounds,
        durationSeconds: opts.duration,
        warmupSeconds: opts.warmup,
        backend: "load/native/backend.c --mode tcp (C, epoll, one process)",
        loadgen: "bench/native/loadgen.c (C, epoll, one process per run)",
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
    for (const r of relays) r.stop()
    echo.stop()
  }
}
