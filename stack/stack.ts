// `make stack`: docker-compose.yml's topology as local processes, no containers. Three polyproxy instances
// (`node dist/cli.js serve`, generated configs, free ports) sharing one Redis (cache.redis), in front of a real
// PostgreSQL, MariaDB and Redis, the CongoDB Mongo-wire server, an SMTP sink and an HTTP origin, all started with the
// spec helpers (spec/support/backends). Two tenants per protocol, as in deploy/compose/polyproxy.yaml.
//
//   node stack/stack.ts up   [--dir .tmp/stack] [--ttl 3600] [--cli dist/cli.js] [--instances 3]
//   node stack/stack.ts down [--dir .tmp/stack]
//   node stack/stack.ts status [--dir .tmp/stack]
//
// `up` starts a supervisor in its own process group, waits until everything answers, prints the quick-start commands
// with the real ports and returns. The supervisor stops everything on `down` (SIGTERM), on SIGINT, and by itself after
// --ttl seconds; `down` kills the whole process group if the supervisor does not finish in time. State: DIR/stack.json,
// DIR/stack.pid; logs: DIR/stack.log, DIR/pN.log, DIR/mail.log.
import { spawn } from "node:child_process"
import { appendFileSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../", import.meta.url))
const TENANTS = ["acme", "globex"] as const
const LISTENERS = ["postgres", "mysql", "mongodb", "smtp", "http"] as const
type ListenerName = (typeof LISTENERS)[number]

export interface StackInstance {
  readonly name: string
  readonly pid: number
  readonly admin: number
  readonly ports: Record<ListenerName, number>
  readonly config: string
  readonly log: string
}

export interface StackState {
  readonly pid: number
  readonly dir: string
  readonly startedAt: string
  readonly expiresAt: string
  readonly redis: { readonly url: string; readonly port: number }
  readonly postgres: { readonly port: number; readonly user: string; readonly password: string }
  readonly mariadb: { readonly port: number; readonly user: string; readonly password: string }
  readonly mongodb: { readonly port: number }
  readonly smtp: { readonly port: number; readonly mailLog: string }
  readonly http: { readonly port: number }
  /** Resource id → backend, the same for every instance. */
  readonly routes: Record<string, string>
  readonly instances: ReadonlyArray<StackInstance>
}

export const tenantIds = {
  postgres: TENANTS.map((t) => `${t}_pg`),
  mysql: TENANTS.map((t) => `${t}_my`),
  mongodb: TENANTS.map((t) => `${t}_mongo`),
  smtp: TENANTS.map((t) => `${t}.example`),
  http: TENANTS.map((t) => `${t}.localhost`)
} as const

const files = (dir: string) => ({
  state: path.join(dir, "stack.json"),
  pid: path.join(dir, "stack.pid"),
  log: path.join(dir, "stack.log"),
  mail: path.join(dir, "mail.log")
})

/** The running stack's state, or undefined when none is running in `dir`. */
export const readState = (dir: string): StackState | undefined => {
  const f = files(path.resolve(dir))
  if (!existsSync(f.state)) return undefined
  const state = JSON.parse(readFileSync(f.state, "utf8")) as StackState
  return alive(state.pid) ? state : undefined
}

/** Running, not merely a zombie waiting for its parent (PID 1 here) to reap it. */
export const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"))
  } catch {
    return true
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const argOf = (args: ReadonlyArray<string>, name: string, fallback: string): string => {
  const i = args.indexOf(name)
  const v = i >= 0 ? args[i + 1] : undefined
  if (i >= 0 && (v === undefined || v.startsWith("--"))) throw new Error(`${name} needs a value`)
  return v ?? fallback
}

// ---- quick start ----

export const quickStart = (s: StackState): string => {
  const [p1, p2, p3] = s.instances
  const pad = (v: string | number, n = 9) => String(v).padEnd(n)
  const table = [
    `  ${pad("", 5)}${LISTENERS.map((l) => pad(l)).join("")}admin`,
    ...s.instances.map((i) => `  ${pad(i.name, 5)}${LISTENERS.map((l) => pad(i.ports[l])).join("")}${i.admin}`)
  ]
  const other = p2 ?? p1!
  const third = p3 ?? other
  const pg = s.postgres
  const my = s.mariadb
  return [
    `polyproxy stack: ${s.instances.length} instances sharing Redis ${s.redis.url} (routing cache, purges, wake lock)`,
    `stops by itself at ${s.expiresAt}; now: make stack-down`,
    "",
    ...table,
    "",
    `  psql "postgresql://${pg.user}:${pg.password}@127.0.0.1:${p1!.ports.postgres}/acme_pg" -c 'select current_database()'`,
    `  psql "postgresql://${pg.user}:${pg.password}@127.0.0.1:${other.ports.postgres}/globex_pg" -c 'select current_database()'`,
    `  mysql -h 127.0.0.1 -P ${p1!.ports.mysql} -u ${my.user} -p${my.password} acme_my -e 'select database()'`,
    `  mongosh "mongodb://127.0.0.1:${third.ports.mongodb}/acme_mongo?directConnection=true" --eval 'db.runCommand({ping: 1})'`,
    `  swaks --server 127.0.0.1:${p1!.ports.smtp} --ehlo acme.example --from ops@acme.example --to team@acme.example`,
    `  curl -H 'Host: globex.localhost' http://127.0.0.1:${other.ports.http}/`,
    `  curl http://127.0.0.1:${p1!.admin}/readyz`,
    `  curl -X POST 'http://127.0.0.1:${p1!.admin}/admin/purge?id=acme_pg'    # purged on every instance`,
    "",
    `  mail received: ${s.smtp.mailLog}`,
    `  logs: ${path.join(s.dir, "stack.log")}, ${s.instances.map((i) => i.log).join(", ")}`,
    ""
  ].join("\n")
}

// ---- up / down / status ----

const up = async (args: ReadonlyArray<string>) => {
  const dir = path.resolve(argOf(args, "--dir", path.join(root, ".tmp/stack")))
  const running = readState(dir)
  if (running) {
    process.stdout.write(`already running (supervisor pid ${running.pid})\n\n${quickStart(running)}`)
    return
  }
  mkdirSync(dir, { recursive: true })
  const f = files(dir)
  for (const file of [f.state, f.pid]) rmSync(file, { force: true })
  const out = openSync(f.log, "w")
  const supervisor = spawn(
    process.execPath,
    [
      fileURLToPath(import.meta.url),
      "run",
      "--dir",
      dir,
      "--ttl",
      argOf(args, "--ttl", "3600"),
      "--cli",
      path.resolve(root, argOf(args, "--cli", "dist/cli.js")),
      "--instances",
      argOf(args, "--instances", "3")
    ],
    // Its own process group: `down` can take everything it started at once, whatever state it is in.
    { detached: true, stdio: ["ignore", out, out], env: { ...process.env, TEST_BACKENDS: "local" } }
  )
  supervisor.unref()
  let exited: number | null | undefined
  supervisor.once("exit", (code) => (exited = code))
  // Ctrl-C while waiting: nothing may be left behind.
  const abandon = () => {
    if (supervisor.pid) killGroup(supervisor.pid, "SIGTERM")
    process.exit(130)
  }
  process.once("SIGINT", abandon)
  process.once("SIGTERM", abandon)
  const deadline = Date.now() + 180_000
  for (;;) {
    const state = readState(dir)
    if (state) {
      process.off("SIGINT", abandon)
      process.off("SIGTERM", abandon)
      process.stdout.write(quickStart(state))
      return
    }
    if (exited !== undefined || Date.now() > deadline) {
      if (exited === undefined && supervisor.pid) killGroup(supervisor.pid, "SIGKILL")
      const log = existsSync(f.log) ? readFileSync(f.log, "utf8").trimEnd().split("\n").slice(-30).join("\n") : ""
      throw new Error(`the stack did not start (${exited === undefined ? "timeout" : `exit ${exited}`}):\n${log}`)
    }
    await sleep(100)
  }
}

const killGroup = (pid: number, signal: NodeJS.Signals) => {
  try {
    process.kill(-pid, signal)
  } catch {}
}

const down = async (args: ReadonlyArray<string>) => {
  const dir = path.resolve(argOf(args, "--dir", path.join(root, ".tmp/stack")))
  const f = files(dir)
  const pid = existsSync(f.pid) ? Number(readFileSync(f.pid, "utf8").trim()) : 0
  if (!pid || !alive(pid)) {
    for (const file of [f.state, f.pid]) rmSync(file, { force: true })
    process.stdout.write(`no stack running in ${dir}\n`)
    return
  }
  process.kill(pid, "SIGTERM")
  const deadline = Date.now() + 30_000
  while (alive(pid) && Date.now() < deadline) await sleep(100)
  // Whatever did not stop in time goes with its process group.
  killGroup(pid, "SIGKILL")
  for (const file of [f.state, f.pid]) rmSync(file, { force: true })
  process.stdout.write(`stack stopped (supervisor pid ${pid})\n`)
}

const status = (args: ReadonlyArray<string>) => {
  const dir = path.resolve(argOf(args, "--dir", path.join(root, ".tmp/stack")))
  const state = readState(dir)
  process.stdout.write(state ? quickStart(state) : `no stack running in ${dir}\n`)
  if (!state) process.exitCode = 1
}

// ---- the supervisor ----

const log = (event: string, fields: Record<string, unknown> = {}) =>
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), event, ...fields })}\n`)

const run = async (args: ReadonlyArray<string>) => {
  const dir = path.resolve(argOf(args, "--dir", path.join(root, ".tmp/stack")))
  const ttl = Number(argOf(args, "--ttl", "3600"))
  const cli = argOf(args, "--cli", path.join(root, "dist/cli.js"))
  const count = Number(argOf(args, "--instances", "3"))
  if (!(ttl > 0) || !Number.isInteger(count) || count < 1 || count > 9) throw new Error("bad --ttl or --instances")
  if (!existsSync(cli)) throw new Error(`${cli} does not exist: run \`make build\` first`)
  const f = files(dir)
  writeFileSync(f.pid, `${process.pid}\n`)
  // The spec helpers pick local servers or containers; this stack is the no-container one.
  process.env.TEST_BACKENDS = "local"
  const { startMariaDb, startMongo, startPostgres, startRedis, startSmtpSink } = await import(
    "../spec/support/backends/index.ts"
  )

  const stops: Array<() => Promise<unknown> | unknown> = []
  let stopping: Promise<void> | undefined
  const stop = (why: string, code = 0) =>
    (stopping ??= (async () => {
      log("stopping", { why })
      rmSync(f.state, { force: true })
      // Last started, first stopped: the proxies (which drain) before their backends.
      for (const s of stops.reverse()) await Promise.resolve(s()).catch(() => {})
      rmSync(f.pid, { force: true })
      log("stopped")
      process.exit(code)
    })())
  process.on("SIGTERM", () => void stop("SIGTERM"))
  process.on("SIGINT", () => void stop("SIGINT"))
  process.on("SIGHUP", () => void stop("SIGHUP"))

  try {
    const redis = await startRedis()
    stops.push(redis.stop)
    log("redis", { port: redis.port })
    const pg = await startPostgres({ databases: tenantIds.postgres })
    stops.push(pg.stop)
    log("postgres", { port: pg.port })
    const maria = await startMariaDb({ databases: tenantIds.mysql })
    stops.push(maria.stop)
    log("mariadb", { port: maria.port })
    const mongo = await startMongo()
    stops.push(mongo.stop)
    log("mongodb (CongoDB)", { port: mongo.port })
    const sink = await startSmtpSink()
    stops.push(sink.stop)
    writeFileSync(f.mail, "")
    let logged = 0
    const mailTimer = setInterval(() => {
      for (const m of sink.messages.slice(logged)) {
        appendFileSync(
          f.mail,
          `${JSON.stringify({ ehlo: m.ehloName, from: m.from, to: m.to, bytes: m.data.length })}\n`
        )
      }
      logged = sink.messages.length
    }, 250)
    stops.push(() => clearInterval(mailTimer))
    log("smtp sink", { port: sink.port })
    const origin = await startOrigin()
    stops.push(origin.stop)
    log("http origin", { port: origin.port })

    const routes: Record<string, string> = {}
    for (const id of tenantIds.postgres) routes[id] = `127.0.0.1:${pg.port}`
    for (const id of tenantIds.mysql) routes[id] = `127.0.0.1:${maria.port}`
    for (const id of tenantIds.mongodb) routes[id] = `127.0.0.1:${mongo.port}`
    for (const id of tenantIds.smtp) routes[id] = `127.0.0.1:${sink.port}`
    for (const id of tenantIds.http) routes[id] = `127.0.0.1:${origin.port}`

    const instances = await Promise.all(
      Array.from({ length: count }, (_, i) => startInstance(dir, `p${i + 1}`, cli, routes, redis.url, stops))
    )
    const now = Date.now()
    const state: StackState = {
      pid: process.pid,
      dir,
      startedAt: new Date(now).toISOString(),
      expiresAt: new Date(now + ttl * 1000).toISOString(),
      redis: { url: redis.url, port: redis.port },
      postgres: { port: pg.port, user: pg.user, password: pg.userPassword },
      mariadb: { port: maria.port, user: maria.user, password: maria.password },
      mongodb: { port: mongo.port },
      smtp: { port: sink.port, mailLog: f.mail },
      http: { port: origin.port },
      routes,
      instances
    }
    writeFileSync(f.state, JSON.stringify(state, null, 2))
    log("ready", { instances: instances.map((i) => i.name) })
    // Bounded: nothing outlives --ttl, whoever forgets `make stack-down`.
    setTimeout(() => void stop(`ttl of ${ttl}s reached`), ttl * 1000)
  } catch (error) {
    log("failed", { error: String((error as Error)?.stack ?? error) })
    await stop("start failed", 1)
  }
}

