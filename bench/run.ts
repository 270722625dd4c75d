// The one runner behind `make bench`: every scenario with its baselines interleaved in the same run, C generators and
// origins, the headroom check and the noise rule in every round, then bench/results/<date>.json, latest.json,
// latest.md (tables, targets, the README's Performance table) and latest.svg (chart of the ratios).
//
//   node bench/run.ts [--only tcp,sni,http,mysql,pg,smtp] [--rounds 3] [--duration 4] [--warmup 1] [--dev] …
//   node bench/run.ts --smoke        ≤ 45 s: tcp, sni, http and smtp, direct and polyproxy (and the Node relay) for one
//                                    short round each; exit 1 unless every variant gave numbers
//
// `--help` lists every option; bench/README.md says what is measured and how to read it.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs"
import { join, relative, resolve } from "node:path"
import { parseArgs } from "node:util"
import { makeTempDir, removeTempDir } from "../spec/support/backends/local.ts"
import {
  HTTP_DEFAULT_VARIANTS,
  HTTP_VARIANTS,
  type HttpVariantName,
  plannedHttpSeconds,
  runHttpScenario
} from "./http/scenario.ts"
import { POOLED_CLIENTS as MYSQL_POOLED_CLIENTS } from "./mysql/pooled.ts"
import { MYSQL_VARIANTS, type MysqlVariantName, plannedMysqlSeconds, runMysqlScenario } from "./mysql/scenario.ts"
import { PG_OPT_IN_VARIANTS } from "./pg/pooled.ts"
import { PG_VARIANTS, type PgVariantName, plannedPgSeconds, runPgScenario } from "./pg/scenario.ts"
import {
  plannedSmtpSeconds,
  runSmtpScenario,
  SMTP_VARIANTS,
  type SmtpVariantName,
  smtpWorkloads
} from "./smtp/scenario.ts"
import { plannedSniSeconds, runSniScenario, SNI_VARIANTS, type SniVariantName } from "./sni/scenario.ts"
import { renderSvg } from "./support/chart.ts"
import { comparedEntry, resolveCommit } from "./support/compare.ts"
import { NOISE_LIMIT, type NoisePolicy, type ScenarioResult } from "./support/interleave.ts"
import { benchBinaries } from "./support/native.ts"
import {
  defaultEntry,
  entryCommand,
  type ProxyEntry,
  type ProxyForm,
  repoRoot,
  staleDistWarning,
  workingTree
} from "./support/polyproxy.ts"
import { installExitHooks, killEverything, machineInfo } from "./support/process.ts"
import { keptRuns, renderScenario, scenarioChecks, summarize } from "./support/report.ts"
import { chartPanels, readmeTable, renderTargets, targets } from "./support/targets.ts"
import { plannedTcpSeconds, runTcpScenario, TCP_VARIANTS, TCP_WORKLOADS, type TcpVariantName } from "./tcp/scenario.ts"

const SCENARIOS = ["tcp", "sni", "http", "mysql", "pg", "smtp"] as const
type ScenarioName = (typeof SCENARIOS)[number]
const DEFAULT_SCENARIOS: readonly ScenarioName[] = ["tcp", "sni", "http", "mysql", "pg", "smtp"]

