// The smtp scenario of bench/run.ts: Postfix's smtp-source (C) sending 64 KB and 1 KB messages for two tenants into
// Postfix's smtp-sink (C), one sink per tenant, reached directly (the headroom reference), through polyproxy's `smtp`
// listener (1 worker, routing each session by its HELO name), through the minimal Node relay (the Node floor) and
// through HAProxy `mode tcp` (1 thread); the last two hand connections to the sinks in turn. Each run sends a fixed
// number of messages, calibrated per variant so that a run lasts about the scenario's duration, with one smtp-source
// process per tenant; the rate is messages ÷ the wall time until both are done. Variants interleaved round by round.
//
// Why two sinks: one smtp-sink scans DATA byte by byte on one core (≈ 0.3 ms of CPU per 64 KB message here), which
// made it the limit: proxies relaying 64 KB messages came within 15 % of direct, and the headroom check rightly
// called them bound. Two sinks take about 1.6 times as many messages, and the ratios say something about the proxies.
import { join } from "node:path"
import { type Baseline, startHaproxy } from "../support/baselines.ts"
import { NODE_RELAY_WHAT, type ReadyChild, startNodeRelay } from "../support/children.ts"
import {
  compareToHaproxy,
  interleave,
  type Measurement,
  type NoisePolicy,
  type ScenarioResult
} from "../support/interleave.ts"
import type { Polyproxy, ProxyEntry } from "../support/polyproxy.ts"
import { sleep, versionOf } from "../support/process.ts"
import { startPolyproxyVariants } from "../support/proxies.ts"
import {
  type Compared,
  directVariant,
  processVariant,
  startedText,
  type Variant as VariantOf,
  variantInfos
} from "../support/variant.ts"
import { calibrate, deliverEach, measureOnce, type SmtpWorkload, sinkNotes, split, targetOf } from "./delivery.ts"
import { type SmtpSink, startSmtpSink, TENANTS } from "./postfix.ts"

export const SMTP_VARIANTS = ["direct", "polyproxy", "node-relay", "haproxy"] as const
export type SmtpVariantName = (typeof SMTP_VARIANTS)[number]

const workloadOf = (size: number, sessions: number, keepSessions: boolean): SmtpWorkload => {
  const kb = `${size / 1024} KB`
  const tenants = split(sessions, sessions).length
  const s = `${sessions} session${sessions > 1 ? "s" : ""}${tenants > 1 ? ` (${tenants} tenants)` : ""}`
  return {
    id: `${size / 1024}k${keepSessions ? "" : "-new"}-c${sessions}`,
    label: keepSessions
      ? `${kb} messages, ${s}, message after message on each`
      : `${kb} messages, a new session per message (connect, HELO, QUIT), ${s}`,
    kind: "rate",
    unit: "messages/s",
    displayDivisor: 1,
    cpuPer: 1000,
    cpuUnit: "CPU s / 1k messages",
    run: { size, sessions, keepSessions }
  }
}

/**
 * 64 KB and 1 KB over long-lived sessions at every session count, then 1 KB with a session of its own each at the
 * largest count (what routing a session costs); `only` keeps the ones with these ids.
 */
export const smtpWorkloads = (sessions: readonly number[], only?: readonly string[]): SmtpWorkload[] =>
  [
    ...sessions.map((c) => workloadOf(64 * 1024, c, true)),
    ...sessions.map((c) => workloadOf(1024, c, true)),
    workloadOf(1024, Math.max(...sessions), false)
  ].filter((w) => only === undefined || only.includes(w.id))

