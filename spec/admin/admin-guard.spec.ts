// The admin endpoint against what a web page can make the operator's browser send (issue 23 item 8), with real HTTP
// clients: undici (which, unlike fetch, lets a spec set Host as a browser would) and the curl CLI.
// - CSRF: a no-cors form post from another site (Origin, Sec-Fetch-Site, text/plain body) is refused, and nothing is
//   purged, reloaded or drained; the same request from the dashboard's own origin, or from curl, goes through.
// - DNS rebinding: the dashboard and /admin/* refuse a Host that is a foreign name; IP literals, localhost and
//   admin.allowedHosts pass; probes and Prometheus (/healthz /readyz /metrics) answer any Host.
// - With admin.token: the bearer token needs no Host check; the dashboard's cookie holds a derived session value.
import { execFile } from "node:child_process"
import type * as net from "node:net"
import { request } from "undici"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { newSession } from "../../src/admin/session.ts"
import { Resolver } from "../../src/services/Resolver.ts"
import { echoServer, ping } from "../support/net.ts"
import { startTestProxy, type TestProxy } from "../support/proxy.ts"

let open: TestProxy
let guarded: TestProxy
let backend: net.Server
let resolves = 0
const token = "admin-t0ken-for-specs"

beforeAll(async () => {
  backend = await echoServer()
  const endpoint = `127.0.0.1:${(backend.address() as net.AddressInfo).port}`
  const resolver = Resolver.layerAsync({
    resolve: (id) => {
      resolves++
      return id === "app" ? { endpoint } : null
    }
  })
  // No token, as the issue found it: loopback admin, a tcp listener to show whether a drain happened.
  open = await startTestProxy(
    {
      admin: { host: "127.0.0.1", port: 0, allowedHosts: ["polyproxy-admin.example.test", "*.ops.example.test"] },
      listeners: { tcp: { host: "127.0.0.1", port: 0, route: "app" } },
      ssrf: { allow: ["127.0.0.0/8"] },
      log: { connections: false }
    },
    resolver
  )
  guarded = await startTestProxy({ admin: { host: "127.0.0.1", port: 0, token }, log: { connections: false } })
})

afterAll(async () => {
  await open?.stop()
  await guarded?.stop()
  backend?.close()
})

const portOf = (p: TestProxy) => Number(new URL(p.adminUrl).port)

interface Answer {
  readonly status: number
  readonly headers: Record<string, string | string[] | undefined>
  readonly body: string
}

/** One request with exactly these headers (Host included), as a browser or a probe would send it. */
const send = async (
  p: TestProxy,
  path: string,
  headers: Record<string, string>,
  method: "GET" | "POST" = "GET",
  body?: string
): Promise<Answer> => {
  const r = await request(`${p.adminUrl}${path}`, { method, headers, ...(body === undefined ? {} : { body }) })
  return { status: r.statusCode, headers: r.headers, body: await r.body.text() }
}

/** The headers of a no-cors form post (`<form method=post enctype=text/plain>`) from a page on evil.example. */
const formPost = (host: string) => ({
  host,
  origin: "http://evil.example",
  "content-type": "text/plain",
  "sec-fetch-site": "cross-site",
  "sec-fetch-mode": "navigate",
  "sec-fetch-dest": "document"
})

const curl = (args: ReadonlyArray<string>) =>
  new Promise<{ status: number; body: string }>((resolve, reject) =>
    execFile("curl", ["-sS", "-o", "-", "-w", "\n%{http_code}", ...args], { timeout: 10_000 }, (err, stdout) => {
      if (err) return reject(err)
      const cut = stdout.lastIndexOf("\n")
      resolve({ status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) })
    })
  )

const ready = async () => (await send(open, "/readyz", {})).status