const OPTIONS = {
  only: { type: "string", default: DEFAULT_SCENARIOS.join(",") },
  rounds: { type: "string", default: "3" },
  duration: { type: "string", default: "4" },
  warmup: { type: "string", default: "1" },
  "noise-retries": { type: "string", default: "3" },
  dev: { type: "boolean", default: false },
  smoke: { type: "boolean", default: false },
  "tcp-variants": { type: "string", default: TCP_VARIANTS.join(",") },
  "tcp-workloads": { type: "string", default: TCP_WORKLOADS.map((w) => w.id).join(",") },
  "sni-variants": { type: "string", default: SNI_VARIANTS.join(",") },
  "http-variants": { type: "string", default: HTTP_DEFAULT_VARIANTS.join(",") },
  "http-connections": { type: "string", default: "50" },
  "mysql-duration": { type: "string", default: "3" },
  "mysql-clients": { type: "string", default: "1,10,50" },
  "mysql-pool-size": { type: "string", default: "10" },
  "mysql-pooled-clients": { type: "string", default: String(MYSQL_POOLED_CLIENTS) },
  "mysql-variants": { type: "string", default: MYSQL_VARIANTS.join(",") },
  "pg-duration": { type: "string", default: "4" },
  "pg-clients": { type: "string", default: "1,10,50" },
  "pg-scale": { type: "string", default: "10" },
  "pg-pool-size": { type: "string", default: "10" },
  "pg-variants": { type: "string", default: PG_VARIANTS.filter((v) => !PG_OPT_IN_VARIANTS.includes(v)).join(",") },
  "smtp-duration": { type: "string", default: "3" },
  "smtp-connections": { type: "string", default: "1,10" },
  "smtp-variants": { type: "string", default: SMTP_VARIANTS.join(",") },
  "smtp-workloads": { type: "string" },
  proxy: { type: "string", default: defaultEntry() },
  compare: { type: "string" },
  out: { type: "string" },
  "cpu-prof": { type: "string" },
  help: { type: "boolean", short: "h" }
} as const

const usage = `usage: node bench/run.ts [options]   (bench/README.md says what each one does)
${Object.entries(OPTIONS)
  .map(([k, o]) => `  --${k}${o.type === "string" ? ` ${"default" in o ? `(${o.default})` : "VALUE"}` : ""}`)
  .join("\n")}`

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

const names = <N extends string>(option: string, value: string, known: readonly N[]): N[] => {
  const out = list(value)
  for (const x of out) if (!known.includes(x as N)) die(`--${option}: unknown ${x} (known: ${known.join(", ")})`)
  return out as N[]
}

