// What every scenario of bench/run.ts produces, and how it runs its variants: interleaved in one run
// (round 1: A B C, round 2: B C A, round 3: C A B, …), so slow drift of a shared machine hits every variant alike.
import {
  busyShare,
  type CpuTimes,
  clockTicks,
  cpuSeconds,
  foreignCpuSeconds,
  machineCpu,
  treeCpuSeconds
} from "./process.ts"

/** One row of a scenario's table: what is measured and in which unit. */
export interface Workload {
  readonly id: string
  readonly label: string
  /** "rate": higher is better (ops/s or bytes/s). "latency": per round trip, lower is better. */
  readonly kind: "rate" | "latency"
  /** Unit of the displayed rate, e.g. "conn/s", "MB/s". */
  readonly unit: string
  /** The raw rate (per second) is divided by this for display (1e6 for bytes/s → MB/s). */
  readonly displayDivisor: number
  /** CPU seconds are given per this many ops (1000) or bytes (1e9). */
  readonly cpuPer: number
  /** e.g. "CPU s / 1k conn", "CPU s / GB". */
  readonly cpuUnit: string
  /**
   * The variant this workload's second ratio is taken against, instead of the scenario's `compareTo` (the pg
   * scenario's transaction-pooling workloads: PgBouncer in transaction mode, not HAProxy).
   */
  readonly compareTo?: string
}

export interface VariantInfo {
  readonly name: string
  readonly label: string
  /** What it is: version, threads, config summary. */
  readonly description: string
}

export interface LatencyUs {
  readonly p50: number
  readonly p90: number
  readonly p99: number
  readonly max: number
  readonly mean: number
}

export interface Measurement {
  readonly workload: string
  readonly variant: string
  /** 1-based round; within a round every variant runs once. */
  readonly round: number
  /** 0-based position of the variant within its round (the order rotates from round to round). */
  readonly position: number
  readonly command?: string
  /** Per second: ops, or bytes for byte workloads. */
  readonly rate?: number
  readonly ops?: number
  readonly bytes?: number
  readonly seconds?: number
  readonly errors?: number
  readonly latencyUs?: LatencyUs
  /** The most server connections the backend held for the load during the run, sampled (pooled pg workloads). */
  readonly serverConnectionsMax?: number
  /** CPU seconds of the proxy's processes (all of them: primary and workers, master and worker) in the window. */
  readonly proxyCpuSeconds?: number
  /** proxyCpuSeconds per workload.cpuPer ops (or bytes). */
  readonly cpuPerUnit?: number
  readonly loadgenCpuSeconds?: number
  /** CPU seconds of the backend (echo server, MariaDB) in the window. */
  readonly backendCpuSeconds?: number
  /** Share (0..1) of all cores busy during the window. */
  readonly machineBusy?: number
  /** CPU seconds of processes outside the bench's tree during the window, and as a share of all cores. */
  readonly foreignCpuSeconds?: number
  readonly foreignShare?: number
  readonly error?: string
  /**
   * Set on every run of a round that the noise rule threw away (some run of it saw other processes above the limit):
   * kept in the results to show what happened, never summarized.
   */
  readonly discarded?: string
  /** A run above the noise limit kept anyway (`--dev`, `--smoke`): never publishable. */
  readonly noisy?: boolean
}

/**
 * The noise rule: a round in which any run saw other processes use more than `limit` of the machine is discarded and
 * run again, at most `retries` times per round. `keep` (development runs, the smoke) keeps such rounds instead and
 * marks their runs noisy.
 */
export interface NoisePolicy {
  readonly limit: number
  readonly retries: number
  readonly keep: boolean
}

export const NOISE_LIMIT = 0.1

export interface ScenarioResult {
  readonly scenario: string
  readonly title: string
  readonly workloads: readonly Workload[]
  readonly variants: readonly VariantInfo[]
  /** The variant every ratio is taken against, and the second one shown beside it (e.g. HAProxy). */
  readonly reference: string
  readonly compareTo?: string
  readonly measurements: readonly Measurement[]
  readonly setup: Readonly<Record<string, unknown>>
  readonly notes: readonly string[]
}

/** A sample of the counters a window is measured with. */
export interface CpuSample {
  readonly proxy: number | undefined
  readonly backend: number | undefined
  readonly machine: CpuTimes
  readonly tree: number
}

/** CPU seconds of each root pid and its descendants (alive, or reaped into its cutime), summed. */
export const processTreeCpu = (pids: readonly number[]): number | undefined => {
  if (pids.length === 0) return undefined
  let total = 0
  for (const pid of pids) {
    if (cpuSeconds(pid) === undefined) return undefined
    total += treeCpuSeconds(pid)
  }
  return total
}

export const sampleCpu = (proxyPids: readonly number[], backendPid: number | undefined): CpuSample => ({
  proxy: processTreeCpu(proxyPids),
  backend: backendPid === undefined ? undefined : treeCpuSeconds(backendPid),
  machine: machineCpu(),
  tree: treeCpuSeconds()
})

const minus = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined || b === undefined ? undefined : a - b

/** The window between two samples: the proxy's and backend's CPU, how busy the machine was, and the neighbours. */
export const windowCpu = (before: CpuSample, after: CpuSample) => {
  const foreign = foreignCpuSeconds(before.machine, after.machine, before.tree, after.tree)
  const wall = (after.machine.total - before.machine.total) / clockTicks()
  return {
    proxyCpuSeconds: minus(after.proxy, before.proxy),
    backendCpuSeconds: minus(after.backend, before.backend),
    machineBusy: busyShare(before.machine, after.machine),
    foreignCpuSeconds: foreign,
    foreignShare: wall > 0 ? foreign / wall : 0
  }
}

