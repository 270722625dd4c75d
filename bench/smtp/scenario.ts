// The smtp scenario of bench/run.ts (issue 6: messages/s through polyproxy vs direct to the same sink, target ≥ 90 %
// of direct): bench/smtp/loadgen.ts (a nodemailer pooled transport, EHLO tenant-a.example) sending 1 KB and 64 KB
// messages for a fixed time at 1 and 10 connections into bench/smtp/sink.ts (smtp-server in its own process,
// messages discarded and counted), reached directly, through polyproxy's `smtp` listener (1 worker, routed by the
// EHLO name) and through HAProxy `mode tcp` (1 thread). Variants interleaved round by round.
import { readFileSync } from "node:fs"
import { join } from "node:path"
import nodemailer from "nodemailer"
import { type Baseline, startHaproxy } from "../support/baselines.ts"
import { spawnNodeScript } from "../support/children.ts"
import {
  cpuFields,
  interleave,
  type Measurement,
  type NoisePolicy,
  type ScenarioResult,
  sampleCpu,
  type Workload,
  windowCpu
} from "../support/interleave.ts"
import { type Polyproxy, type ProxyEntry, repoRoot } from "../support/polyproxy.ts"
import { sleep } from "../support/process.ts"
import { startProxyVariant } from "../support/proxies.ts"
import { childAlive, directVariant, processVariant, type Variant as VariantOf } from "../support/variant.ts"

export const SMTP_VARIANTS = ["direct", "polyproxy", "haproxy"] as const
export type SmtpVariantName = (typeof SMTP_VARIANTS)[number]
/** The tenant: the EHLO name the load generator gives and the route polyproxy has for it. */
const TENANT = "tenant-a.example"

const SIZES = [
  { id: "1k", label: "1 KB", bytes: 1024 },
  { id: "64k", label: "64 KB", bytes: 64 * 1024 }
] as const
type Size = (typeof SIZES)[number]

export interface SmtpOptions {
  readonly entry: ProxyEntry
  readonly dir: string
  readonly rounds: number
  /** Seconds per measured run, and the unmeasured warm-up the load generator does right before it. */
  readonly duration: number
  readonly warmup: number
  /** The pool's maxConnections, one set of workloads each. */
  readonly connections: readonly number[]
  readonly variants: readonly SmtpVariantName[]
  readonly cpuProfDir?: string | undefined
  readonly lifetimeSeconds: number
  readonly noise: NoisePolicy
  readonly log: (line: string) => void
}

/** Seconds the scenario is expected to take (for the runner's deadline). */
export const plannedSmtpSeconds = (
  o: Pick<SmtpOptions, "rounds" | "duration" | "warmup" | "connections" | "variants">
): number => SIZES.length * o.connections.length * o.variants.length * o.rounds * (o.duration + o.warmup + 1.2) + 15

const packageVersion = (name: string): string => {
  try {
    const pkg = JSON.parse(readFileSync(join(repoRoot, "node_modules", name, "package.json"), "utf8")) as {
      version?: string
    }
    return `${name} ${pkg.version ?? "unknown"}`
  } catch {
    return `${name} unknown`
  }
}

const workloadOf = (size: Size, connections: number): Workload => ({
  id: `${size.id}-c${connections}`,
  label: `${size.label} messages, ${connections} pooled connection${connections > 1 ? "s" : ""}`,
  kind: "rate",
  unit: "messages/s",
  displayDivisor: 1,
  cpuPer: 1000,
  cpuUnit: "CPU s / 1k messages"
})

type Variant = VariantOf<SmtpVariantName>

interface SinkCount {
  readonly count: number
  readonly bytes: number
  readonly sessions: number
}

interface Sink {
  readonly port: number
  readonly pid: number
  /** Messages, bytes and sessions the sink has received so far. */
  readonly counts: () => Promise<SinkCount>
  readonly stop: () => void
}

const startSink = async (lifetimeSeconds: number): Promise<Sink> => {
  let resolvePort: (port: number) => void = () => {}
  const gotPort = new Promise<number>((resolve) => {
    resolvePort = resolve
  })
  const waiting: Array<(c: SinkCount) => void> = []
  const sink = spawnNodeScript("smtp/sink.ts", ["--lifetime", String(Math.ceil(lifetimeSeconds))], (line) => {
    const msg = JSON.parse(line) as { port?: number } & Partial<SinkCount>
    if (msg.port) resolvePort(msg.port)
    else if (msg.count !== undefined) waiting.shift()?.(msg as SinkCount)
  })
  const died = sink.exited.then((code) => Promise.reject(new Error(`smtp sink exited (${code}): ${sink.stderr()}`)))
  died.catch(() => {})
  const port = await Promise.race([
    gotPort,
    died,
    sleep(10_000).then(() => Promise.reject(new Error("smtp sink did not start within 10 s")))
  ])
  const counts = (): Promise<SinkCount> =>
    Promise.race([
      new Promise<SinkCount>((resolve) => {
        waiting.push(resolve)
        sink.child.stdin?.write("count\n")
      }),
      died,
      sleep(5_000).then(() => Promise.reject(new Error("the smtp sink did not answer `count` within 5 s")))
    ])
  const stop = () => sink.child.kill("SIGTERM")
  try {
    await counts()
  } catch (error) {
    stop()
    throw error
  }
  return { port, pid: sink.child.pid!, counts, stop }
}

