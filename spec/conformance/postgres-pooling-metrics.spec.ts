// What the PostgreSQL pools show an operator: per-pool series in /metrics and GET /admin/pools, read after real `pg`
// clients ran real transactions through a transaction-mode route to a real PostgreSQL 15; then the same with
// `workers: 2`, where the primary adds up what each worker's own pool of the route reports.
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type PostgresServer, startPostgres } from "../support/backends/index.ts"
import { launchChromium } from "../support/chromium.ts"
import type { CliProxy } from "../support/cliProxy.ts"
import { pooledRoute, startPoolingCli, startPoolingProxy } from "../support/pgPooling.ts"
import { eventually, type TestProxy } from "../support/proxy.ts"

const SIZE = 2
const CLIENTS = 5
const QUERIES = 4

let db: PostgresServer
let proxy: TestProxy

beforeAll(async () => {
  db = await startPostgres({ databases: ["metricsdb"] })
  proxy = await startPoolingProxy({ metricsdb: pooledRoute(db, { size: SIZE }) })
})

afterAll(async () => {
  await proxy?.stop()
  await db?.stop()
})

const client = (port: number, password = db.userPassword) =>
  new pg.Client({ host: "127.0.0.1", port, user: db.user, password, database: "metricsdb", ssl: false })

/** `clients` clients at once, each running `queries` single-statement queries (one transaction each). */
const runClients = async (port: number, clients: number, queries: number): Promise<void> => {
  await Promise.all(
    Array.from({ length: clients }, async (_, i) => {
      const c = client(port)
      await c.connect()
      for (let q = 0; q < queries; q++) await c.query("select $1::int + pg_backend_pid() * 0 as n", [i])
      await c.end()
    })
  )
}

/** The value of the series `name` whose labels include every one of `labels` (undefined: no such series). */
const sample = (text: string, name: string, labels: Readonly<Record<string, string>>): number | undefined => {
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue
    const open = line.indexOf("{")
    const close = line.lastIndexOf("}")
    const have = new Map([...line.slice(open + 1, close).matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]))
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) return Number(line.slice(close + 2))
  }
  return undefined
}

const metrics = async (admin: string) => (await fetch(`${admin}/metrics`)).text()

interface PoolRow {
  readonly listener: string
  readonly backend: string
  readonly database: string
  readonly user: string
  readonly mode: string
  readonly size: number
  readonly open: number
  readonly active: number
  readonly idle: number
  readonly waiting: number
  readonly maxWaitMs: number
  readonly transactions: number
  readonly workers?: number
}

const pools = async (admin: string): Promise<Array<PoolRow>> => {
  const res = await fetch(`${admin}/admin/pools`)
  expect(res.status).toBe(200)
  return ((await res.json()) as { pools: Array<PoolRow> }).pools
}

