// The load harness's native agent and backend (load/native/*.c, built on demand as load/run.ts does) speak the same
// JSON lines and the same wire bytes as the Node ones (load/agent.ts, load/backend.ts): connections are checked and
// held, a lower target closes some, failures are counted by reason, and each side works with the other's Node
// counterpart. In mode postgres-pooled both agents log in through polyproxy's transaction pooling to a real
// PostgreSQL 15 (SCRAM-SHA-256 and md5 roles), run SELECT 1 and hold. Skipped when no C compiler is there (the harness
// then runs the Node ones).
import { type ChildProcess, spawn } from "node:child_process"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import type pg from "pg"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { buildNative } from "../../load/native.ts"
import { type AgentConfig, type AgentReport, type BackendReport, jsonLines, type Mode } from "../../load/protocol.ts"
import { type PostgresServer, startPostgres } from "../support/backends/index.ts"
import { closedPort } from "../support/net.ts"
import { superuserClient } from "../support/pgAdmin.ts"
import { pooledRoute, startPoolingProxy } from "../support/pgPooling.ts"
import type { TestProxy } from "../support/proxy.ts"

const built = buildNative()
const native = "reason" in built ? undefined : built
const loadDir = fileURLToPath(new URL("../../load/", import.meta.url))

interface Proc<M> {
  readonly child: ChildProcess
  readonly messages: Array<M>
  readonly exited: Promise<number | null>
}

const running: Array<ChildProcess> = []
afterEach(() => {
  for (const c of running.splice(0)) if (c.exitCode === null) c.kill("SIGKILL")
})

const start = <M>(kind: "c" | "node", role: "agent" | "backend", args: ReadonlyArray<string>): Proc<M> => {
  const child =
    kind === "c"
      ? spawn(role === "agent" ? native!.agent : native!.backend, args, { stdio: ["pipe", "pipe", "pipe"] })
      : spawn(process.execPath, [join(loadDir, `${role}.ts`), ...args], { stdio: ["pipe", "pipe", "pipe"] })
  running.push(child)
  const messages: Array<M> = []
  const onMessage = (m: unknown) => {
    messages.push(m as M)
  }
  child.stdout!.on("data", jsonLines(onMessage))
  child.stderr!.on("data", () => {})
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  return { child, messages, exited }
}