/** One 1 KB message through whatever listens on `port`, as the load generator sends it (readiness probe). */
const deliverOne = async (port: number): Promise<void> => {
  const transport = nodemailer.createTransport({
    host: "127.0.0.1",
    port,
    secure: false,
    ignoreTLS: true,
    name: TENANT,
    connectionTimeout: 2_000,
    greetingTimeout: 2_000,
    socketTimeout: 5_000,
    disableFileAccess: true,
    disableUrlAccess: true
  })
  try {
    await transport.sendMail({
      envelope: { from: `bench@${TENANT}`, to: [`sink@${TENANT}`] },
      raw: `From: bench@${TENANT}\r\nTo: sink@${TENANT}\r\nSubject: ready\r\n\r\n${"x".repeat(900)}\r\n`
    })
  } finally {
    transport.close()
  }
}

interface LoadgenResult {
  readonly rate: number
  readonly ops: number
  readonly bytes: number
  readonly seconds: number
  readonly errors: number
  readonly errorCodes: Record<string, number>
  readonly loadgenCpuSeconds: number
}

/** One measured run: the load generator against `variant`, CPU read at its "measuring" and "result" lines. */
const measureOnce = async (
  size: Size,
  connections: number,
  variant: Variant,
  sink: Sink,
  opts: SmtpOptions
): Promise<Omit<Measurement, "workload" | "variant" | "round" | "position">> => {
  if (!variant.alive()) throw new Error(`${variant.name} is not running any more`)
  const args = [
    "--port",
    String(variant.port),
    "--connections",
    String(connections),
    "--size",
    String(size.bytes),
    "--duration",
    String(opts.duration),
    "--warmup",
    String(opts.warmup),
    "--name",
    TENANT
  ]
  const sinkBefore = await sink.counts()
  let before: ReturnType<typeof sampleCpu> | undefined
  let after: ReturnType<typeof sampleCpu> | undefined
  let result: LoadgenResult | undefined
  const lg = spawnNodeScript("smtp/loadgen.ts", args, (line) => {
    const msg = JSON.parse(line) as { event: string } & LoadgenResult
    if (msg.event === "measuring") before = sampleCpu(variant.pids, sink.pid)
    else if (msg.event === "result") {
      after = sampleCpu(variant.pids, sink.pid)
      result = msg
    }
  })
  const timer = setTimeout(() => lg.child.kill("SIGKILL"), (opts.duration + opts.warmup + 25) * 1000)
  const code = await lg.exited
  clearTimeout(timer)
  if (result === undefined || before === undefined || after === undefined) {
    throw new Error(`loadgen exited with ${code} without a result: ${lg.stderr() || "(no output)"}`)
  }
  if (result.ops === 0) {
    throw new Error(`no message was accepted (${result.errors} errors: ${JSON.stringify(result.errorCodes)})`)
  }
  // Every message the load generator counted got its 250 from the sink, warm-up ones too: the sink must have at
  // least as many (more when messages in flight at the window's edges are added).
  const delivered = (await sink.counts()).count - sinkBefore.count
  if (delivered < result.ops) {
    throw new Error(`the sink received ${delivered} messages but the load generator counted ${result.ops}`)
  }
  const w = windowCpu(before, after)
  return {
    command: `node bench/smtp/loadgen.ts ${args.join(" ")}`,
    rate: result.rate,
    ops: result.ops,
    bytes: result.bytes,
    seconds: result.seconds,
    errors: result.errors,
    loadgenCpuSeconds: result.loadgenCpuSeconds,
    ...cpuFields(w, 1000, result.ops)
  }
}

