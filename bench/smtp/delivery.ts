// The smtp scenario's runs: messages for the tenants sent through one variant, one smtp-source process per tenant
// started together, every message checked at the sinks; the calibration that sizes a run, and one measured run with
// the proxy's, the sinks' and the generators' CPU.
import {
  cpuFields,
  type Measurement,
  processTreeCpu,
  sampleCpu,
  type Workload,
  windowCpu
} from "../support/interleave.ts"
import { reapedChildrenCpu } from "../support/process.ts"
import { median } from "../support/report.ts"
import type { Variant } from "../support/variant.ts"
import { runSmtpSource, type SmtpSink, type SourceRun, sinkMessages, sinksReach, TENANTS } from "./postfix.ts"

export interface SmtpWorkload extends Workload {
  readonly run: Omit<SourceRun, "messages" | "helo">
}

/** The tenants' sinks, and the port each tenant's smtp-source connects to through `variant`. */
export interface Target {
  readonly sinks: readonly SmtpSink[]
  /** Per tenant: the sink's own port (direct) or the proxy's. */
  readonly ports: readonly number[]
}

export const targetOf = (sinks: readonly SmtpSink[], variant: Variant): Target => ({
  sinks,
  ports: sinks.map((s) => (variant.name === "direct" ? s.port : variant.port))
})

/** Sessions and messages per tenant: the sessions spread over as many tenants as there are, messages in proportion. */
export const split = (sessions: number, messages: number): { sessions: number; messages: number }[] => {
  const k = Math.min(TENANTS.length, sessions)
  const parts = Array.from({ length: k }, (_, i) => {
    const s = Math.floor(sessions / k) + (i < sessions % k ? 1 : 0)
    return { sessions: s, messages: Math.floor((messages * s) / sessions) }
  })
  parts[0]!.messages += messages - parts.reduce((n, p) => n + p.messages, 0)
  return parts
}

/**
 * `messages` in all through `target`, one smtp-source process per tenant started together; resolves with the wall
 * time until the last exits once the sinks have counted every message, or throws (after every process ended).
 */
export const deliver = async (target: Target, run: SmtpWorkload["run"], messages: number, timeoutMs: number) => {
  const before = sinkMessages(target.sinks)
  const t0 = process.hrtime.bigint()
  const runs = await Promise.allSettled(
    split(run.sessions, messages).map((p, i) =>
      runSmtpSource(target.ports[i]!, { ...run, ...p, helo: TENANTS[i]! }, timeoutMs)
    )
  )
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  const failed = runs.find((r) => r.status === "rejected")
  if (failed) throw failed.reason
  await sinksReach(target.sinks, before + messages)
  return {
    seconds,
    command: runs.map((r) => (r.status === "fulfilled" ? `smtp-source ${r.value.args.join(" ")}` : "")).join(" & ")
  }
}

/** Readiness: one message per tenant, end to end, through whatever listens on `port`. */
export const deliverEach = (sinks: readonly SmtpSink[]) => async (port: number) => {
  const run = { sessions: TENANTS.length, size: 1024, keepSessions: true }
  await deliver({ sinks, ports: sinks.map(() => port) }, run, TENANTS.length, 5_000)
}

/** Messages for a run of `seconds` at the rate of a run of `sent` messages (at least 10 per session). */
const sized = (w: SmtpWorkload, sent: number, took: number, seconds: number) =>
  Math.max(w.run.sessions * 10, Math.round(((sent / took) * seconds) / w.run.sessions) * w.run.sessions)

/**
 * The messages a measured run through `target` gets: a short probe, then a run of about `warmup` seconds (it warms
 * the proxy up), whose rate sets the count for `duration` seconds.
 */
export const calibrate = async (target: Target, w: SmtpWorkload, warmup: number, duration: number) => {
  const probe = Math.max(w.run.sessions * 20, 200)
  const first = await deliver(target, w.run, probe, 60_000)
  const warm = sized(w, probe, first.seconds, Math.max(warmup, 0.3))
  const second = await deliver(target, w.run, warm, 60_000)
  return sized(w, warm, second.seconds, duration)
}

/** One measured run: the proxy's and the sinks' CPU read around the smtp-source processes, theirs once reaped. */
export const measureOnce = async (
  target: Target,
  variant: Variant,
  w: SmtpWorkload,
  messages: number,
  duration: number
): Promise<Omit<Measurement, "workload" | "variant" | "round" | "position">> => {
  if (!variant.alive()) throw new Error(`${variant.name} is not running any more`)
  const dead = target.sinks.find((s) => !s.alive())
  if (dead) throw new Error(`the smtp-sink on port ${dead.port} is not running any more`)
  const sinkPids = target.sinks.map((s) => s.pid)
  const before = sampleCpu(variant.pids, undefined)
  const sinksBefore = processTreeCpu(sinkPids)
  const generator = reapedChildrenCpu()
  const r = await deliver(target, w.run, messages, (duration * 10 + 30) * 1000)
  const after = sampleCpu(variant.pids, undefined)
  const sinksAfter = processTreeCpu(sinkPids)
  const loadgenCpuSeconds = reapedChildrenCpu() - generator
  return {
    command: r.command,
    rate: messages / r.seconds,
    ops: messages,
    seconds: r.seconds,
    errors: 0,
    loadgenCpuSeconds,
    ...cpuFields(windowCpu(before, after), w.cpuPer, messages),
    ...(sinksBefore !== undefined && sinksAfter !== undefined ? { backendCpuSeconds: sinksAfter - sinksBefore } : {})
  }
}

/** How busy each single-threaded sink was in direct's runs: when that nears one core, the sinks are the limit. */
export const sinkNotes = (workloads: readonly SmtpWorkload[], measurements: readonly Measurement[]): string[] =>
  workloads.flatMap((w) => {
    const sinks = split(w.run.sessions, w.run.sessions).length
    const runs = measurements.filter(
      (m) => m.workload === w.id && m.variant === "direct" && m.error === undefined && m.discarded === undefined
    )
    const each = median(
      runs.flatMap((m) => (m.backendCpuSeconds && m.seconds ? [m.backendCpuSeconds / m.seconds / sinks] : []))
    )
    const perK = median(
      runs.flatMap((m) => (m.backendCpuSeconds && m.ops ? [(m.backendCpuSeconds * 1000) / m.ops] : []))
    )
    return each === undefined || perK === undefined
      ? []
      : [
          `${w.id} direct: ${sinks === 1 ? "the smtp-sink" : `each of the ${sinks} smtp-sinks`} used ` +
            `${(each * 100).toFixed(0)} % of a core (${perK.toFixed(3)} CPU s / 1k messages in all).`
        ]
  })