const parseOptions = (argv: readonly string[]) => {
  let v: Record<string, string | boolean | undefined>
  try {
    v = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: false }).values
  } catch (error) {
    return die((error as Error).message)
  }
  if (v.help) {
    process.stdout.write(`${usage}\n`)
    process.exit(0)
  }
  const str = (k: keyof typeof OPTIONS) => String(v[k])
  const proxy = str("proxy")
  if (proxy !== "dist" && proxy !== "src") die(`--proxy must be dist or src, not ${proxy}`)
  const smoke = v.smoke === true
  const compare = v.compare === undefined ? undefined : str("compare")
  const compareCommit = compare === undefined ? undefined : resolveCommit(compare)
  if (compare !== undefined && compareCommit === undefined)
    die(`--compare: ${compare} names no commit of this repository`)
  if (compare !== undefined && smoke)
    die("--compare does not go with --smoke (its 45 s would not hold twice the proxies)")
  const dev = v.dev === true
  // Development runs and the smoke keep noisy rounds, so they never write where published results live.
  const scratch = smoke || dev
  const outDir = resolve(
    v.out === undefined
      ? join(repoRoot, smoke ? ".tmp/bench-smoke" : dev ? ".tmp/bench-dev" : "bench/results")
      : str("out")
  )
  if (scratch && !outDir.startsWith(join(repoRoot, ".tmp"))) die("--dev and --smoke write only under .tmp/")
  const warmup = Number(str("warmup"))
  if (!(warmup >= 0)) die("--warmup must be >= 0")
  const pgClients = list(str("pg-clients")).map((c) => positive("pg-clients", c, true))
  // The bench's PostgreSQL (spec/support/backends/postgres.ts) allows 300 connections, 3 of them for superusers.
  if (Math.max(...pgClients) > 250) die("--pg-clients above 250 would come near PostgreSQL's max_connections (300)")
  const mysqlPooledClients = positive("mysql-pooled-clients", str("mysql-pooled-clients"), true)
  // The bench's MariaDB is given max_connections = 300 (bench/mysql/pooled.ts): direct holds one per client.
  if (mysqlPooledClients > 280) die("--mysql-pooled-clients above 280 would come near MariaDB's max_connections (300)")
  const smtpConnections = smoke ? [10] : list(str("smtp-connections")).map((c) => positive("smtp-connections", c, true))
  const noise: NoisePolicy = {
    limit: NOISE_LIMIT,
    retries: Number.isInteger(Number(str("noise-retries"))) ? Number(str("noise-retries")) : die("--noise-retries"),
    keep: scratch
  }
  return {
    only: smoke ? (["tcp", "sni", "http", "smtp"] as ScenarioName[]) : names("only", str("only"), SCENARIOS),
    smoke,
    dev,
    noise,
    rounds: smoke ? 1 : positive("rounds", str("rounds"), true),
    duration: smoke ? 1 : positive("duration", str("duration")),
    warmup: smoke ? 0.25 : warmup,
    tcpVariants: smoke
      ? (["direct", "polyproxy-1", "node-relay"] as TcpVariantName[])
      : names("tcp-variants", str("tcp-variants"), TCP_VARIANTS),
    tcpWorkloads: names(
      "tcp-workloads",
      str("tcp-workloads"),
      TCP_WORKLOADS.map((w) => w.id)
    ),
    sniVariants: smoke
      ? (["direct", "polyproxy"] as SniVariantName[])
      : names("sni-variants", str("sni-variants"), SNI_VARIANTS),
    httpVariants: smoke
      ? (["direct", "polyproxy"] as HttpVariantName[])
      : names("http-variants", str("http-variants"), HTTP_VARIANTS),
    httpConnections: positive("http-connections", str("http-connections"), true),
    mysqlDuration: positive("mysql-duration", str("mysql-duration")),
    mysqlClients: list(str("mysql-clients")).map((c) => positive("mysql-clients", c, true)),
    mysqlPoolSize: positive("mysql-pool-size", str("mysql-pool-size"), true),
    mysqlPooledClients,
    mysqlVariants: names("mysql-variants", str("mysql-variants"), MYSQL_VARIANTS),
    pgDuration: positive("pg-duration", str("pg-duration"), true),
    pgClients,
    pgScale: positive("pg-scale", str("pg-scale"), true),
    pgPoolSize: positive("pg-pool-size", str("pg-pool-size"), true),
    pgVariants: names("pg-variants", str("pg-variants"), PG_VARIANTS),
    smtpDuration: smoke ? 1 : positive("smtp-duration", str("smtp-duration")),
    smtpConnections,
    smtpVariants: smoke
      ? (["direct", "polyproxy"] as SmtpVariantName[])
      : names("smtp-variants", str("smtp-variants"), SMTP_VARIANTS),
    smtpWorkloads: smoke
      ? ["64k-c10"]
      : v["smtp-workloads"] === undefined
        ? undefined
        : names(
            "smtp-workloads",
            str("smtp-workloads"),
            smtpWorkloads(smtpConnections).map((w) => w.id)
          ),
    proxy: proxy as ProxyForm,
    /** The revision to compare with, as given, and the commit it names. */
    compare,
    compareCommit,
    outDir,
    cpuProfDir: v["cpu-prof"] === undefined ? undefined : resolve(str("cpu-prof"))
  }
}

type Options = ReturnType<typeof parseOptions>

/** Seconds each scenario should take, for the runner's own deadline. */
const planned = (o: Options, s: ScenarioName): number => {
  const common = { rounds: o.rounds, duration: o.duration, warmup: o.warmup }
  // With --compare every polyproxy variant runs twice (only the count matters here).
  const twice = <N extends string>(names: readonly N[]): readonly N[] =>
    o.compare === undefined ? names : [...names, ...names.filter((n) => n.startsWith("polyproxy"))]
  switch (s) {
    case "tcp":
      return plannedTcpSeconds({ ...common, variants: twice(o.tcpVariants), workloads: o.tcpWorkloads })
    case "sni":
      return plannedSniSeconds({ ...common, variants: twice(o.sniVariants) })
    case "http":
      return plannedHttpSeconds({ ...common, duration: Math.ceil(o.duration), variants: twice(o.httpVariants) })
    case "mysql":
      return plannedMysqlSeconds({
        ...common,
        duration: o.mysqlDuration,
        clients: o.mysqlClients,
        variants: twice(o.mysqlVariants)
      })
    case "pg":
      return plannedPgSeconds({
        ...common,
        duration: o.pgDuration,
        clients: o.pgClients,
        poolSize: o.pgPoolSize,
        variants: twice(o.pgVariants)
      })
    case "smtp":
      return plannedSmtpSeconds({
        ...common,
        duration: o.smtpDuration,
        connections: o.smtpConnections,
        variants: twice(o.smtpVariants),
        workloads: o.smtpWorkloads
      })
  }
}

