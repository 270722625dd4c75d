// The one runner behind `make bench`: every scenario with its baselines interleaved in the same run, then
// bench/results/<date>.json, latest.json, latest.md (tables) and latest.svg (chart of the ratios).
//
//   node bench/run.ts [--only tcp,mysql,pg,http,smtp] [--rounds 3] [--duration 4] [--warmup 1]
//                     [--mysql-duration 3] [--mysql-clients 1,10,50] [--pg-args="--listener postgres"]
//                     [--smtp-duration 3] [--smtp-connections 1,10]
//                     [--http-args="..."] [--tcp-variants direct,polyproxy-1,...] [--tcp-workloads conn,echo,...]
//                     [--proxy dist|src]
//                     [--out bench/results] [--cpu-prof DIR]
//   node bench/run.ts --smoke        ≤ 30 s: tcp only, direct and polyproxy 1 worker, 1 round of 1.5 s; exit 1
//                                    unless every workload of every variant produced numbers
//
// See bench/README.md for what is measured and how to read the ratios and CPU figures.
import { spawn } from "node:child_process"
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs"
import { join, relative, resolve } from "node:path"
import { parseArgs } from "node:util"
import { makeTempDir, removeTempDir } from "../spec/support/backends/local.ts"
import { MYSQL_VARIANTS, type MysqlVariantName, plannedMysqlSeconds, runMysqlScenario } from "./mysql/scenario.ts"
import { plannedSmtpSeconds, runSmtpScenario, SMTP_VARIANTS, type SmtpVariantName } from "./smtp/scenario.ts"
import type { Measurement, ScenarioResult, Workload } from "./support/interleave.ts"
import { defaultEntry, type ProxyEntry, repoRoot, staleDistWarning } from "./support/polyproxy.ts"
import { installExitHooks, killEverything, machineInfo, onExit, runBounded } from "./support/process.ts"
import {
  type ChartGroup,
  type ChartPanel,
  ratioText,
  renderScenario,
  renderSvg,
  type Spread,
  summarize
} from "./support/report.ts"
import { plannedTcpSeconds, runTcpScenario, TCP_VARIANTS, TCP_WORKLOADS, type TcpVariantName } from "./tcp/scenario.ts"

const SCENARIOS = ["tcp", "mysql", "pg", "http", "smtp"] as const
type ScenarioName = (typeof SCENARIOS)[number]

interface Options {
  readonly only: readonly ScenarioName[]
  readonly smoke: boolean
  readonly rounds: number
  readonly duration: number
  readonly warmup: number
  readonly tcpVariants: readonly TcpVariantName[]
  readonly tcpWorkloads: readonly string[]
  readonly mysqlDuration: number
  readonly mysqlClients: readonly number[]
  readonly smtpDuration: number
  readonly smtpConnections: readonly number[]
  readonly pgArgs: readonly string[]
  readonly httpArgs: readonly string[]
  readonly proxy: ProxyEntry
  readonly outDir: string
  readonly cpuProfDir: string | undefined
}

const usage = `usage: node bench/run.ts [--only tcp,mysql,pg,http,smtp] [--rounds N] [--duration S] [--warmup S]
                         [--mysql-duration S] [--mysql-clients 1,10,50] [--pg-args="ARGS"] [--http-args="ARGS"]
                         [--smtp-duration S] [--smtp-connections 1,10]
                         [--tcp-variants ${TCP_VARIANTS.join(",")}]
                         [--tcp-workloads ${TCP_WORKLOADS.map((w) => w.id).join(",")}] [--proxy dist|src] [--out DIR]
                         [--cpu-prof DIR] [--smoke]`

const die = (message: string): never => {
  process.stderr.write(`bench: ${message}\n${usage}\n`)
  process.exit(2)
}

const list = (s: string) =>
  s
    .split(",")
    .map((x) => x.trim())
    .filter((x) => x !== "")

const positive = (name: string, value: string, integer = false): number => {
  const n = Number(value)
  return Number.isFinite(n) && n > 0 && (!integer || Number.isInteger(n))
    ? n
    : die(`--${name} must be a positive ${integer ? "integer" : "number"}, not ${value}`)
}