/** The HTTP origin of both tenants: answers with what it received, so the Host the proxy routed by is visible. */
const startOrigin = async () => {
  const server = http.createServer((req, res) => {
    req.resume()
    res.setHeader("content-type", "application/json")
    res.end(
      JSON.stringify({
        origin: "stack-origin",
        host: req.headers.host,
        method: req.method,
        url: req.url,
        forwardedFor: req.headers["x-forwarded-for"]
      })
    )
  })
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  return {
    port: (server.address() as AddressInfo).port,
    stop: () => new Promise<void>((r) => server.close(() => r()))
  }
}

const startInstance = async (
  dir: string,
  name: string,
  cli: string,
  routes: Record<string, string>,
  redisUrl: string,
  stops: Array<() => Promise<unknown> | unknown>
): Promise<StackInstance> => {
  const config = path.join(dir, `${name}.yaml`)
  const logFile = path.join(dir, `${name}.log`)
  writeFileSync(
    config,
    [
      `# ${name} of the local stack (stack/stack.ts); generated, rewritten on every \`make stack\`.`,
      "workers: 1",
      "admin: { host: 127.0.0.1, port: 0 }",
      "listeners:",
      ...LISTENERS.map((l) => `  ${l}: { host: 127.0.0.1, port: 0 }`),
      "routes:",
      ...Object.entries(routes).map(([id, endpoint]) => `  ${JSON.stringify(id)}: ${JSON.stringify(endpoint)}`),
      `cache: { ttl: 60, negativeTtl: 5, redis: ${JSON.stringify(redisUrl)} }`,
      'ssrf: { allow: ["127.0.0.0/8"] }',
      "timeouts: { handshake: 10, connect: 5, idle: 0, resolve: 5, drain: 2 }",
      "log: { level: info, format: json }",
      ""
    ].join("\n")
  )
  // polyproxy refuses unknown POLYPROXY_* variables, and the config file is the whole truth here.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("POLYPROXY_")))
  const out = openSync(logFile, "w")
  const child = spawn(process.execPath, [cli, "serve", "--config", config], { stdio: ["ignore", out, out], env })
  const exited = new Promise<void>((r) => child.once("exit", () => r()))
  stops.push(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill("SIGTERM")
    const killer = setTimeout(() => child.kill("SIGKILL"), 5_000)
    await exited
    clearTimeout(killer)
  })
  const deadline = Date.now() + 30_000
  for (;;) {
    const text = readFileSync(logFile, "utf8")
    const port = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0)
    const admin = port(/"event":"admin listening".*?"port":(\d+)/)
    const ports = Object.fromEntries(
      LISTENERS.map((l) => [l, port(new RegExp(`"event":"listening","listener":"${l}".*?"port":(\\d+)`))])
    ) as Record<ListenerName, number>
    if (admin && Object.values(ports).every(Boolean)) {
      const ready = await fetch(`http://127.0.0.1:${admin}/readyz`).catch(() => undefined)
      if (ready?.status === 200) {
        log("polyproxy", { name, pid: child.pid, admin, ...ports })
        return { name, pid: child.pid!, admin, ports, config, log: logFile }
      }
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`${name} did not start (see ${logFile}):\n${text.trimEnd().split("\n").slice(-10).join("\n")}`)
    }
    await sleep(100)
  }
}

const main = async () => {
  const [command, ...args] = process.argv.slice(2)
  switch (command) {
    case "up":
      return up(args)
    case "down":
      return down(args)
    case "status":
      return status(args)
    case "run":
      return run(args)
    default:
      process.stderr.write("usage: node stack/stack.ts up|down|status [--dir DIR] [--ttl SECONDS] [--cli FILE]\n")
      process.exitCode = 2
  }
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error: unknown) => {
    process.stderr.write(`stack: ${(error as Error)?.message ?? error}\n`)
    process.exit(1)
  })
}