const runScenario = (
  o: Options,
  compare: ProxyEntry | undefined,
  s: ScenarioName,
  dir: string,
  lifetimeSeconds: number,
  log: (l: string) => void
) => {
  const common = {
    entry: workingTree(o.proxy),
    compare,
    dir: join(dir, s),
    rounds: o.rounds,
    warmup: o.warmup,
    cpuProfDir: o.cpuProfDir,
    noise: o.noise,
    lifetimeSeconds,
    log
  }
  mkdirSync(common.dir, { recursive: true })
  switch (s) {
    case "tcp":
      return runTcpScenario({ ...common, duration: o.duration, variants: o.tcpVariants, workloads: o.tcpWorkloads })
    case "sni":
      return runSniScenario({ ...common, duration: o.duration, variants: o.sniVariants })
    case "http":
      return runHttpScenario({
        ...common,
        duration: Math.max(1, Math.round(o.duration)),
        warmup: Math.round(o.warmup),
        connections: o.httpConnections,
        variants: o.httpVariants
      })
    case "mysql":
      return runMysqlScenario({
        ...common,
        duration: o.mysqlDuration,
        clients: o.mysqlClients,
        poolSize: o.mysqlPoolSize,
        pooledClients: o.mysqlPooledClients,
        variants: o.mysqlVariants as readonly MysqlVariantName[]
      })
    case "pg":
      return runPgScenario({
        ...common,
        duration: o.pgDuration,
        warmup: Math.max(0, Math.round(o.warmup)),
        clients: o.pgClients,
        scale: o.pgScale,
        poolSize: o.pgPoolSize,
        variants: o.pgVariants as readonly PgVariantName[]
      })
    case "smtp":
      return runSmtpScenario({
        ...common,
        duration: o.smtpDuration,
        connections: o.smtpConnections,
        variants: o.smtpVariants as readonly SmtpVariantName[],
        workloads: o.smtpWorkloads
      })
  }
}

const writeAtomically = (file: string, content: string): void => {
  // bench/results/*.tmp is git-ignored.
  writeFileSync(`${file}.tmp`, content)
  renameSync(`${file}.tmp`, file)
}

/** Why these results may not be published (empty: they may). */
const unpublishable = (o: Options, scenarios: Record<string, ScenarioResult>, skipped: Record<string, string>) => {
  const why: string[] = []
  if (o.dev) why.push("a development run (--dev): noisy rounds were kept")
  if (o.smoke) why.push("a smoke run")
  for (const [name, reason] of Object.entries(skipped)) why.push(`${name} did not run: ${reason}`)
  for (const r of Object.values(scenarios)) {
    const checks = scenarioChecks(r)
    if (checks.lost.length > 0) why.push(`${r.scenario}: rounds lost to noise (${checks.lost.join(", ")})`)
    if (checks.noisy.length > 0) why.push(`${r.scenario}: ${checks.noisy.length} noisy run(s) kept`)
    const failed = r.measurements.filter((m) => m.error !== undefined && m.discarded === undefined)
    if (failed.length > 0) why.push(`${r.scenario}: ${failed.length} failed run(s)`)
  }
  return why
}

/** The header's word on `--compare`: which revision every polyproxy variant also ran from. */
const compareLines = (c: { revision: string; commit: string; proxyEntry: string; warnings: string[] } | undefined) =>
  c === undefined
    ? []
    : [
        `Compared with \`${c.revision}\` (commit ${c.commit}, \`${c.proxyEntry}\`): every polyproxy variant also ran ` +
          "from it with the same config in the same rounds, named `name@<commit>`; each scenario's Before/after " +
          `table gives now ÷ then.${c.warnings.map((w) => ` Warning: ${w}.`).join("")}`,
        ""
      ]

