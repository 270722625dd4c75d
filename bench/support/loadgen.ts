// One measured run of the C load generator (bench/native/loadgen.c) against a variant: the proxy's and the backend's
// CPU are read when it prints "measuring" and "result", so the window is exactly the one it counted operations in.
import { relative } from "node:path"
import { spawnLines } from "./children.ts"
import { cpuFields, type LatencyUs, type Measurement, sampleCpu, type Workload, windowCpu } from "./interleave.ts"
import { benchBinaries } from "./native.ts"
import { repoRoot } from "./polyproxy.ts"
import type { Variant } from "./variant.ts"

interface LoadgenResult {
  readonly rate: number
  readonly ops: number
  readonly bytes: number
  readonly seconds: number
  readonly errors: number
  readonly errorCodes: Record<string, number>
  readonly loadgenCpuSeconds: number
  readonly latencyUs?: LatencyUs
  /** tls --resume 1: connections of the window the origin resumed. */
  readonly resumed?: number
}

export type RunFields = Omit<Measurement, "workload" | "variant" | "round" | "position">

/** `loadgen args` (with --duration and --warmup among them) against `variant`; throws when it gave no result. */
export const runLoadgen = async (o: {
  readonly workload: Workload
  readonly variant: Variant
  /** Pids whose CPU is the backend's or origin's (their trees). */
  readonly backendPid: number | undefined
  readonly args: readonly string[]
  readonly seconds: number
}): Promise<RunFields> => {
  if (!o.variant.alive()) throw new Error(`${o.variant.name} is not running any more`)
  const bin = benchBinaries().loadgen
  let before: ReturnType<typeof sampleCpu> | undefined
  let after: ReturnType<typeof sampleCpu> | undefined
  let result: LoadgenResult | undefined
  const lg = spawnLines(bin, o.args, (line) => {
    const msg = JSON.parse(line) as { event: string } & LoadgenResult
    if (msg.event === "measuring") before = sampleCpu(o.variant.pids, o.backendPid)
    else if (msg.event === "result") {
      after = sampleCpu(o.variant.pids, o.backendPid)
      result = msg
    }
  })
  // It stops itself 15 s past its planned end; this is the bound if even that fails.
  const timer = setTimeout(() => lg.child.kill("SIGKILL"), (o.seconds + 20) * 1000)
  const code = await lg.exited
  clearTimeout(timer)
  if (result === undefined || before === undefined || after === undefined) {
    throw new Error(`loadgen exited with ${code} without a result: ${lg.stderr() || "(no output)"}`)
  }
  const byBytes = o.workload.cpuPer >= 1e6
  const amount = byBytes ? result.bytes : result.ops
  if (amount === 0) {
    throw new Error(`no ${byBytes ? "bytes" : "ops"} completed (errors: ${JSON.stringify(result.errorCodes)})`)
  }
  // A resumption run where handshakes fell back to full ones measures another workload: not a result.
  if (o.args.includes("--resume") && (result.resumed ?? 0) < result.ops * 0.99) {
    throw new Error(`only ${result.resumed ?? 0} of ${result.ops} TLS connections were resumed`)
  }
  return {
    command: `${relative(repoRoot, bin)} ${o.args.join(" ")}`,
    rate: result.rate,
    ops: result.ops,
    bytes: result.bytes,
    seconds: result.seconds,
    errors: result.errors,
    ...(result.latencyUs ? { latencyUs: result.latencyUs } : {}),
    loadgenCpuSeconds: result.loadgenCpuSeconds,
    ...cpuFields(windowCpu(before, after), o.workload.cpuPer, amount)
  }
}