describe("admin endpoint: cross-origin state changes (CSRF)", () => {
  it("refuses a no-cors form post from another site: nothing is purged, reloaded or drained", async () => {
    expect(await ping(open.port("tcp"))).toBe("ping")
    expect(resolves).toBe(1)
    const self = `127.0.0.1:${portOf(open)}`
    for (const path of ["/admin/purge?id=app", "/admin/reload", "/admin/drain"]) {
      // A current browser: Origin and Sec-Fetch-Site say where the form came from.
      const modern = await send(open, path, formPost(self), "POST", "x=y")
      expect(modern.status, path).toBe(403)
      expect(JSON.parse(modern.body)).toEqual({ error: expect.stringMatching(/^cross-site request refused/) })
      // Origin alone (no Sec-Fetch-* metadata).
      const { "sec-fetch-site": _, "sec-fetch-mode": __, "sec-fetch-dest": ___, ...originOnly } = formPost(self)
      expect((await send(open, path, originOnly, "POST", "x=y")).status, path).toBe(403)
      // A browser too old to send Origin on a form post: its body type gives it away.
      const old = await send(open, path, { host: self, "content-type": "text/plain" }, "POST", "x=y")
      expect(old.status, path).toBe(415)
      for (const type of ["application/x-www-form-urlencoded", "multipart/form-data; boundary=b"]) {
        expect((await send(open, path, { host: self, "content-type": type }, "POST", "x=y")).status).toBe(415)
      }
      // The exact request: a rebinding Host as well.
      expect((await send(open, path, formPost("rebind.evil.example"), "POST", "x=y")).status, path).toBe(403)
      // Origin "null" (sandboxed frame, data: URL) and a sibling port are not the admin's origin either.
      for (const origin of ["null", `http://127.0.0.1:${portOf(open) + 1}`, `https://${self}x`]) {
        expect((await send(open, path, { host: self, origin }, "POST")).status, origin).toBe(403)
      }
    }
    expect(await ready()).toBe(200)
    expect(await ping(open.port("tcp"))).toBe("ping")
    expect(resolves).toBe(1) // still cached: the purge did not happen
    const refused = open.logs.filter((l) => l.event === "admin request refused")
    expect(refused).toContainEqual(
      expect.objectContaining({ level: "warn", path: "/admin/drain", origin: "http://evil.example", status: 403 })
    )
  })

  it("accepts the dashboard's own same-origin POST, and a JSON body", async () => {
    const self = `127.0.0.1:${portOf(open)}`
    const page = await send(
      open,
      "/admin/purge?id=app",
      { host: self, origin: `http://${self}`, "sec-fetch-site": "same-origin", "x-polyproxy-dashboard": "1" },
      "POST"
    )
    expect(page.status).toBe(200)
    expect(JSON.parse(page.body)).toEqual({ purged: "app" })
    expect(await ping(open.port("tcp"))).toBe("ping")
    expect(resolves).toBe(2)
    // localhost is the admin's own name as well; a TLS proxy in front makes Origin https on the default port.
    const local = `localhost:${portOf(open)}`
    expect((await send(open, "/admin/purge?id=app", { host: local, origin: `http://${local}` }, "POST")).status).toBe(
      200
    )
    const ingress = { host: "polyproxy-admin.example.test", origin: "https://polyproxy-admin.example.test" }
    expect((await send(open, "/admin/purge?id=app", ingress, "POST")).status).toBe(200)
    const json = { host: self, "content-type": "application/json" }
    expect((await send(open, "/admin/purge?id=app", json, "POST", "{}")).status).toBe(200)
  })
})