const parseOptions = (argv: readonly string[]): Options => {
  let values: Record<string, string | boolean | undefined>
  try {
    values = parseArgs({
      args: [...argv],
      options: {
        only: { type: "string", default: SCENARIOS.join(",") },
        smoke: { type: "boolean", default: false },
        rounds: { type: "string", default: "3" },
        duration: { type: "string", default: "4" },
        warmup: { type: "string", default: "1" },
        "tcp-variants": { type: "string", default: TCP_VARIANTS.join(",") },
        "tcp-workloads": { type: "string", default: TCP_WORKLOADS.map((w) => w.id).join(",") },
        "mysql-duration": { type: "string", default: "3" },
        "mysql-clients": { type: "string", default: "1,10,50" },
        "smtp-duration": { type: "string", default: "3" },
        "smtp-connections": { type: "string", default: "1,10" },
        "pg-args": { type: "string", default: "--listener postgres" },
        "http-args": { type: "string", default: "" },
        proxy: { type: "string", default: defaultEntry() },
        out: { type: "string" },
        "cpu-prof": { type: "string" },
        help: { type: "boolean", short: "h" }
      },
      strict: true,
      allowPositionals: false
    }).values
  } catch (error) {
    return die((error as Error).message)
  }
  if (values.help) {
    process.stdout.write(`${usage}\n`)
    process.exit(0)
  }
  const proxy = String(values.proxy)
  if (proxy !== "dist" && proxy !== "src") die(`--proxy must be dist or src, not ${proxy}`)
  const only = list(String(values.only))
  for (const s of only) if (!SCENARIOS.includes(s as ScenarioName)) die(`unknown scenario ${s}`)
  const tcpVariants = list(String(values["tcp-variants"]))
  for (const v of tcpVariants) if (!TCP_VARIANTS.includes(v as TcpVariantName)) die(`unknown tcp variant ${v}`)
  const tcpWorkloads = list(String(values["tcp-workloads"]))
  for (const w of tcpWorkloads) if (!TCP_WORKLOADS.some((x) => x.id === w)) die(`unknown tcp workload ${w}`)
  const smoke = values.smoke === true
  const split = (s: string) => s.split(/\s+/).filter((x) => x !== "")
  return {
    only: smoke ? ["tcp"] : (only as ScenarioName[]),
    smoke,
    rounds: smoke ? 1 : positive("rounds", String(values.rounds), true),
    duration: smoke ? 1.5 : positive("duration", String(values.duration)),
    warmup: smoke ? 0.3 : Number(values.warmup) >= 0 ? Number(values.warmup) : die("--warmup must be >= 0"),
    tcpVariants: smoke ? ["direct", "polyproxy-1"] : (tcpVariants as TcpVariantName[]),
    tcpWorkloads: smoke ? TCP_WORKLOADS.map((w) => w.id) : tcpWorkloads,
    mysqlDuration: positive("mysql-duration", String(values["mysql-duration"])),
    mysqlClients: list(String(values["mysql-clients"])).map((c) => positive("mysql-clients", c, true)),
    smtpDuration: positive("smtp-duration", String(values["smtp-duration"])),
    smtpConnections: list(String(values["smtp-connections"])).map((c) => positive("smtp-connections", c, true)),
    pgArgs: split(String(values["pg-args"])),
    httpArgs: split(String(values["http-args"])),
    proxy: proxy as ProxyEntry,
    // The smoke never overwrites the committed results: it writes under the git-ignored .tmp/.
    outDir: resolve(
      values.out === undefined
        ? smoke
          ? join(repoRoot, ".tmp", "bench-smoke")
          : join(repoRoot, "bench", "results")
        : String(values.out)
    ),
    cpuProfDir: values["cpu-prof"] === undefined ? undefined : resolve(String(values["cpu-prof"]))
  }
}

// ---------------------------------------------------------------------------------------------------------------
// pg and http: the colleagues' benches, run as children

/** pgbench.ts's planned time from its options (its defaults when absent), for the runner's own deadline. */
const plannedPgSeconds = (args: readonly string[]): number => {
  const opt = (name: string, fallback: string) => {
    const i = args.indexOf(`--${name}`)
    return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback
  }
  const clients = list(opt("clients", "1,10,50")).length
  return 2 * clients * 3 * (Number(opt("warmup", "2")) + Number(opt("duration", "15")) + 1) + 60
}