const until = async <A>(what: string, probe: () => A | undefined, timeoutMs = 10_000): Promise<A> => {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = probe()
    if (v !== undefined) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

const lastReport = (agent: Proc<{ t: string }>) =>
  agent.messages.filter((m): m is AgentReport => m.t === "report").at(-1)
const lastBackend = (backend: Proc<BackendReport>) => backend.messages.at(-1)
const send = (p: Proc<unknown>, m: object) => p.child.stdin!.write(`${JSON.stringify(m)}\n`)

const startBackend = async (kind: "c" | "node", mode: Mode) => {
  const backend = start<BackendReport>(kind, "backend", [
    "--listen",
    "127.0.0.1:0,127.0.0.1:0",
    "--mode",
    mode,
    "--id",
    "1"
  ])
  const listening = await until("the backend's addresses", () => lastBackend(backend)?.listening)
  expect(listening).toHaveLength(2)
  return { backend, port: Number(listening[0]!.split(":")[1]) }
}

const config = (mode: Mode, port: number, extra: Partial<AgentConfig> = {}): AgentConfig => ({
  mode,
  host: "127.0.0.1",
  port,
  // Two source addresses of 150 explicit ports each (200 connections use both), beside the ones load runs use
  // (agent i binds 127.(101 + i / 250).(i % 250).x).
  sources: ["127.101.250.1", "127.101.250.2"],
  perSource: 150,
  portLo: 1024,
  databases: ["db0", "db1"],
  concurrency: 64,
  confirmTimeoutMs: 5_000,
  lifetimeMs: 60_000,
  ...extra
})

const startAgent = (kind: "c" | "node", cfg: AgentConfig) => {
  const agent = start<{ t: string }>(kind, "agent", ["--index", "3"])
  send(agent, { t: "config", config: cfg })
  return agent
}

describe.skipIf(native === undefined)("native load agent and backend", () => {
  for (const mode of ["tcp", "postgres"] as const) {
    it(`${mode}: hold 200 checked connections, close down to 50 on a lower target, RST all on stop`, async () => {
      const { backend, port } = await startBackend("c", mode)
      const agent = startAgent("c", config(mode, port))
      send(agent, { t: "target", n: 200 })
      const held = await until("200 confirmed", () => {
        const r = lastReport(agent)
        return r?.confirmed === 200 && r.pending === 0 ? r : undefined
      })
      expect(held).toMatchObject({ t: "report", id: 3, target: 200, failed: 0, lost: 0, errors: {} })
      expect(held.started - held.skipped).toBe(200)
      expect(held.rssBytes).toBeGreaterThan(0)
      await until("the backend to hold 200", () => (lastBackend(backend)?.open === 200 ? true : undefined))

      send(agent, { t: "target", n: 50 })
      await until("50 held", () => (lastReport(agent)?.confirmed === 50 ? true : undefined))
      await until("the backend to hold 50", () => (lastBackend(backend)?.open === 50 ? true : undefined))
      expect(lastReport(agent)).toMatchObject({ target: 50, failed: 0, lost: 0 })

      send(agent, { t: "stop" })
      expect(await agent.exited).toBe(0)
      expect(agent.messages.at(-1)).toEqual({ t: "bye", id: 3 })
      await until("the backend to see them closed", () => (lastBackend(backend)?.open === 0 ? true : undefined))
      expect(lastBackend(backend)).toMatchObject({ accepted: 200, open: 0 })
      backend.child.stdin!.end()
      expect(await backend.exited).toBe(0)
    })
  }

  it("works with the Node agent and the Node backend (postgres), each way", async () => {
    for (const [agentKind, backendKind] of [
      ["node", "c"],
      ["c", "node"]
    ] as const) {
      const { backend, port } = await startBackend(backendKind, "postgres")
      const agent = startAgent(agentKind, config("postgres", port, { sources: [] }))
      send(agent, { t: "target", n: 100 })
      const r = await until(`${agentKind} agent, ${backendKind} backend: 100 confirmed`, () => {
        const last = lastReport(agent)
        return last?.confirmed === 100 && last.pending === 0 ? last : undefined
      })
      expect(r).toMatchObject({ failed: 0, lost: 0, errors: {} })
      agent.child.stdin!.end() // stdin closed: the agent stops by itself
      expect(await agent.exited).toBe(0)
      backend.child.stdin!.end()
      expect(await backend.exited).toBe(0)
    }
  })

  it("counts failures by reason and does not replace them", async () => {
    // Nothing listens: every attempt is refused.
    const refused = startAgent("c", config("tcp", await closedPort(), { sources: [] }))
    send(refused, { t: "target", n: 5 })
    const r = await until("5 refused", () => (lastReport(refused)?.failed === 5 ? lastReport(refused) : undefined))
    expect(r).toMatchObject({ started: 5, confirmed: 0, pending: 0, errors: { ECONNREFUSED: 5 } })

    // A postgres agent against a tcp echo: its startup message comes back instead of the answer.
    const { backend, port } = await startBackend("c", "tcp")
    const bad = startAgent("c", config("postgres", port, { sources: [] }))
    send(bad, { t: "target", n: 3 })
    const b = await until("3 bad answers", () => (lastReport(bad)?.failed === 3 ? lastReport(bad) : undefined))
    expect(b.errors).toEqual({ BAD_ANSWER: 3 })

    // A tcp agent against a postgres backend: the probe reads as an endless startup message, nothing comes back.
    const pg = await startBackend("c", "postgres")
    const silent = startAgent("c", config("tcp", pg.port, { sources: [], confirmTimeoutMs: 300 }))
    send(silent, { t: "target", n: 2 })
    const s = await until("2 timeouts", () => (lastReport(silent)?.failed === 2 ? lastReport(silent) : undefined))
    expect(s.errors).toEqual({ TIMEOUT: 2 })
    for (const p of [refused, bad, silent, backend, pg.backend]) p.child.stdin!.end()
  })
})

describe.skipIf(native === undefined)("postgres-pooled agents through transaction pooling to a real PostgreSQL", () => {
  const SIZE = 2
  const databases = ["load_d0", "load_d1"]
  // One role with a SCRAM-SHA-256 secret, one with an md5 secret: the proxy asks each client for what its role has.
  const users = ["load_scram", "load_md5"]
  const passwords = ["scram-secret", "md5-secret"]
  let db: PostgresServer
  let proxy: TestProxy
  let monitor: pg.Client

  beforeAll(async () => {
    // An md5 line lets the md5 role's server connections log in; SCRAM roles still get SCRAM under it.
    db = await startPostgres({ databases, maxConnections: 40, hba: ["host all all 127.0.0.1/32 md5"] })
    monitor = await superuserClient(db, "postgres", [
      `CREATE ROLE load_scram LOGIN PASSWORD '${passwords[0]}'`,
      "SET password_encryption = 'md5'",
      `CREATE ROLE load_md5 LOGIN PASSWORD '${passwords[1]}'`
    ])
    proxy = await startPoolingProxy(Object.fromEntries(databases.map((d) => [d, pooledRoute(db, { size: SIZE })])))
  })

  afterAll(async () => {
    await proxy?.stop()
    await monitor?.end()
    await db?.stop()
  })

  /** The server's client backends per database/role of the load (the pools' server connections). */
  const serverConnections = async (): Promise<Record<string, number>> => {
    const { rows } = await monitor.query<{ k: string; n: number }>(
      "SELECT datname || '/' || usename AS k, count(*)::int AS n FROM pg_stat_activity " +
        "WHERE backend_type = 'client backend' AND datname = ANY($1) GROUP BY 1",
      [databases]
    )
    return Object.fromEntries(rows.map((r) => [r.k, r.n]))
  }

  const pooledConfig = (extra: Partial<AgentConfig> = {}) =>
    config("postgres-pooled", proxy.port("postgres"), { sources: [], databases, users, passwords, ...extra })

  for (const kind of ["c", "node"] as const) {
    it(`${kind} agent: 120 clients log in (SCRAM and md5), each gets SELECT 1's answer, held on ${SIZE} server connections per pool`, async () => {
      const secrets = await monitor.query<{ rolname: string; kind: string }>(
        "SELECT rolname, left(rolpassword, 3) AS kind FROM pg_authid WHERE rolname = ANY($1) ORDER BY 1",
        [users]
      )
      expect(secrets.rows).toEqual([
        { rolname: "load_md5", kind: "md5" },
        { rolname: "load_scram", kind: "SCR" }
      ])
      const agent = startAgent(kind, pooledConfig())
      send(agent, { t: "target", n: 120 })
      const r = await until("120 confirmed", () => {
        const last = lastReport(agent)
        return last?.confirmed === 120 && last.pending === 0 ? last : last?.failed ? last : undefined
      })
      expect(r).toMatchObject({ confirmed: 120, failed: 0, lost: 0, errors: {} })
      const held = await serverConnections()
      // Every (database, role) had clients; none has more server connections than its pool's size.
      expect(Object.keys(held).sort()).toEqual(databases.flatMap((d) => users.map((u) => `${d}/${u}`)).sort())
      for (const n of Object.values(held)) expect(n).toBeLessThanOrEqual(SIZE)
      send(agent, { t: "stop" })
      expect(await agent.exited).toBe(0)
    })
  }

  it("counts a refused login by its SQLSTATE: wrong password and unknown role are PG_28P01", async () => {
    for (const kind of ["c", "node"] as const) {
      const agent = startAgent(
        kind,
        pooledConfig({ users: ["load_scram", "load_md5", "load_nobody"], passwords: ["wrong", "wrong", "x"] })
      )
      send(agent, { t: "target", n: 6 })
      const r = await until(`${kind}: 6 refused`, () =>
        lastReport(agent)?.failed === 6 && lastReport(agent)?.pending === 0 ? lastReport(agent) : undefined
      )
      expect(r).toMatchObject({ confirmed: 0, errors: { PG_28P01: 6 } })
      send(agent, { t: "stop" })
      await agent.exited
    }
  })
})
