// The operator dashboard (GET / on the admin port) in a real browser: Debian's Chromium driven by playwright-core,
// against a proxy relaying real PostgreSQL sessions. The counts on the page must be the connections the clients hold,
// "purge" must make the next connection ask the Resolver again, and the config view must not show a secret.
// The screenshot lands in .tmp/spec-output/admin/dashboard.png; docs/dashboard.png (the README's) is rewritten when
// it is missing or with UPDATE_SCREENSHOTS=1, so ordinary runs leave the tree alone.
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import pg from "pg"
import type { Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Resolver } from "../../src/services/Resolver.ts"
import { type PostgresServer, startPostgres } from "../support/backends/index.ts"
import { type Browser, launchChromium } from "../support/chromium.ts"
import { startTestProxy, type TestProxy } from "../support/proxy.ts"

/** What the page callbacks touch of the DOM (the specs compile without the DOM library). */
interface PageDocument {
  readonly body: { readonly dataset: Record<string, string | undefined> }
  readonly activeElement: { blur?: () => void } | null
  getElementById(id: string): { readonly textContent: string | null } | null
}
type PageGlobal = { readonly document: PageDocument }

const token = "s3cret-admin-token"
const outputDir = path.resolve(".tmp/spec-output/admin")
const docsShot = path.resolve("docs/dashboard.png")

let db: PostgresServer
let echo: net.Server
let reports: pg.Client
let proxy: TestProxy
let browser: Browser
let page: Page
const clients: Array<pg.Client> = []
const sockets: Array<net.Socket> = []
const table: Record<string, string> = {}
const resolves: Record<string, number> = {}

const connect = async (database: string): Promise<pg.Client> => {
  const client = new pg.Client({
    host: "127.0.0.1",
    port: proxy.port("postgres"),
    user: db.user,
    password: db.userPassword,
    database
  })
  await client.connect()
  clients.push(client)
  return client
}

/** The page's sample counter: each successful poll renders once and increments it. */
const samples = () =>
  page.evaluate(() => Number((globalThis as unknown as PageGlobal).document.body.dataset.samples ?? 0))
/** Waits for a poll that started after now (and one more, so the answer reflects what the clients did before). */
const nextPoll = async () => {
  const seen = await samples()
  await page.waitForFunction(
    (n) => Number((globalThis as unknown as PageGlobal).document.body.dataset.samples ?? 0) >= n + 2,
    seen,
    { timeout: 5_000 }
  )
}
const echoSocket = () =>
  new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect(proxy.port("tcp"), "127.0.0.1", () => s.write("hello"))
    s.once("data", () => resolve(s))
    s.once("error", reject)
  })
const text = async (selector: string) => (await page.locator(selector).first().textContent())?.trim()

beforeAll(async () => {
  db = await startPostgres({ databases: ["appdb", "reports"] })
  table.appdb = `127.0.0.1:${db.port}`
  table.reports = `127.0.0.1:${db.port}`
  echo = net.createServer((s) => s.pipe(s))
  await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r))
  table.echo = `127.0.0.1:${(echo.address() as net.AddressInfo).port}`
  proxy = await startTestProxy(
    {
      admin: { host: "127.0.0.1", port: 0, token },
      listeners: { postgres: { host: "127.0.0.1", port: 0 }, tcp: { host: "127.0.0.1", port: 0, route: "echo" } },
      // Shown in the config view only (the Resolver layer below answers): its secrets must not be.
      resolver: { type: "http", url: "http://svc:url-password@127.0.0.1:1/routes", token: "resolver-secret" },
      ssrf: { allow: ["127.0.0.0/8"] },
      log: { connections: false }
    },
    Resolver.layerAsync({
      resolve: (id) => {
        resolves[id] = (resolves[id] ?? 0) + 1
        return table[id] ? { endpoint: table[id]! } : null
      },
      getStats: () => ({ kind: "spec", resolves: Object.values(resolves).reduce((a, b) => a + b, 0) })
    })
  )
  browser = await launchChromium({ viewport: { width: 1360, height: 960 } })
  page = browser.page
})

afterAll(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => {})))
  for (const s of sockets) s.destroy()
  echo?.close()
  await browser?.close()
  await proxy?.stop()
  await db?.stop()
})