describe("per-pool metrics and /admin/pools", () => {
  const labels = () => ({
    listener: "postgres",
    backend: `127.0.0.1:${db.port}`,
    database: "metricsdb",
    user: db.user
  })

  it("counts every transaction, and shows the pool at rest: nobody waiting, at most `size` open", async () => {
    await runClients(proxy.port("postgres"), CLIENTS, QUERIES)
    const text = await metrics(proxy.adminUrl)
    const l = labels()
    const transactions = sample(text, "polyproxy_pg_pool_transactions_total", l)!
    expect(transactions).toBeGreaterThanOrEqual(CLIENTS * QUERIES)
    // Every hand-out is one sample of the wait histogram.
    expect(sample(text, "polyproxy_pg_pool_wait_duration_ms_count", l)).toBe(transactions)
    expect(sample(text, "polyproxy_pg_pool_clients_waiting", l)).toBe(0)
    const idle = sample(text, "polyproxy_pg_pool_server_connections", { ...l, state: "idle" })!
    expect(idle).toBeGreaterThanOrEqual(1)
    expect(idle).toBeLessThanOrEqual(SIZE)
    expect(sample(text, "polyproxy_pg_pool_server_connections", { ...l, state: "active" })).toBe(0)
    expect(sample(text, "polyproxy_pg_pool_server_connections", { ...l, state: "opening" })).toBe(0)
    expect(sample(text, "polyproxy_pg_pool_server_open_failures_total", l)).toBe(0)
    // Five logins of one role: one query to the backend for its secret, the rest from memory.
    const hits = sample(text, "polyproxy_pg_secret_lookups_total", { listener: "postgres", result: "hit" })!
    const queries = sample(text, "polyproxy_pg_secret_lookups_total", { listener: "postgres", result: "query" })!
    expect(queries).toBeGreaterThanOrEqual(1)
    expect(hits + queries).toBeGreaterThanOrEqual(CLIENTS)
    expect(sample(text, "polyproxy_pg_secret_lookups_total", { listener: "postgres", result: "failure" })).toBe(0)

    const [row, ...others] = await pools(proxy.adminUrl)
    expect(others).toEqual([])
    expect(row).toMatchObject({ ...l, mode: "transaction", size: SIZE, waiting: 0, active: 0, maxWaitMs: 0 })
    expect(row!.idle).toBe(idle)
    expect(row!.open).toBe(idle)
    expect(row!.transactions).toBe(transactions)
  })

  it("shows a client waiting while every server connection is held, and its wait in the histogram", async () => {
    const port = proxy.port("postgres")
    const holders = Array.from({ length: SIZE }, () => client(port))
    for (const h of holders) {
      await h.connect()
      await h.query("begin")
      await h.query("select 1")
    }
    const waiter = client(port)
    await waiter.connect()
    const waited = waiter.query("select 'served' as s")
    const l = labels()
    await eventually(async () => {
      const row = (await pools(proxy.adminUrl))[0]!
      return row.waiting === 1 && row.active === SIZE && row.maxWaitMs > 0
    })
    const text = await metrics(proxy.adminUrl)
    expect(sample(text, "polyproxy_pg_pool_clients_waiting", l)).toBe(1)
    expect(sample(text, "polyproxy_pg_pool_server_connections", { ...l, state: "active" })).toBe(SIZE)
    const histogram = (t: string) => ({
      atOnce: sample(t, "polyproxy_pg_pool_wait_duration_ms_bucket", { ...l, le: "0" })!,
      count: sample(t, "polyproxy_pg_pool_wait_duration_ms_count", l)!,
      sum: sample(t, "polyproxy_pg_pool_wait_duration_ms_sum", l)!
    })
    const before = histogram(text)
    // The holders' transactions keep their connections: the next hand-out is the waiter's, after its wait.
    await holders[0]!.query("commit")
    expect((await waited).rows).toEqual([{ s: "served" }])
    const after = await metrics(proxy.adminUrl)
    expect(sample(after, "polyproxy_pg_pool_clients_waiting", l)).toBe(0)
    const then = histogram(after)
    expect(then.count).toBe(before.count + 1)
    expect(then.atOnce).toBe(before.atOnce)
    expect(then.sum).toBeGreaterThan(before.sum)
    for (const h of holders.slice(1)) await h.query("commit")
    await Promise.all([...holders, waiter].map((c) => c.end()))
  })

  it("shows the pool on the dashboard: in /admin/dashboard and as a row of the page's pools table", async () => {
    const [row] = await pools(proxy.adminUrl)
    const data = (await (await fetch(`${proxy.adminUrl}/admin/dashboard`)).json()) as { pools: Array<PoolRow> }
    expect(data.pools).toEqual([{ ...row, maxWaitMs: 0 }])
    const browser = await launchChromium()
    try {
      await browser.page.goto(`${proxy.adminUrl}/`)
      const tr = browser.page.locator(`tr[data-pool="postgres 127.0.0.1:${db.port} metricsdb ${db.user}"]`)
      await tr.waitFor({ timeout: 5_000 })
      const cells = await tr.locator("td").allTextContents()
      expect(cells.slice(0, 5)).toEqual([
        "postgres",
        `127.0.0.1:${db.port}`,
        `metricsdb / ${db.user}`,
        `0 / ${row!.idle} / ${SIZE}`,
        "0" // cancelling
      ])
    } finally {
      await browser.close()
    }
  })

  it("counts a wrong password as a client login failure", async () => {
    const before = sample(await metrics(proxy.adminUrl), "polyproxy_pg_client_login_failures_total", {
      listener: "postgres"
    })
    const c = client(proxy.port("postgres"), "not-the-password")
    c.on("error", () => {})
    const error = (await c.connect().then(
      () => undefined,
      (e: unknown) => e
    )) as { code?: string }
    expect(error?.code).toBe("28P01")
    const after = sample(await metrics(proxy.adminUrl), "polyproxy_pg_client_login_failures_total", {
      listener: "postgres"
    })
    expect(after).toBe((before ?? 0) + 1)
  })
})

describe("workers: 2", () => {
  let cli: CliProxy

  beforeAll(async () => {
    cli = await startPoolingCli(db, "metricsdb", SIZE)
  })

  afterAll(() => cli?.stop())

  /** Workers whose own /admin/stats lists a pool of the postgres listener. */
  const workersWithPool = async (): Promise<number> => {
    const stats = (await (await fetch(`${cli.adminUrl}/admin/stats`)).json()) as {
      workers: Array<{ pools: Array<{ owner: string }> }>
    }
    return stats.workers.filter((w) => w.pools.some((p) => p.owner === "postgres")).length
  }

  it("lists the route's pool once, the workers' counts summed, as /metrics sums their series", async () => {
    const port = cli.port("postgres")
    // The kernel spreads connections over the workers (SO_REUSEPORT): clients until both have served one.
    let ran = 0
    for (let round = 0; round < 20 && (await workersWithPool()) < 2; round++) {
      await runClients(port, 4, 2)
      ran += 4 * 2
    }
    expect(await workersWithPool()).toBe(2)
    const rows = await pools(cli.adminUrl)
    expect(rows).toHaveLength(1)
    const row = rows[0]!
    expect(row).toMatchObject({
      listener: "postgres",
      backend: `127.0.0.1:${db.port}`,
      database: "metricsdb",
      user: db.user,
      size: SIZE,
      workers: 2,
      waiting: 0,
      active: 0
    })
    expect(row.transactions).toBeGreaterThanOrEqual(ran)
    // Each worker's pool holds at most `size`: the sum at most size × workers.
    expect(row.open).toBeLessThanOrEqual(SIZE * 2)
    const text = await metrics(cli.adminUrl)
    const l = { listener: "postgres", backend: `127.0.0.1:${db.port}`, database: "metricsdb", user: db.user }
    expect(sample(text, "polyproxy_pg_pool_transactions_total", l)).toBe(row.transactions)
    expect(sample(text, "polyproxy_pg_pool_server_connections", { ...l, state: "idle" })).toBe(row.idle)
    const data = (await (await fetch(`${cli.adminUrl}/admin/dashboard`)).json()) as { pools: Array<PoolRow> }
    expect(data.pools).toEqual([row])
  })
})
