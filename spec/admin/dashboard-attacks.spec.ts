import * as http from "node:http"
import * as net from "node:net"
import type { Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Resolver } from "../../src/services/Resolver.ts"
import { type Browser, launchChromium } from "../support/chromium.ts"
import { echoServer, ping } from "../support/net.ts"
import { eventually, startTestProxy, type TestProxy } from "../support/proxy.ts"

/** What the page callbacks touch of the DOM (the specs compile without the DOM library). */
interface PageDocument {
  readonly body: { readonly dataset: Record<string, string | undefined> }
  getElementById(id: string): { readonly textContent: string | null } | null
}
type PageGlobal = { readonly document: PageDocument }

let backend: net.Server
let proxy: TestProxy
let evil: http.Server
let evilPort: number
let browser: Browser
let page: Page
let resolves = 0
const sockets: Array<net.Socket> = []

const adminPort = () => Number(new URL(proxy.adminUrl).port)
const ready = async () => (await fetch(`${proxy.adminUrl}/readyz`)).status
const refusals = () => proxy.logs.filter((l) => l.event === "admin request refused")

/** The attacker's pages: a form that posts itself, and no-cors fetches (the answers are opaque, the effect is not). */
const evilPage = (target: string, kind: string) => {
  if (kind === "form") {
    return `<!doctype html><form method="post" enctype="text/plain" action="${target}/admin/drain">
<input name="x" value="y"></form><script>document.forms[0].submit()</script>`
  }
  return `<!doctype html><script>
Promise.all(["/admin/purge?id=app", "/admin/reload", "/admin/drain"].map(function (p) {
  return fetch("${target}" + p, { method: "POST", mode: "no-cors", body: "x" }).then(function () { return "sent" }, String)
})).then(function (r) { document.title = r.join(",") })
</script>`
}

beforeAll(async () => {
  backend = await echoServer()
  const endpoint = `127.0.0.1:${(backend.address() as net.AddressInfo).port}`
  proxy = await startTestProxy(
    {
      admin: { host: "127.0.0.1", port: 0 },
      listeners: { tcp: { host: "127.0.0.1", port: 0, route: "app" } },
      ssrf: { allow: ["127.0.0.0/8"] },
      log: { connections: false }
    },
    Resolver.layerAsync({
      resolve: (id) => {
        resolves++
        return id === "app" ? { endpoint } : null
      }
    })
  )
  evil = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://evil.example")
    res.writeHead(200, { "content-type": "text/html" })
    res.end(evilPage(url.searchParams.get("target") ?? "", url.pathname.slice(1)))
  })
  await new Promise<void>((r) => evil.listen(0, "127.0.0.1", r))
  evilPort = (evil.address() as net.AddressInfo).port
  browser = await launchChromium({
    args: ["--host-resolver-rules=MAP evil.example 127.0.0.1, MAP *.evil.example 127.0.0.1"]
  })
  page = browser.page
})

afterAll(async () => {
  for (const s of sockets) s.destroy()
  await browser?.close()
  evil?.close()
  await proxy?.stop()
  backend?.close()
})

describe("admin without a token, in Chromium", () => {
  it("refuses a self-submitting form on another site: not drained", async () => {
    expect(await ping(proxy.port("tcp"))).toBe("ping")
    const target = `http://127.0.0.1:${adminPort()}`
    const landed = page.waitForResponse((r) => r.url() === `${target}/admin/drain`)
    await page.goto(`http://evil.example:${evilPort}/form?target=${encodeURIComponent(target)}`)
    const answer = await landed
    expect(answer.status()).toBe(403)
    // The browser's own request reached the admin, marked as what it was.
    expect(refusals()).toContainEqual(
      expect.objectContaining({
        path: "/admin/drain",
        origin: `http://evil.example:${evilPort}`,
        secFetchSite: "cross-site"
      })
    )
    expect(await ready()).toBe(200)
    expect(await ping(proxy.port("tcp"))).toBe("ping")
  })

  it("refuses no-cors fetches from another site: nothing purged, reloaded or drained", async () => {
    const before = refusals().length
    const target = `http://127.0.0.1:${adminPort()}`
    await page.goto(`http://evil.example:${evilPort}/fetch?target=${encodeURIComponent(target)}`)
    await page.waitForFunction(() => (globalThis as unknown as { document: { title: string } }).document.title !== "")
    expect(await page.title()).toBe("sent,sent,sent") // opaque answers: the page cannot tell, the proxy must
    await eventually(() => refusals().length >= before + 3)
    expect(
      refusals()
        .slice(before)
        .map((l) => l.path)
        .sort()
    ).toEqual(["/admin/drain", "/admin/purge", "/admin/reload"])
    expect(await ready()).toBe(200)
    expect(await ping(proxy.port("tcp"))).toBe("ping")
    expect(resolves).toBe(1) // the route is still cached: not purged
  })

  it("refuses a rebound name: the dashboard and its data are not served to it", async () => {
    const rebound = `http://rebind.evil.example:${adminPort()}`
    const home = await page.goto(`${rebound}/`)
    expect(home?.status()).toBe(403)
    // Same-origin now as far as the browser knows: its reads and a drain are refused all the same.
    const statuses = await page.evaluate(async () => {
      const out: Array<number> = []
      for (const [p, method] of [
        ["/admin/dashboard", "GET"],
        ["/admin/stats", "GET"],
        ["/admin/drain", "POST"]
      ] as const) {
        out.push((await fetch(p, { method, headers: { "x-polyproxy-dashboard": "1" } })).status)
      }
      return out
    })
    expect(statuses).toEqual([403, 403, 403])
    expect(await ready()).toBe(200)
  })

  it("keeps the operator's dashboard working on 127.0.0.1 and localhost, purge button included", async () => {
    // A held connection, so that the resource is listed with its purge button.
    const held = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(proxy.port("tcp"), "127.0.0.1", () => s.write("hello"))
      s.once("data", () => resolve(s))
      s.once("error", reject)
    })
    sockets.push(held)
    for (const base of [proxy.adminUrl, `http://localhost:${adminPort()}`]) {
      const home = await page.goto(`${base}/`)
      expect(home?.status(), base).toBe(200)
      await page.waitForFunction(
        () => Number((globalThis as unknown as PageGlobal).document.body.dataset.samples ?? 0) >= 1,
        null,
        { timeout: 5_000 }
      )
      expect(await page.locator("tr[data-resource=app] .active").first().textContent()).toBe("1")
    }
    const before = resolves
    await page.locator("tr[data-resource=app] button.purge").click()
    await page.waitForFunction(
      () => (globalThis as unknown as PageGlobal).document.getElementById("last-purge")?.textContent === "app",
      null,
      { timeout: 5_000 }
    )
    expect(await ping(proxy.port("tcp"))).toBe("ping")
    expect(resolves).toBe(before + 1)
  })
})