/**
 * Runs `node bench/<script> args` with its output passed through to our stderr. On our exit it gets SIGTERM (not
 * SIGKILL), so its own exit hooks stop the servers it started.
 */
const runChildBench = (
  script: string,
  args: readonly string[],
  timeoutMs: number,
  log: (line: string) => void
): Promise<number | null> =>
  new Promise((resolveExit) => {
    const child = spawn(process.execPath, [join(repoRoot, "bench", script), ...args], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"]
    })
    const killer = () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM")
    }
    onExit(killer)
    const prefix = (chunk: Buffer) => {
      for (const line of chunk.toString("utf8").trimEnd().split("\n")) log(`  ${script}: ${line}`)
    }
    child.stdout.on("data", () => {}) // its stdout is the table it also writes to a file
    child.stderr.on("data", prefix)
    const timer = setTimeout(() => {
      log(`${script} still running after ${Math.round(timeoutMs / 1000)} s: stopping it`)
      killer()
      setTimeout(() => child.kill("SIGKILL"), 10_000).unref()
    }, timeoutMs)
    child.once("error", (error) => {
      clearTimeout(timer)
      log(`${script} could not be started: ${error.message}`)
      resolveExit(null)
    })
    child.once("exit", (code) => {
      clearTimeout(timer)
      resolveExit(code)
    })
  })

interface PgbenchRun {
  readonly workload: string
  readonly clients: number
  readonly variant: string
  readonly position: number
  readonly command: string
  readonly tps?: number
  readonly transactions?: number
  readonly middlemanCpuPer1kTx?: number
  readonly proxyCpuSeconds?: number
  readonly pgbouncerCpuSeconds?: number
  readonly machineBusy?: number
  readonly foreignCpuSeconds?: number
  readonly foreignShare?: number
  readonly wallSeconds?: number
  readonly error?: string
}