const renderMarkdown = (
  meta: Record<string, unknown>,
  scenarios: Record<string, ScenarioResult>,
  skipped: Record<string, string>,
  why: string[]
): string => {
  const m = meta.machine as ReturnType<typeof machineInfo>
  const lines: string[] = [
    "# polyproxy benchmarks",
    "",
    `Generated by \`${String(meta.command)}\` on ${m.date} (whole run ${Math.round(Number(meta.totalSeconds))} s). ` +
      "Overwritten by every run; the dated JSON beside it keeps every figure. bench/README.md says how it is measured.",
    "",
    why.length === 0
      ? "**Publishable**: no round above the noise limit was kept, none was lost, no run failed."
      : `**NOT PUBLISHABLE**: ${why.join("; ")}.`,
    "",
    `Machine: ${m.nproc} cores (nproc), ${m.cpuModel}, Linux ${m.kernel}, Node ${m.node}. Generators and origins are ` +
      "C (bench/native, load/native, wrk, nginx, pgbench, mysqlslap, Postfix's smtp-source and smtp-sink) and share " +
      "the cores with the proxy: read every ratio with the proxy's CPU per operation beside it.",
    "",
    ...compareLines(meta.compare as { revision: string; commit: string; proxyEntry: string; warnings: string[] }),
    ...renderTargets(targets(scenarios)),
    "## README table",
    "",
    "The bench rows of the README's Performance table (`node bench/readme.ts` prints them from any results JSON):",
    "",
    ...readmeTable(scenarios),
    ""
  ]
  for (const r of Object.values(scenarios)) lines.push(...renderScenario(r))
  for (const [name, reason] of Object.entries(skipped)) lines.push(`## ${name}`, "", `Did not run: ${reason}`, "")
  return lines.join("\n")
}

/** The smoke passes when every workload of every variant has a kept run with a rate (and CPU for proxies). */
const smokeProblems = (scenarios: Record<string, ScenarioResult>, wanted: readonly string[]): string[] => {
  const problems: string[] = wanted.filter((s) => scenarios[s] === undefined).map((s) => `${s}: produced nothing`)
  for (const r of Object.values(scenarios)) {
    if (r.workloads.length === 0) problems.push(`${r.scenario}: no workload ran`)
    for (const s of summarize(r)) {
      for (const v of r.variants) {
        const runs = keptRuns(r).filter((m) => m.workload === s.workload.id && m.variant === v.name)
        const good = runs.filter((m) => m.rate !== undefined && m.rate > 0)
        const label = `${r.scenario} ${s.workload.id} ${v.name}`
        const failed = r.measurements.find((m) => m.workload === s.workload.id && m.variant === v.name && m.error)
        if (good.length === 0) problems.push(`${label}: no numbers (${failed?.error?.split("\n")[0] ?? "no run"})`)
        else if (v.name !== r.reference && good.some((m) => m.cpuPerUnit === undefined)) {
          problems.push(`${label}: no CPU reading of the proxy`)
        } else if (s.workload.kind === "latency" && good.some((m) => !(m.latencyUs?.p50 ?? 0))) {
          problems.push(`${label}: no latency percentiles`)
        }
      }
    }
  }
  return problems
}