export interface SmtpOptions {
  readonly entry: ProxyEntry
  /** `--compare`: every polyproxy variant also from that revision (bench/support/compare.ts). */
  readonly compare?: ProxyEntry | undefined
  readonly dir: string
  readonly rounds: number
  /** Seconds each measured run should take (its message count is calibrated per variant). */
  readonly duration: number
  /** Seconds of the calibration run per variant and workload (it warms the proxy up too). */
  readonly warmup: number
  /** Parallel sessions in all (smtp-source -s, spread over the tenants), one set of workloads each. */
  readonly connections: readonly number[]
  /** Only these workload ids (all when absent). */
  readonly workloads?: readonly string[] | undefined
  readonly variants: readonly SmtpVariantName[]
  readonly cpuProfDir?: string | undefined
  readonly lifetimeSeconds: number
  readonly noise: NoisePolicy
  readonly log: (line: string) => void
}

/** Seconds the scenario is expected to take (for the runner's deadline). */
export const plannedSmtpSeconds = (
  o: Pick<SmtpOptions, "rounds" | "duration" | "warmup" | "connections" | "variants" | "workloads">
): number =>
  smtpWorkloads(o.connections, o.workloads).length *
    o.variants.length *
    (o.rounds * (o.duration + 0.4) + o.warmup + 0.5) +
  15

type Variant = VariantOf<SmtpVariantName | Compared<SmtpVariantName>>

const RELAY_WHAT = `${NODE_RELAY_WHAT}; connections go to the sinks in turn`

/**
 * Starts one variant in front of the sinks (polyproxy's with its `--compare` twin); every one must carry a message per
 * tenant before it counts.
 */
const startVariant = async (
  name: SmtpVariantName,
  sinks: readonly SmtpSink[],
  opts: SmtpOptions,
  started: { proxies: Polyproxy[]; relays: ReadyChild<number>[]; baselines: Baseline[] }
): Promise<Variant[]> => {
  const ready = deliverEach(sinks)
  const ports = sinks.map((s) => s.port)
  if (name === "direct") {
    return [directVariant(name, ports[0]!, "Postfix's smtp-sink itself (C, one process per tenant), no proxy")]
  }
  if (name === "polyproxy") {
    const { proxies, variants } = await startPolyproxyVariants({
      name,
      entry: opts.entry,
      compare: opts.compare,
      dir: opts.dir,
      cpuProfDir: opts.cpuProfDir,
      listener: (port) => ({ smtp: { host: "127.0.0.1", port } }),
      routes: Object.fromEntries(TENANTS.map((t, i) => [t, `127.0.0.1:${ports[i]}`])),
      ready,
      label: "polyproxy smtp",
      what: "`smtp` listener (no TLS; each session routed by its HELO name to its tenant's sink, the HELO replayed)"
    })
    started.proxies.push(...proxies)
    return variants
  }
  if (name === "node-relay") {
    const relay = await startNodeRelay(ports)
    started.relays.push(relay)
    await ready(relay.info)
    return [processVariant(name, relay.info, relay, "minimal Node relay", RELAY_WHAT)]
  }
  const b = await startHaproxy({ dir: join(opts.dir, "haproxy-smtp"), backendPort: ports, ready })
  started.baselines.push(b)
  return [
    processVariant(
      name,
      b.port,
      b,
      "HAProxy 1 thread",
      `${b.version}, \`mode tcp\`, \`nbthread 1\`, \`balance roundrobin\` over the sinks`
    )
  ]
}