/** pgbench.json in the runner's format: one round per cell (pgbench.ts rotates the order from cell to cell). */
const pgScenario = (pgbench: { meta: Record<string, unknown>; runs: PgbenchRun[] }): ScenarioResult => {
  const clients = [...new Set(pgbench.runs.map((r) => r.clients))].sort((a, b) => a - b)
  const kinds = [...new Set(pgbench.runs.map((r) => r.workload))]
  const workloads: Workload[] = kinds.flatMap((w) =>
    clients.map((c) => ({
      id: `${w}-c${c}`,
      label: `pgbench ${w}, ${c} client${c > 1 ? "s" : ""}`,
      kind: "rate" as const,
      unit: "TPS",
      displayDivisor: 1,
      cpuPer: 1000,
      cpuUnit: "CPU s / 1k tx"
    }))
  )
  const measurements: Measurement[] = pgbench.runs.map((r) => ({
    workload: `${r.workload}-c${r.clients}`,
    variant: r.variant,
    round: 1,
    position: r.position,
    command: r.command,
    ...(r.tps !== undefined ? { rate: r.tps } : {}),
    ...(r.transactions !== undefined ? { ops: r.transactions } : {}),
    ...(r.wallSeconds !== undefined ? { seconds: r.wallSeconds } : {}),
    ...(r.middlemanCpuPer1kTx !== undefined ? { cpuPerUnit: r.middlemanCpuPer1kTx } : {}),
    ...(r.machineBusy !== undefined ? { machineBusy: r.machineBusy } : {}),
    ...(r.foreignCpuSeconds !== undefined ? { foreignCpuSeconds: r.foreignCpuSeconds } : {}),
    ...(r.foreignShare !== undefined ? { foreignShare: r.foreignShare } : {}),
    ...(r.error !== undefined ? { error: r.error } : {})
  }))
  const meta = pgbench.meta
  return {
    scenario: "pg",
    title: `pg: pgbench direct vs polyproxy \`${String(meta.listener)}\` listener vs PgBouncer (session mode)`,
    workloads,
    variants: [
      { name: "direct", label: "direct", description: String(meta.postgres) },
      {
        name: "polyproxy",
        label: "polyproxy",
        description: `\`${String(meta.listener)}\` listener, ${String(meta.proxyEntry)}, one process`
      },
      { name: "pgbouncer", label: "PgBouncer", description: `${String(meta.pgbouncer)}, session mode` }
    ],
    reference: "direct",
    compareTo: "pgbouncer",
    measurements,
    setup: meta,
    notes: [
      `From bench/pg/pgbench.ts (its own table: pgbench.md beside this file): one ${String(meta.durationSeconds)} s run ` +
        `per cell after a ${String(meta.warmupSeconds)} s warm-up, the three variants' order rotated from cell to ` +
        "cell; no min–max (one run each)."
    ]
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Targets (issue 11, issue 4, issue 6)

interface Target {
  readonly name: string
  readonly ratio: Spread | undefined
  readonly target: number
  readonly detail: string
}

const findSummary = (r: ScenarioResult | undefined, workload: string, variant: string) =>
  r === undefined
    ? undefined
    : summarize(r)
        .find((s) => s.workload.id === workload)
        ?.variants.find((v) => v.variant === variant)

const cpuOf = (r: ScenarioResult | undefined, workload: string, variant: string) => {
  const s = findSummary(r, workload, variant)
  const w = r?.workloads.find((x) => x.id === workload)
  return s?.cpuPerUnit === undefined || w === undefined ? "–" : `${s.cpuPerUnit.median.toFixed(3)} ${w.cpuUnit}`
}

const targets = (
  tcp: ScenarioResult | undefined,
  mysql: ScenarioResult | undefined,
  pg: ScenarioResult | undefined,
  smtp: ScenarioResult | undefined
): Target[] => {
  const out: Target[] = []
  if (tcp?.compareTo === "haproxy") {
    for (const [id, name, target] of [
      ["conn", "tcp new connections/s: polyproxy 1 worker ÷ HAProxy 1 thread", 0.8],
      ["echo", "tcp 1 KB echo ops/s: polyproxy 1 worker ÷ HAProxy 1 thread", 0.8],
      ["bulk", "tcp bulk MB/s: polyproxy 1 worker ÷ HAProxy 1 thread", 1.0]
    ] as const) {
      const s = findSummary(tcp, id, "polyproxy-1")
      if (s === undefined) continue
      out.push({
        name,
        ratio: s.vsCompare,
        target,
        detail: `CPU: polyproxy ${cpuOf(tcp, id, "polyproxy-1")}, HAProxy ${cpuOf(tcp, id, "haproxy")}`
      })
    }
  }
  for (const kind of ["select1", "point"]) {
    const s = findSummary(mysql, `${kind}-c10`, "polyproxy")
    if (s === undefined) continue
    out.push({
      name: `mysql ${kind === "select1" ? "SELECT 1" : "point select"} at 10 clients: polyproxy ÷ direct`,
      ratio: s.vsReference,
      target: 0.9,
      detail:
        `HAProxy ÷ direct ${ratioText(findSummary(mysql, `${kind}-c10`, "haproxy")?.vsReference)}; ` +
        `CPU: polyproxy ${cpuOf(mysql, `${kind}-c10`, "polyproxy")}, HAProxy ${cpuOf(mysql, `${kind}-c10`, "haproxy")}`
    })
  }
  for (const kind of ["select-only", "tpcb-like"]) {
    const s = findSummary(pg, `${kind}-c10`, "polyproxy")
    if (s === undefined) continue
    out.push({
      name: `pg ${kind} at 10 clients: polyproxy ÷ direct`,
      ratio: s.vsReference,
      target: 0.9,
      detail:
        `PgBouncer ÷ direct ${ratioText(findSummary(pg, `${kind}-c10`, "pgbouncer")?.vsReference)}; ` +
        `CPU: polyproxy ${cpuOf(pg, `${kind}-c10`, "polyproxy")}, PgBouncer ${cpuOf(pg, `${kind}-c10`, "pgbouncer")}`
    })
  }
  for (const size of ["1k", "64k"]) {
    const s = findSummary(smtp, `${size}-c10`, "polyproxy")
    if (s === undefined) continue
    out.push({
      name: `smtp ${size === "1k" ? "1 KB" : "64 KB"} messages/s at 10 connections: polyproxy ÷ direct`,
      ratio: s.vsReference,
      target: 0.9,
      detail:
        `HAProxy ÷ direct ${ratioText(findSummary(smtp, `${size}-c10`, "haproxy")?.vsReference)}; ` +
        `CPU: polyproxy ${cpuOf(smtp, `${size}-c10`, "polyproxy")}, HAProxy ${cpuOf(smtp, `${size}-c10`, "haproxy")}`
    })
  }
  return out
}

// ---------------------------------------------------------------------------------------------------------------
// Chart

const chartPanels = (
  tcp: ScenarioResult | undefined,
  mysql: ScenarioResult | undefined,
  pg: ScenarioResult | undefined,
  smtp: ScenarioResult | undefined
): ChartPanel[] => {
  const panels: ChartPanel[] = []
  const labelOf = (r: ScenarioResult, name: string) => r.variants.find((v) => v.name === name)?.label ?? name
  const groups = (
    r: ScenarioResult,
    against: "reference" | "compare",
    targetOf: (w: Workload) => number | undefined
  ): ChartGroup[] =>
    summarize(r)
      .filter((s) => s.workload.kind === "rate")
      .map((s) => ({
        title: s.workload.label,
        ...(targetOf(s.workload) !== undefined ? { target: targetOf(s.workload)! } : {}),
        bars: s.variants
          .filter((v) => v.variant !== (against === "reference" ? r.reference : r.compareTo))
          .map((v) => ({
            label: labelOf(r, v.variant),
            ratio: against === "reference" ? v.vsReference : v.vsCompare
          }))
      }))
  if (tcp !== undefined) {
    const vsHaproxy = tcp.compareTo === "haproxy"
    panels.push({
      title: vsHaproxy ? "TCP: rate ÷ HAProxy (1 thread)" : "TCP: rate ÷ direct",
      groups: groups(tcp, vsHaproxy ? "compare" : "reference", (w) =>
        vsHaproxy ? ({ conn: 0.8, echo: 0.8, bulk: 1.0 } as Record<string, number>)[w.id] : undefined
      )
    })
  }
  if (mysql !== undefined) {
    panels.push({
      title: "MySQL: queries/s ÷ direct",
      groups: groups(mysql, "reference", (w) => (w.id.endsWith("-c10") ? 0.9 : undefined))
    })
  }
  if (pg !== undefined) {
    panels.push({
      title: "PostgreSQL: TPS ÷ direct",
      groups: groups(pg, "reference", (w) => (w.id.endsWith("-c10") ? 0.9 : undefined))
    })
  }
  if (smtp !== undefined) {
    panels.push({
      title: "SMTP: messages/s ÷ direct",
      groups: groups(smtp, "reference", (w) => (w.id.endsWith("-c10") ? 0.9 : undefined))
    })
  }
  return panels
}

// ---------------------------------------------------------------------------------------------------------------
// Output

const writeAtomically = (file: string, content: string): void => {
  // bench/results/*.tmp is git-ignored.
  writeFileSync(`${file}.tmp`, content)
  renameSync(`${file}.tmp`, file)
}

/** Results under bench/ are inside `biome check .`: give them the project's formatting, as bench/pg does. */
const formatResults = async (files: readonly string[], log: (line: string) => void): Promise<void> => {
  const biome = join(repoRoot, "node_modules", ".bin", "biome")
  if (!existsSync(biome) || files.some((f) => !resolve(f).startsWith(join(repoRoot, "bench")))) return
  const r = await runBounded(biome, ["format", "--write", ...files], { env: process.env, timeoutMs: 60_000 })
  if (r.code !== 0) log(`warning: biome format of the results failed:\n${r.stdout}${r.stderr}`)
}

interface Summary {
  readonly meta: Record<string, unknown>
  readonly scenarios: Record<string, ScenarioResult>
  /** Per scenario and workload: median, min–max, paired ratios, CPU per op of every variant. */
  readonly summaries: Record<string, ReturnType<typeof summarize>>
  readonly skipped: Record<string, string>
  readonly targets: readonly Target[]
  readonly extra: Record<string, unknown>
}

const renderMarkdown = (summary: Summary, commandLine: string): string => {
  const m = summary.meta.machine as ReturnType<typeof machineInfo>
  const lines: string[] = [
    "# polyproxy benchmarks",
    "",
    `Generated by \`${commandLine}\` on ${m.date} (whole run ${Math.round(Number(summary.meta.totalSeconds))} s). ` +
      "Overwritten by every run; the dated JSON beside it keeps every figure. See bench/README.md for how to read it.",
    "",
    `Machine: ${m.nproc} cores (nproc), ${m.cpuModel}, Linux ${m.kernel}, Node ${m.node}. **Shared and noisy**: ` +
      "the load generator, the backend and the proxy share these cores, so a ratio mostly says how much CPU the " +
      "proxy takes from the other two. Read every ratio with the proxy's CPU per operation beside it, and with the " +
      "noise line under each table (CPU used by processes outside the bench during each run).",
    ""
  ]
  if (summary.targets.length > 0) {
    lines.push("## Targets", "", "| target | measured (median, min–max over rounds) | goal | verdict | beside it |")
    lines.push("|---|--:|--:|---|---|")
    for (const t of summary.targets) {
      const met = t.ratio === undefined ? "–" : t.ratio.median >= t.target ? "meets" : "misses"
      lines.push(`| ${t.name} | ${ratioText(t.ratio)} | ≥ ${t.target}× | ${met} | ${t.detail} |`)
    }
    lines.push("")
  }
  for (const r of Object.values(summary.scenarios)) lines.push(...renderScenario(r))
  for (const [name, why] of Object.entries(summary.skipped)) lines.push(`## ${name}`, "", `Skipped: ${why}`, "")
  return lines.join("\n")
}

// ---------------------------------------------------------------------------------------------------------------
// Main

const main = async (): Promise<number> => {
  const opts = parseOptions(process.argv.slice(2))
  installExitHooks()
  const started = Date.now()
  const machine = machineInfo()
  const log = (line: string): void => {
    process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}\n`)
  }
  const want = (s: ScenarioName) => opts.only.includes(s)
  const httpScript = join(repoRoot, "bench", "http", "run.ts")
  const tcpPlan = want("tcp")
    ? plannedTcpSeconds({ ...opts, variants: opts.tcpVariants, workloads: opts.tcpWorkloads })
    : 0
  const mysqlPlan = want("mysql")
    ? plannedMysqlSeconds({
        rounds: opts.rounds,
        duration: opts.mysqlDuration,
        clients: opts.mysqlClients,
        variants: MYSQL_VARIANTS
      })
    : 0
  const pgPlan = want("pg") ? plannedPgSeconds(opts.pgArgs) : 0
  const smtpPlan = want("smtp")
    ? plannedSmtpSeconds({
        rounds: opts.rounds,
        duration: opts.smtpDuration,
        warmup: opts.warmup,
        connections: opts.smtpConnections,
        variants: SMTP_VARIANTS
      })
    : 0
  const httpLimit = 30 * 60
  const plannedSeconds =
    tcpPlan + mysqlPlan + pgPlan + smtpPlan + (want("http") && existsSync(httpScript) ? 600 : 0) + 10
  // A hard bound on the whole run: whatever hangs, every child dies and the process exits. The smoke's is its budget.
  const hardLimitSeconds = opts.smoke ? 45 : Math.round(plannedSeconds * 1.5 + 300)
  const hardLimit = setTimeout(() => {
    process.stderr.write(`bench: still running after ${hardLimitSeconds} s, giving up\n`)
    killEverything()
    process.exit(1)
  }, hardLimitSeconds * 1000)
  hardLimit.unref()
  log(
    `bench: ${opts.only.join(", ")}${opts.smoke ? " (smoke)" : ""}; planned about ` +
      `${Math.round(plannedSeconds)} s, hard limit ${hardLimitSeconds} s; results to ${relative(repoRoot, opts.outDir) || "."}`
  )
  if (opts.proxy === "dist") {
    const warning = staleDistWarning()
    if (warning) log(`warning: ${warning}`)
  }

  const dir = makeTempDir("bench-run")
  const scenarios: Record<string, ScenarioResult> = {}
  const skipped: Record<string, string> = {}
  const extra: Record<string, unknown> = {}
  let failed = false
  try {
    if (want("tcp")) {
      try {
        scenarios.tcp = await runTcpScenario({
          entry: opts.proxy,
          dir: join(dir, "tcp"),
          rounds: opts.rounds,
          duration: opts.duration,
          warmup: opts.warmup,
          variants: opts.tcpVariants,
          workloads: opts.tcpWorkloads,
          cpuProfDir: opts.cpuProfDir,
          lifetimeSeconds: hardLimitSeconds + 60,
          log
        })
      } catch (error) {
        failed = true
        skipped.tcp = `failed: ${(error as Error).message}`
        log(`tcp scenario failed: ${(error as Error).message}`)
      }
    }
    if (want("mysql")) {
      try {
        mkdirSync(join(dir, "mysql"), { recursive: true })
        scenarios.mysql = await runMysqlScenario({
          entry: opts.proxy,
          dir: join(dir, "mysql"),
          rounds: opts.rounds,
          duration: opts.mysqlDuration,
          clients: opts.mysqlClients,
          variants: MYSQL_VARIANTS as readonly MysqlVariantName[],
          cpuProfDir: opts.cpuProfDir,
          log
        })
      } catch (error) {
        failed = true
        skipped.mysql = `failed: ${(error as Error).message}`
        log(`mysql scenario failed: ${(error as Error).message}`)
      }
    }
    if (want("smtp")) {
      try {
        mkdirSync(join(dir, "smtp"), { recursive: true })
        scenarios.smtp = await runSmtpScenario({
          entry: opts.proxy,
          dir: join(dir, "smtp"),
          rounds: opts.rounds,
          duration: opts.smtpDuration,
          warmup: opts.warmup,
          connections: opts.smtpConnections,
          variants: SMTP_VARIANTS as readonly SmtpVariantName[],
          cpuProfDir: opts.cpuProfDir,
          lifetimeSeconds: hardLimitSeconds + 60,
          log
        })
      } catch (error) {
        failed = true
        skipped.smtp = `failed: ${(error as Error).message}`
        log(`smtp scenario failed: ${(error as Error).message}`)
      }
    }
    if (want("pg")) {
      const args = [...opts.pgArgs]
      if (!args.includes("--proxy")) args.push("--proxy", opts.proxy)
      if (!args.includes("--out")) args.push("--out", opts.outDir)
      const outIndex = args.indexOf("--out")
      const pgOut = resolve(args[outIndex + 1] ?? opts.outDir)
      log(`pg: node bench/pg/pgbench.ts ${args.join(" ")}`)
      const t0 = Date.now()
      const code = await runChildBench("pg/pgbench.ts", args, (pgPlan * 1.5 + 300) * 1000, log)
      const file = join(pgOut, "pgbench.json")
      if (existsSync(file) && statSync(file).mtimeMs >= t0) {
        const pgbench = JSON.parse(readFileSync(file, "utf8")) as { meta: Record<string, unknown>; runs: PgbenchRun[] }
        scenarios.pg = pgScenario(pgbench)
        extra.pgbench = { command: `node bench/pg/pgbench.ts ${args.join(" ")}`, exitCode: code, ...pgbench }
      } else {
        skipped.pg = `bench/pg/pgbench.ts exited with ${code} and wrote no results`
      }
      if (code !== 0) failed = true
    }
    if (want("http")) {
      if (!existsSync(httpScript)) {
        skipped.http = "bench/http/run.ts does not exist yet (the HTTP bench is being written by someone else)."
        log(`http: ${skipped.http}`)
      } else {
        const args = [...opts.httpArgs]
        if (!args.includes("--proxy")) args.push("--proxy", opts.proxy)
        if (!args.includes("--out")) args.push("--out", opts.outDir)
        const httpOut = resolve(args[args.indexOf("--out") + 1] ?? opts.outDir)
        const t0 = Date.now()
        log(`http: node bench/http/run.ts ${args.join(" ")}`)
        const code = await runChildBench("http/run.ts", args, httpLimit * 1000, log)
        // Its results: bench/results/http.{json,md} (or under its --out), if this run wrote them.
        const fresh = (f: string) => existsSync(f) && statSync(f).mtimeMs >= t0
        const json = join(httpOut, "http.json")
        const md = join(httpOut, "http.md")
        extra.http = {
          command: `node bench/http/run.ts ${args.join(" ")}`,
          exitCode: code,
          files: [json, md].filter(fresh).map((f) => relative(repoRoot, f)),
          ...(fresh(json) ? { results: JSON.parse(readFileSync(json, "utf8")) as unknown } : {})
        }
        if (fresh(md)) extra.httpMarkdown = readFileSync(md, "utf8")
        if (code !== 0) failed = true
        if (!fresh(json) && !fresh(md)) skipped.http = `bench/http/run.ts exited with ${code} and wrote no results`
      }
    }

    const totalSeconds = (Date.now() - started) / 1000
    const summary: Summary = {
      meta: {
        machine,
        command: `node bench/run.ts ${process.argv
          .slice(2)
          .map((a) => (/\s/.test(a) ? `"${a}"` : a))
          .join(" ")}`.trim(),
        proxyEntry: opts.proxy === "dist" ? "node dist/cli.js" : "node src/cli.ts",
        options: { ...opts, outDir: relative(repoRoot, opts.outDir) },
        totalSeconds
      },
      scenarios,
      summaries: Object.fromEntries(Object.entries(scenarios).map(([k, r]) => [k, summarize(r)])),
      skipped,
      targets: targets(scenarios.tcp, scenarios.mysql, scenarios.pg, scenarios.smtp),
      extra
    }
    let md = renderMarkdown(summary, String(summary.meta.command))
    if (typeof extra.httpMarkdown === "string") {
      md += `\n## http (from bench/http/run.ts)\n\n${extra.httpMarkdown.replace(/^# .*\n/, "")}\n`
    }
    const svg = renderSvg(
      "polyproxy: throughput ratios",
      `${machine.date.slice(0, 16).replace("T", " ")} UTC · ${machine.nproc} shared cores · ${String(summary.meta.command)}`,
      chartPanels(scenarios.tcp, scenarios.mysql, scenarios.pg, scenarios.smtp)
    )
    mkdirSync(opts.outDir, { recursive: true })
    const stamp = `${machine.date.slice(0, 19).replaceAll(":", "-")}Z`
    const files = {
      dated: join(opts.outDir, `${stamp}.json`),
      json: join(opts.outDir, "latest.json"),
      md: join(opts.outDir, "latest.md"),
      svg: join(opts.outDir, "latest.svg")
    }
    const { httpMarkdown: _omit, ...extraForJson } = extra
    const json = `${JSON.stringify({ ...summary, extra: extraForJson }, null, 2)}\n`
    writeAtomically(files.dated, json)
    writeAtomically(files.json, json)
    writeAtomically(files.md, md)
    writeAtomically(files.svg, svg)
    await formatResults([files.dated, files.json, files.md], log)
    process.stdout.write(`${readFileSync(files.md, "utf8")}\n`)
    log(
      `wrote ${Object.values(files)
        .map((f) => relative(repoRoot, f))
        .join(", ")}`
    )

    const anyFailed = Object.values(scenarios).some((r) => r.measurements.some((m) => m.error !== undefined))
    if (opts.smoke) {
      const problems = smokeProblems(scenarios.tcp, opts.tcpVariants)
      for (const p of problems) log(`smoke: ${p}`)
      log(`smoke: ${problems.length === 0 ? "ok" : "FAILED"} in ${totalSeconds.toFixed(1)} s`)
      if (totalSeconds > 30) log("smoke: warning: took longer than its 30 s budget")
      return problems.length === 0 ? 0 : 1
    }
    return failed || anyFailed ? 1 : 0
  } finally {
    removeTempDir(dir)
    killEverything()
    clearTimeout(hardLimit)
  }
}