const main = async (): Promise<number> => {
  const opts = parseOptions(process.argv.slice(2))
  installExitHooks()
  const started = Date.now()
  const machine = machineInfo()
  const log = (line: string): void => {
    process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}\n`)
  }
  const plannedSeconds = opts.only.reduce((n, s) => n + planned(opts, s), 10)
  // A hard bound on the whole run: whatever hangs, every child dies and the process exits. The smoke's is its budget.
  // Noise reruns may add up to `retries` rounds per round.
  const hardLimitSeconds = opts.smoke ? 45 : Math.round(plannedSeconds * (1 + opts.noise.retries / 2) + 300)
  const hardLimit = setTimeout(() => {
    process.stderr.write(`bench: still running after ${hardLimitSeconds} s, giving up\n`)
    killEverything()
    process.exit(1)
  }, hardLimitSeconds * 1000)
  hardLimit.unref()
  log(
    `bench: ${opts.only.join(", ")}${opts.smoke ? " (smoke)" : opts.dev ? " (development run: noisy rounds kept)" : ""}; ` +
      `planned about ${Math.round(plannedSeconds)} s, hard limit ${hardLimitSeconds} s; results to ` +
      (relative(repoRoot, opts.outDir) || ".")
  )
  if (opts.proxy === "dist") {
    const warning = staleDistWarning()
    if (warning) log(`warning: ${warning}`)
  }
  for (const line of benchBinaries().built) log(`built: ${line}`)
  const compared = opts.compareCommit === undefined ? undefined : comparedEntry(opts.compareCommit, opts.proxy)
  if (compared !== undefined) {
    log(`compare: every polyproxy variant also as name@${compared.entry.rev}: ${entryCommand(compared.entry)}`)
    for (const w of compared.warnings) log(`warning: ${w}`)
  }

  const dir = makeTempDir("bench-run")
  const scenarios: Record<string, ScenarioResult> = {}
  const skipped: Record<string, string> = {}
  try {
    for (const s of opts.only) {
      try {
        scenarios[s] = await runScenario(opts, compared?.entry, s, dir, hardLimitSeconds + 60, log)
      } catch (error) {
        skipped[s] = `failed: ${(error as Error).message.split("\n")[0]}`
        log(`${s} scenario failed: ${(error as Error).message}`)
      }
    }
    const totalSeconds = (Date.now() - started) / 1000
    const why = unpublishable(opts, scenarios, skipped)
    const meta = {
      machine,
      command: `node bench/run.ts ${process.argv
        .slice(2)
        .map((a) => (/\s/.test(a) ? `"${a}"` : a))
        .join(" ")}`.trim(),
      proxyEntry: entryCommand(workingTree(opts.proxy)),
      ...(compared === undefined
        ? {}
        : {
            compare: {
              revision: opts.compare,
              commit: opts.compareCommit,
              proxyEntry: entryCommand(compared.entry),
              warnings: compared.warnings
            }
          }),
      options: { ...opts, outDir: relative(repoRoot, opts.outDir) },
      publishable: why.length === 0,
      notPublishableBecause: why,
      totalSeconds
    }
    const md = renderMarkdown(meta, scenarios, skipped, why)
    const svg = renderSvg(
      `polyproxy: throughput ratios${why.length === 0 ? "" : " (NOT PUBLISHABLE)"}`,
      `${machine.date.slice(0, 16).replace("T", " ")} UTC · ${machine.nproc} shared cores · ${meta.command}`,
      chartPanels(scenarios)
    )
    mkdirSync(opts.outDir, { recursive: true })
    const stamp = `${machine.date.slice(0, 19).replaceAll(":", "-")}Z`
    const files = {
      dated: join(opts.outDir, `${stamp}.json`),
      json: join(opts.outDir, "latest.json"),
      md: join(opts.outDir, "latest.md"),
      svg: join(opts.outDir, "latest.svg")
    }
    const summaries = Object.fromEntries(Object.entries(scenarios).map(([k, r]) => [k, summarize(r)]))
    const json = `${JSON.stringify({ meta, scenarios, summaries, skipped, targets: targets(scenarios) }, null, 2)}\n`
    writeAtomically(files.dated, json)
    writeAtomically(files.json, json)
    writeAtomically(files.md, md)
    writeAtomically(files.svg, svg)
    process.stdout.write(`${readFileSync(files.md, "utf8")}\n`)
    log(
      `wrote ${Object.values(files)
        .map((f) => relative(repoRoot, f))
        .join(", ")}`
    )
    if (why.length > 0) log(`NOT PUBLISHABLE: ${why.join("; ")}`)
    if (opts.smoke) {
      const problems = smokeProblems(scenarios, opts.only)
      for (const p of problems) log(`smoke: ${p}`)
      log(`smoke: ${problems.length === 0 ? "ok" : "FAILED"} in ${totalSeconds.toFixed(1)} s`)
      return problems.length === 0 ? 0 : 1
    }
    const failed = Object.values(scenarios).some((r) => r.measurements.some((m) => m.error && !m.discarded))
    return Object.keys(skipped).length > 0 || failed ? 1 : 0
  } finally {
    removeTempDir(dir)
    killEverything()
    clearTimeout(hardLimit)
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? error.message : String(error)}\n`)
    killEverything()
    process.exit(1)
  }
)