export const runSmtpScenario = async (opts: SmtpOptions): Promise<ScenarioResult> => {
  const log = opts.log
  const sink = await startSink(opts.lifetimeSeconds)
  log(`smtp: sink on 127.0.0.1:${sink.port}, pid ${sink.pid}`)
  const proxies: Polyproxy[] = []
  const baselines: Baseline[] = []
  const variants: Variant[] = []
  const notes: string[] = []
  try {
    for (const name of opts.variants) {
      try {
        if (name === "direct") {
          variants.push(
            directVariant(
              name,
              sink.port,
              `the sink itself (bench/smtp/sink.ts, ${packageVersion("smtp-server")}), no proxy`
            )
          )
        } else if (name === "polyproxy") {
          const { proxy, port } = await startProxyVariant({
            entry: opts.entry,
            dir: join(opts.dir, "polyproxy-smtp"),
            cpuProfDir: opts.cpuProfDir === undefined ? undefined : join(opts.cpuProfDir, "polyproxy-smtp"),
            config: (port) => ({
              workers: 1,
              admin: false,
              listeners: { smtp: { host: "127.0.0.1", port } },
              routes: { [TENANT]: `127.0.0.1:${sink.port}` },
              ssrf: { allow: ["127.0.0.0/8"] },
              log: { level: "warn", connections: false }
            }),
            ready: deliverOne
          })
          proxies.push(proxy)
          variants.push(
            processVariant(
              name,
              port,
              { pid: proxy.pid, alive: childAlive(proxy.child) },
              "polyproxy smtp",
              `\`node ${opts.entry === "dist" ? "dist/cli.js" : "src/cli.ts"} serve\`, \`smtp\` listener (no TLS, ` +
                `routed by the EHLO name \`${TENANT}\`), \`workers: 1\`, log level warn, connection log off`
            )
          )
        } else {
          const b = await startHaproxy({
            dir: join(opts.dir, "haproxy-smtp"),
            backendPort: sink.port,
            ready: deliverOne
          })
          baselines.push(b)
          variants.push(
            processVariant(name, b.port, b, "HAProxy 1 thread", `${b.version}, \`mode tcp\`, \`nbthread 1\``)
          )
        }
        log(`smtp: ${name} on 127.0.0.1:${variants.at(-1)?.port}`)
      } catch (error) {
        const message = (error as Error).message
        log(`smtp: ${name} could not be started: ${message}`)
        notes.push(`${name} could not be started: ${message.split("\n")[0]}`)
      }
    }
    await sleep(300)

    const workloads: Workload[] = []
    const measurements: Measurement[] = []
    for (const size of SIZES) {
      for (const connections of opts.connections) {
        const workload = workloadOf(size, connections)
        workloads.push(workload)
        const runs = await interleave({
          workload,
          variants,
          rounds: opts.rounds,
          noise: opts.noise,
          log: (line) => log(`smtp ${line}`),
          measure: async (variant, round, position) => {
            const m = await measureOnce(size, connections, variant, sink, opts)
            // Let the previous run's sessions finish closing before the next variant starts.
            await sleep(150)
            return { variant: variant.name, round, position, ...m }
          }
        })
        measurements.push(...runs)
      }
    }
    return {
      scenario: "smtp",
      title: "smtp: nodemailer pool direct vs polyproxy `smtp` listener vs HAProxy tcp",
      workloads,
      variants: variants.map((v) => v.info),
      reference: "direct",
      ...(variants.some((v) => v.name === "haproxy") ? { compareTo: "haproxy" } : {}),
      measurements,
      setup: {
        rounds: opts.rounds,
        durationSeconds: opts.duration,
        warmupSeconds: opts.warmup,
        connections: opts.connections,
        messageBytes: SIZES.map((s) => s.bytes),
        nodemailer: packageVersion("nodemailer"),
        smtpServer: packageVersion("smtp-server"),
        sink: "bench/smtp/sink.ts (smtp-server, no TLS, no AUTH, messages discarded; one Node process)",
        loadgen:
          "bench/smtp/loadgen.ts (nodemailer pool: true, maxConnections N, maxMessages Infinity, ignoreTLS, " +
          `name ${TENANT}; 2×N messages queued; one Node process per run)`,
        baselineConfigs: Object.fromEntries(baselines.map((b) => [b.name, b.config]))
      },
      notes: [
        ...notes,
        `${opts.rounds} round(s); each run: ${opts.warmup} s unmeasured warm-up by the same load generator process ` +
          `(the pool's connections are opened and greeted then), then ${opts.duration} s measured; order rotated ` +
          "every round.",
        "A message counts when the sink's 250 to its final `.` reaches the load generator inside the window; " +
          "MAIL FROM, RCPT TO and DATA go over the pooled connections (no connect or EHLO per message). After each " +
          "run the sink's own count is checked against the load generator's.",
        "On a shared machine the load generator (nodemailer) and the sink (smtp-server) are both Node processes that " +
          "need CPU per message: the ratio mostly says how much CPU the proxy takes from them. Read it with the " +
          "proxy's CPU per 1k messages.",
        "Proxy CPU = utime+stime of the proxy's process (with descendants) from /proc over the measured window."
      ]
    }
  } finally {
    for (const p of proxies) await p.stop().catch(() => {})
    for (const b of baselines) await b.stop().catch(() => {})
    sink.stop()
  }
}