describe("admin dashboard (GET /)", () => {
  it("is behind the admin token: a cookie from GET /?token=, and the dashboard header on /admin/*", async () => {
    expect((await fetch(`${proxy.adminUrl}/`)).status).toBe(401)
    expect((await fetch(`${proxy.adminUrl}/?token=wrong`, { redirect: "manual" })).status).toBe(401)
    const login = await fetch(`${proxy.adminUrl}/?token=${token}`, { redirect: "manual" })
    expect(login.status).toBe(303)
    expect(login.headers.get("location")).toBe("/")
    const cookie = login.headers.get("set-cookie")!.split(";")[0]!
    expect(login.headers.get("set-cookie")).toMatch(/HttpOnly; SameSite=Strict/)
    expect(login.headers.get("set-cookie")).not.toContain(token) // a derived session value (session.ts)
    const home = await fetch(`${proxy.adminUrl}/`, { headers: { cookie } })
    expect(home.status).toBe(200)
    expect(home.headers.get("content-security-policy")).toMatch(/default-src 'none'/)
    expect(await home.text()).toMatch(/<script>/)
    // The cookie alone does not reach the API: a cross-site form or image could send it, not this header.
    expect((await fetch(`${proxy.adminUrl}/admin/dashboard`, { headers: { cookie } })).status).toBe(401)
    const viaCookie = await fetch(`${proxy.adminUrl}/admin/dashboard`, {
      headers: { cookie, "x-polyproxy-dashboard": "1" }
    })
    expect(viaCookie.status).toBe(200)
    const viaBearer = await fetch(`${proxy.adminUrl}/admin/dashboard`, {
      headers: { authorization: `Bearer ${token}` }
    })
    const body = (await viaBearer.json()) as { version: string; workers: number; listeners: Record<string, unknown> }
    expect(body.version).toMatch(/^\d+\.\d+\.\d+/)
    expect(body.workers).toBe(1)
    expect(body.listeners).toHaveProperty("postgres")
  })

  it("shows the connections real clients hold, their resources and backend", async () => {
    // 3 sessions on appdb, 1 on reports, and one refused (no route) for the error counts.
    for (let i = 0; i < 3; i++) await connect("appdb")
    reports = await connect("reports")
    await reports.query("SELECT repeat('x', 20000)")
    await expect(connect("nowhere")).rejects.toThrow()
    // And 2 on the tcp listener (an echo backend).
    for (let i = 0; i < 2; i++) sockets.push(await echoSocket())

    const login = await page.goto(`${proxy.adminUrl}/?token=${token}`)
    expect(login?.status()).toBe(200)
    expect(page.url()).toBe(`${proxy.adminUrl}/`) // the token left the address bar
    await nextPoll()

    expect(await text("[data-listener=postgres] .active")).toBe("4")
    expect(await text("[data-listener=tcp] .active")).toBe("2")
    expect(await text("tr[data-resource=echo] .active")).toBe("2")
    expect(await text("tr[data-resource=appdb] .active")).toBe("3")
    expect(await text("tr[data-resource=reports] .active")).toBe("1")
    expect(await text("tr[data-resource=appdb] .backend")).toBe(table.appdb)
    expect(await text(`tr[data-backend="${table.appdb}"] .badge`)).toBe("closed")
    expect(await text("[data-listener=postgres] [data-reason=not_found]")).toBe("not_found 1")
    expect(await text("#meta")).toMatch(/1 process · pid \d+ .* ready/)

    // One more session: the page follows.
    await connect("appdb")
    await nextPoll()
    expect(await text("[data-listener=postgres] .active")).toBe("5")
    expect(await text("tr[data-resource=appdb] .active")).toBe("4")
  })

  it("purges a resource's route: its next connection asks the Resolver again", async () => {
    const before = resolves.appdb ?? 0
    await connect("appdb") // served from the routing cache
    expect(resolves.appdb).toBe(before)
    await page.locator("tr[data-resource=appdb] button.purge").click()
    await page.waitForFunction(
      () => (globalThis as unknown as PageGlobal).document.getElementById("last-purge")?.textContent === "appdb",
      null,
      {
        timeout: 5_000
      }
    )
    expect(await text("#toast")).toMatch(/Purged the route of “appdb”/)
    await connect("appdb")
    expect(resolves.appdb).toBe(before + 1)
  })

  it("shows the effective config with secrets redacted, and the version", async () => {
    const config = (await text("#config"))!
    expect(config).toContain('"token": "[redacted]"')
    expect(config).toContain("http://svc:***@127.0.0.1:1/routes")
    expect(config).not.toContain(token)
    expect(config).not.toContain("resolver-secret")
    expect(config).not.toContain("url-password")
    const version = JSON.parse(fs.readFileSync("package.json", "utf8")).version as string
    expect(await text("#version")).toBe(`v${version}`)
  })

  it("filters resources by search, and saves a screenshot while traffic flows", async () => {
    await page.locator("#search").fill("app")
    await nextPoll()
    expect(await page.locator("#resources tr[data-resource]").count()).toBe(1)
    await page.locator("#search").fill("")
    await page.evaluate(() => (globalThis as unknown as PageGlobal).document.activeElement?.blur?.())
    // Traffic for the charts and rates (queries, short sessions, refusals, echoes); the screenshot is taken meanwhile.
    const until = Date.now() + 9_000
    const traffic = (async () => {
      for (let tick = 0; Date.now() < until; tick++) {
        await reports.query("SELECT repeat('x', 200000)")
        sockets[tick % sockets.length]!.write("x".repeat(50_000))
        if (tick % 3 === 0) await (await connect("appdb")).end()
        if (tick % 4 === 1) await connect("nowhere").catch(() => {})
        await new Promise((r) => setTimeout(r, 150))
      }
    })()
    await new Promise((r) => setTimeout(r, 7_000))
    await page.mouse.move(1, 1)
    await nextPoll()
    fs.mkdirSync(outputDir, { recursive: true })
    const shot = path.join(outputDir, "dashboard.png")
    await page.screenshot({ path: shot, fullPage: true })
    await traffic
    expect(fs.statSync(shot).size).toBeGreaterThan(10_000)
    if (process.env.UPDATE_SCREENSHOTS === "1" || !fs.existsSync(docsShot)) {
      fs.mkdirSync(path.dirname(docsShot), { recursive: true })
      fs.copyFileSync(shot, docsShot)
    }
  })
})