/** The smoke passes when every workload of every variant has a successful run with a rate (and CPU for proxies). */
const smokeProblems = (tcp: ScenarioResult | undefined, variants: readonly string[]): string[] => {
  if (tcp === undefined) return ["the tcp scenario produced nothing"]
  const problems: string[] = []
  for (const w of tcp.workloads) {
    for (const v of variants) {
      const runs = tcp.measurements.filter((m) => m.workload === w.id && m.variant === v)
      const good = runs.filter((m) => m.error === undefined && m.rate !== undefined && m.rate > 0)
      if (good.length === 0) {
        problems.push(`${w.id} ${v}: no numbers (${runs.find((m) => m.error)?.error?.split("\n")[0] ?? "no run"})`)
        continue
      }
      if (v !== "direct" && good.some((m) => m.proxyCpuSeconds === undefined || m.cpuPerUnit === undefined)) {
        problems.push(`${w.id} ${v}: no CPU reading of the proxy process`)
      }
      if (w.kind === "latency" && good.some((m) => m.latencyUs === undefined || !(m.latencyUs.p50 > 0))) {
        problems.push(`${w.id} ${v}: no latency percentiles`)
      }
    }
  }
  if (tcp.workloads.length === 0) problems.push("no workload ran")
  return problems
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? error.message : String(error)}\n`)
    killEverything()
    process.exit(1)
  }
)