describe("admin endpoint: Host check (DNS rebinding)", () => {
  it("refuses a foreign name as Host on the dashboard and its data endpoints", async () => {
    for (const path of ["/", "/admin/dashboard", "/admin/stats", "/admin/backends", "/nowhere"]) {
      for (const host of [
        `rebind.evil.example:${portOf(open)}`,
        "rebind.evil.example",
        "localhost.evil.example",
        "a.b.ops.example.test", // the wildcard allows one label
        "polyproxy-admin.example.test.evil.example",
        "127.0.0.1.evil.example",
        "bad host"
      ]) {
        const r = await send(open, path, { host })
        expect(r.status, `${host} ${path}`).toBe(403)
        expect(r.headers["content-type"]).toBe("application/json")
        expect(JSON.parse(r.body)).toEqual({ error: expect.stringMatching(/Host is not allowed/) })
      }
    }
  })

  it("answers IP literals, localhost and admin.allowedHosts", async () => {
    const port = portOf(open)
    for (const host of [
      `127.0.0.1:${port}`,
      `10.244.1.7:${port}`,
      "[fd00::7]:9090",
      `localhost:${port}`,
      "LOCALHOST.",
      "polyproxy-admin.example.test:8443",
      "grafana.ops.example.test"
    ]) {
      const r = await send(open, "/admin/dashboard", { host })
      expect(r.status, host).toBe(200)
      expect(JSON.parse(r.body)).toHaveProperty("listeners")
    }
    expect((await send(open, "/", { host: `127.0.0.1:${port}` })).body).toMatch(/<script>/)
  })

  it("answers probes and Prometheus whatever Host they send (read-only, no Host check)", async () => {
    // kubelet: the pod IP and port; Prometheus: the target it was given, an IP or a Service name.
    for (const host of ["10.244.1.7:9090", "[fd00::7]:9090", "polyproxy-admin.monitoring.svc:9090", "x.evil.example"]) {
      expect((await send(open, "/healthz", { host, "user-agent": "kube-probe/1.31" })).status, host).toBe(200)
      expect((await send(open, "/readyz", { host, "user-agent": "kube-probe/1.31" })).status, host).toBe(200)
      const metrics = await send(open, "/metrics", { host, "user-agent": "Prometheus/3.0.0" })
      expect(metrics.status, host).toBe(200)
      expect(metrics.body).toMatch(/^# (HELP|TYPE) polyproxy_/m)
    }
  })
})

describe("admin endpoint: tools keep working", () => {
  it("curl without Origin: GET the data endpoints, POST purge, then drain", async () => {
    const base = open.adminUrl
    const stats = await curl([`${base}/admin/stats`])
    expect(stats.status).toBe(200)
    expect(JSON.parse(stats.body)).toHaveProperty("cache")
    const before = resolves
    const purge = await curl(["-X", "POST", `${base}/admin/purge?id=app`])
    expect(purge.status).toBe(200)
    expect(JSON.parse(purge.body)).toEqual({ purged: "app" })
    expect(await ping(open.port("tcp"))).toBe("ping")
    expect(resolves).toBe(before + 1)
    // A form-typed body from a tool gets a reason it can act on.
    const form = await curl(["-X", "POST", "-d", "", `${base}/admin/purge?id=app`])
    expect(form.status).toBe(415)
    expect(JSON.parse(form.body).error).toMatch(/no form body/)
    const drain = await curl(["-X", "POST", `${base}/admin/drain`])
    expect(drain.status).toBe(200)
    expect(await ready()).toBe(503)
  })
})

describe("admin endpoint with admin.token", () => {
  it("takes the bearer token under any Host (a page cannot know it), and still refuses a foreign Origin", async () => {
    const auth = { authorization: `Bearer ${token}` }
    const viaService = await send(guarded, "/admin/stats", { ...auth, host: "polyproxy-admin.prod.svc:9090" })
    expect(viaService.status).toBe(200)
    expect((await send(guarded, "/admin/stats", { host: "polyproxy-admin.prod.svc:9090" })).status).toBe(403)
    expect((await send(guarded, "/admin/stats", { host: `127.0.0.1:${portOf(guarded)}` })).status).toBe(401)
    const foreign = { ...auth, host: `127.0.0.1:${portOf(guarded)}`, origin: "http://evil.example" }
    expect((await send(guarded, "/admin/purge?id=x", foreign, "POST")).status).toBe(403)
    // With the token a form-typed body is no browser's doing: accepted.
    const form = { ...auth, host: `127.0.0.1:${portOf(guarded)}`, "content-type": "application/x-www-form-urlencoded" }
    expect((await send(guarded, "/admin/purge?id=x", form, "POST", "")).status).toBe(200)
  })

  it("keeps a derived session value in the dashboard's cookie, never the token", async () => {
    const host = `127.0.0.1:${portOf(guarded)}`
    const login = await send(guarded, `/?token=${token}`, { host })
    expect(login.status).toBe(303)
    const setCookie = String(login.headers["set-cookie"])
    expect(setCookie).toMatch(/; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200$/)
    expect(setCookie).not.toContain(token)
    expect(setCookie).not.toContain(encodeURIComponent(token))
    const cookie = setCookie.split(";")[0]!
    const [name, value] = cookie.split("=") as [string, string]
    expect(value).toMatch(/^\d+\.[A-Za-z0-9_-]{43}$/)
    const api = (c: string, h = host) =>
      send(guarded, "/admin/dashboard", { host: h, cookie: c, "x-polyproxy-dashboard": "1" })
    expect((await api(cookie)).status).toBe(200)
    expect((await send(guarded, "/", { host, cookie })).status).toBe(200)
    // The cookie does not stand in for a bearer token, nor open anything under a rebound Host.
    expect((await send(guarded, "/admin/stats", { host, authorization: `Bearer ${value}` })).status).toBe(401)
    expect((await api(cookie, "rebind.evil.example")).status).toBe(403)
    // The old cookie (the raw token), a forged MAC, an expired session and another token's session are refused.
    const [expires, mac] = value.split(".") as [string, string]
    const flipped = `${mac.slice(0, -2)}${mac.at(-2) === "A" ? "B" : "A"}${mac.at(-1)}`
    for (const bad of [
      token,
      `${expires}.${flipped}`,
      `${Number(expires) + 3600}.${mac}`,
      newSession(token, Date.now() - 13 * 3600 * 1000),
      newSession("another-token")
    ]) {
      expect((await api(`${name}=${bad}`)).status, bad).toBe(401)
      expect((await send(guarded, "/", { host, cookie: `${name}=${bad}` })).status, bad).toBe(401)
    }
  })
})

describe("admin.insecure", () => {
  it("starts a non-loopback admin without a token, says so in the log, and still guards against browsers", async () => {
    const p = await startTestProxy({ admin: { host: "0.0.0.0", port: 0, insecure: true }, log: { connections: false } })
    try {
      expect(p.logs).toContainEqual(
        expect.objectContaining({
          level: "warn",
          event: expect.stringMatching(/without admin\.token/),
          host: "0.0.0.0"
        })
      )
      expect((await send(p, "/admin/stats", { host: `127.0.0.1:${portOf(p)}` })).status).toBe(200)
      expect((await send(p, "/admin/stats", { host: "rebind.evil.example" })).status).toBe(403)
      expect((await send(p, "/admin/drain", formPost(`127.0.0.1:${portOf(p)}`), "POST", "x")).status).toBe(403)
      expect((await send(p, "/readyz", {})).status).toBe(200)
    } finally {
      await p.stop()
    }
  })
})