/** The CPU part of a Measurement: the window's readings plus the proxy's CPU seconds per `per` units of `amount`. */
export const cpuFields = (w: ReturnType<typeof windowCpu>, per: number, amount: number) => ({
  proxyCpuSeconds: w.proxyCpuSeconds,
  cpuPerUnit: w.proxyCpuSeconds === undefined ? undefined : (w.proxyCpuSeconds * per) / amount,
  backendCpuSeconds: w.backendCpuSeconds,
  machineBusy: w.machineBusy,
  foreignCpuSeconds: w.foreignCpuSeconds,
  foreignShare: w.foreignShare
})

/** `variants` rotated by `round`: each variant goes first, second, … equally often over len(variants) rounds. */
/** The `compareTo` of a scenario's result: HAProxy when it ran among the variants. */
export const compareToHaproxy = (variants: readonly { readonly name: string }[]): { compareTo?: string } =>
  variants.some((v) => v.name === "haproxy") ? { compareTo: "haproxy" } : {}

export const rotation = <T>(variants: readonly T[], round: number): T[] =>
  variants.map((_, i) => variants[(i + round) % variants.length]!)

/**
 * Runs `measure` for every variant, `rounds` times, in rotating order; a failed run is recorded with its error and
 * the others go on (the caller decides whether a failure is fatal). The noise rule applies per round: a noisy round
 * is rerun (its runs stay in the output, marked discarded) until it is quiet or its retries are spent.
 */
export const interleave = async <V extends { readonly name: string; readonly alive?: () => boolean }>(opts: {
  readonly workload: Workload
  readonly variants: readonly V[]
  readonly rounds: number
  readonly noise: NoisePolicy
  readonly measure: (variant: V, round: number, position: number) => Promise<Omit<Measurement, "workload">>
  readonly log: (line: string) => void
}): Promise<Measurement[]> => {
  const out: Measurement[] = []
  const total = opts.rounds * opts.variants.length
  for (let round = 1; round <= opts.rounds; round++) {
    for (let attempt = 0; ; attempt++) {
      const runs: Measurement[] = []
      for (const [position, variant] of rotation(opts.variants, round - 1).entries()) {
        const index = (round - 1) * opts.variants.length + position + 1
        const label =
          `${opts.workload.id} [${index}/${total}] round ${round}${attempt > 0 ? ` (rerun ${attempt})` : ""} ` +
          variant.name
        try {
          // A variant whose process died fails its runs at once rather than measuring a closed port.
          if (variant.alive?.() === false) throw new Error(`${variant.name} is not running any more`)
          const m: Measurement = { workload: opts.workload.id, ...(await opts.measure(variant, round, position)) }
          runs.push(m)
          opts.log(`${label}: ${describe(opts.workload, m)}`)
        } catch (error) {
          const message = (error as Error).message
          runs.push({ workload: opts.workload.id, variant: variant.name, round, position, error: message })
          opts.log(`${label}: FAILED: ${message.split("\n")[0]}`)
        }
      }
      const worst = Math.max(0, ...runs.map((m) => m.foreignShare ?? 0))
      if (worst <= opts.noise.limit) {
        out.push(...runs)
        break
      }
      const why = `other processes used ${(worst * 100).toFixed(0)} % of the machine (limit ${opts.noise.limit * 100} %)`
      if (opts.noise.keep) {
        out.push(...runs.map((m) => ((m.foreignShare ?? 0) > opts.noise.limit ? { ...m, noisy: true } : m)))
        opts.log(`${opts.workload.id} round ${round}: noisy (${why}), kept: not publishable`)
        break
      }
      out.push(...runs.map((m) => ({ ...m, discarded: `attempt ${attempt + 1}: ${why}` })))
      if (attempt >= opts.noise.retries) {
        opts.log(`${opts.workload.id} round ${round}: discarded (${why}); no retries left, the round is lost`)
        break
      }
      opts.log(`${opts.workload.id} round ${round}: discarded (${why}), running it again`)
      // Give a neighbour's burst a moment to pass before the rerun.
      await new Promise((resolve) => setTimeout(resolve, 2_000))
    }
  }
  return out
}

const describe = (w: Workload, m: Measurement): string => {
  const parts: string[] = []
  if (m.rate !== undefined) parts.push(`${(m.rate / w.displayDivisor).toFixed(w.displayDivisor > 1 ? 1 : 0)} ${w.unit}`)
  if (m.latencyUs) parts.push(`p50 ${m.latencyUs.p50.toFixed(1)} µs p99 ${m.latencyUs.p99.toFixed(1)} µs`)
  if (m.proxyCpuSeconds !== undefined) parts.push(`proxy ${m.proxyCpuSeconds.toFixed(2)} CPU s`)
  if (m.cpuPerUnit !== undefined) parts.push(`${m.cpuPerUnit.toFixed(3)} ${w.cpuUnit}`)
  if (m.errors) parts.push(`${m.errors} errors`)
  if (m.machineBusy !== undefined) {
    parts.push(
      `machine ${(m.machineBusy * 100).toFixed(0)} % busy (others ${((m.foreignShare ?? 0) * 100).toFixed(0)} %)`
    )
  }
  return parts.join(", ")
}