export const runSmtpScenario = async (opts: SmtpOptions): Promise<ScenarioResult> => {
  const log = opts.log
  const sinks: SmtpSink[] = []
  const started = { proxies: [] as Polyproxy[], relays: [] as ReadyChild<number>[], baselines: [] as Baseline[] }
  const variants: Variant[] = []
  const notes: string[] = []
  const measurements: Measurement[] = []
  const workloads = smtpWorkloads(opts.connections, opts.workloads)
  try {
    for (const tenant of TENANTS) {
      const sink = await startSmtpSink(opts.lifetimeSeconds)
      sinks.push(sink)
      log(`smtp: smtp-sink for ${tenant} on 127.0.0.1:${sink.port}, pid ${sink.pid}`)
    }
    for (const name of opts.variants) {
      try {
        variants.push(...(await startVariant(name, sinks, opts, started)))
        log(`smtp: ${startedText(variants, name)}`)
      } catch (error) {
        const message = (error as Error).message
        log(`smtp: ${name} could not be started: ${message}`)
        notes.push(`${name} could not be started: ${message.split("\n")[0]}`)
        for (const w of workloads) {
          measurements.push({ workload: w.id, variant: name, round: 0, position: 0, error: `not started: ${message}` })
        }
      }
    }
    await sleep(300)

    for (const workload of workloads) {
      const messages = new Map<string, number>()
      for (const v of variants) {
        try {
          messages.set(v.name, await calibrate(targetOf(sinks, v), workload, opts.warmup, opts.duration))
        } catch (error) {
          log(`smtp ${workload.id} ${v.name}: calibration failed: ${(error as Error).message}`)
        }
      }
      const runs = await interleave({
        workload,
        variants,
        rounds: opts.rounds,
        noise: opts.noise,
        log: (line) => log(`smtp ${line}`),
        measure: async (variant, round, position) => {
          const n = messages.get(variant.name)
          if (n === undefined) throw new Error("no calibration (its runs failed)")
          const m = await measureOnce(targetOf(sinks, variant), variant, workload, n, opts.duration)
          // Let the previous run's sessions finish closing before the next variant starts.
          await sleep(workload.run.keepSessions ? 100 : 300)
          return { variant: variant.name, round, position, ...m }
        }
      })
      measurements.push(...runs)
    }
    return {
      scenario: "smtp",
      title: "smtp: smtp-source → smtp-sink direct vs polyproxy `smtp` listener vs the Node relay vs HAProxy tcp",
      workloads: workloads.map(({ run: _, ...w }) => w),
      variants: variantInfos(opts.variants, variants),
      reference: "direct",
      ...compareToHaproxy(variants),
      measurements,
      setup: {
        rounds: opts.rounds,
        durationSeconds: opts.duration,
        calibrationSeconds: opts.warmup,
        sessions: opts.connections,
        tenants: TENANTS,
        postfix: versionOf("/usr/sbin/postconf", ["-d", "mail_version"]),
        loadgen:
          "Postfix's smtp-source (C), one process per tenant per run: -s sessions -m messages -l body bytes [-d] " +
          "-M tenant -f bench@tenant -t sink@tenant -S bench",
        sink: "Postfix's smtp-sink -c (C), one process per tenant, messages discarded; no STARTTLS, PIPELINING offered",
        baselineConfigs: Object.fromEntries(started.baselines.map((b) => [b.name, b.config]))
      },
      notes: [
        ...notes,
        `${opts.rounds} round(s); order rotated every round. Per workload and variant a calibration run of about ` +
          `${opts.warmup} s (unmeasured; it warms the proxy up) sets the message count that variant answers in ` +
          `about ${opts.duration} s; each measured run sends that many, the sessions and messages spread over the ` +
          `tenants (${TENANTS.join(", ")}), one smtp-source process each, started together.`,
        "Rate = messages ÷ wall time from the smtp-source processes' spawn to the last one's exit (connects, HELOs " +
          "and QUITs included). A run counts only when every smtp-source exits 0 (it stops at the first reply that " +
          "is not positive) and the smtp-sinks' own counters have every message.",
        "smtp-source sends HELO, one command at a time (no pipelining), and closes each session with a reset " +
          "(SO_LINGER 0); a message is 4 short headers and the body in 78-character lines. The `smtp` listener " +
          "routes each session by its HELO name and replays that HELO to the tenant's sink, then relays untouched.",
        "Proxy CPU = utime+stime of the proxy's process (with descendants) from /proc over the run; generator CPU = " +
          "the smtp-source processes', reaped.",
        ...sinkNotes(workloads, measurements)
      ]
    }
  } finally {
    for (const p of started.proxies) await p.stop().catch(() => {})
    for (const b of started.baselines) await b.stop().catch(() => {})
    for (const r of started.relays) r.stop()
    for (const s of sinks) s.stop()
  }
}
