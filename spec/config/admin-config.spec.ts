// admin.allowedHosts, admin.insecure, and the rule that an admin reachable from the network needs admin.token: in the
// decoder, from the environment, and through `polyproxy serve` / `check-config` with the image's own default config.
import { type ChildProcess, execFile, spawn, spawnSync } from "node:child_process"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { decodeConfig } from "../../src/config/decode.ts"
import { applyEnv } from "../../src/config/env.ts"
import { configErrorOf } from "../support/config.ts"

const decode = (admin: unknown) => decodeConfig({ admin }, process.cwd()).admin
const errorOf = configErrorOf

describe("admin config", () => {
  it("refuses a non-loopback admin without a token, naming the three ways out", () => {
    for (const host of ["0.0.0.0", "::", "10.0.0.5", "admin.internal"]) {
      const e = errorOf(() => decode({ host }))
      expect(e.key).toBe("admin.token")
      expect(e.message).toContain(`admin.host (${host}) is not a loopback address`)
      expect(e.message).toMatch(/POLYPROXY_ADMIN_TOKEN.*127\.0\.0\.1.*admin\.insecure: true/)
    }
    expect(decode({ host: "0.0.0.0", token: "t" })).toMatchObject({ host: "0.0.0.0", token: "t" })
    expect(decode({ host: "0.0.0.0", insecure: true })).toMatchObject({ host: "0.0.0.0", insecure: true })
    for (const host of ["127.0.0.1", "127.1.2.3", "::1", "localhost", "::ffff:127.0.0.1"]) {
      expect(decode({ host })?.host).toBe(host)
    }
    expect(decode(undefined)).toMatchObject({ host: "127.0.0.1", port: 9090 })
    expect(errorOf(() => decode({ host: "0.0.0.0", insecure: "yes" })).key).toBe("admin.insecure")
    expect(errorOf(() => decode({ token: "" })).key).toBe("admin.token")
  })

  it("takes allowedHosts as names or one-label wildcards, without ports", () => {
    expect(
      decode({ allowedHosts: ["Admin.Example.com", "*.ops.example.com", "polyproxy-admin"] })?.allowedHosts
    ).toEqual(["admin.example.com", "*.ops.example.com", "polyproxy-admin"])
    for (const bad of [
      ["admin.example.com:9090"],
      ["http://admin.example.com"],
      ["*"],
      ["a.*.example.com"],
      "x",
      [1]
    ]) {
      const e = errorOf(() => decode({ allowedHosts: bad }))
      expect(e.key, JSON.stringify(bad)).toBe("admin.allowedHosts")
      expect(e.message).toMatch(/expected a list of host names/)
    }
  })

  it("reads POLYPROXY_ADMIN_ALLOWED_HOSTS (comma list) and POLYPROXY_ADMIN_INSECURE", () => {
    const raw = applyEnv(
      { admin: { host: "0.0.0.0" } },
      { POLYPROXY_ADMIN_ALLOWED_HOSTS: "a.example.com, *.b.example.com", POLYPROXY_ADMIN_INSECURE: "true" },
      "/"
    )
    expect(decodeConfig(raw, "/").admin).toMatchObject({
      allowedHosts: ["a.example.com", "*.b.example.com"],
      insecure: true
    })
  })
})

// ---- the CLI with deploy/docker/polyproxy.yaml, the image's default config ----

const cli = path.resolve("src/cli.ts")
const imageConfig = path.resolve("deploy/docker/polyproxy.yaml")
/** Every port of the image's config moved to "any free one", so the spec runs beside anything. */
const anyPorts = {
  POLYPROXY_ADMIN_PORT: "0",
  POLYPROXY_LISTENERS_POSTGRES_PORT: "0",
  POLYPROXY_LISTENERS_MYSQL_PORT: "0",
  POLYPROXY_LISTENERS_MONGODB_PORT: "0",
  POLYPROXY_LISTENERS_SMTP_PORT: "0",
  POLYPROXY_LISTENERS_HTTP_PORT: "0"
}
/** This machine's first non-loopback IPv4 address: what a kubelet's probe would dial (the pod IP). */
const podIp = Object.values(os.networkInterfaces())
  .flat()
  .find((a) => a !== undefined && a.family === "IPv4" && !a.internal)?.address
const children: Array<ChildProcess> = []
afterAll(() => {
  for (const c of children) c.kill("SIGKILL")
})

const curlStatus = (args: ReadonlyArray<string>) =>
  new Promise<number>((resolve, reject) =>
    execFile("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", ...args], { timeout: 10_000 }, (err, out) =>
      err ? reject(err) : resolve(Number(out))
    )
  )

describe("the image's default config (admin on 0.0.0.0)", () => {
  it("serve and check-config refuse it without a token (exit 2, the fix named)", () => {
    const env: NodeJS.ProcessEnv = { ...process.env, ...anyPorts }
    delete env.POLYPROXY_ADMIN_TOKEN
    for (const args of [
      ["serve", "--config", imageConfig],
      ["check-config", imageConfig]
    ]) {
      const r = spawnSync(process.execPath, [cli, ...args], { encoding: "utf8", env, timeout: 20_000 })
      expect(r.status, args[0]).toBe(2)
      expect(r.stderr).toContain("admin.token: required when admin.host (0.0.0.0) is not a loopback address")
      expect(r.stderr).toContain("POLYPROXY_ADMIN_TOKEN")
    }
  })

  // A probe must come from another address than loopback to mean anything; a host without one cannot show it.
  it.skipIf(podIp === undefined)(
    "with POLYPROXY_ADMIN_TOKEN it starts; probes on the machine's own IP pass, a rebinding Host does not",
    async () => {
      const child = spawn(process.execPath, [cli, "serve", "--config", imageConfig], {
        env: { ...process.env, ...anyPorts, POLYPROXY_ADMIN_TOKEN: "image-token" },
        stdio: ["ignore", "pipe", "pipe"]
      })
      children.push(child)
      let out = ""
      child.stdout!.on("data", (d) => (out += d))
      child.stderr!.on("data", (d) => (out += d))
      const deadline = Date.now() + 15_000
      let port: number | undefined
      while (port === undefined) {
        if (Date.now() > deadline) throw new Error(`serve did not start:\n${out}`)
        port = Number(/"event":"admin listening".*?"port":(\d+)/.exec(out)?.[1]) || undefined
        await new Promise((r) => setTimeout(r, 50))
      }
      // curl sends Host: <pod IP>:<port>, as a kubelet's httpGet probe and Prometheus' pod discovery do.
      const base = `http://${podIp}:${port}`
      expect(await curlStatus([`${base}/healthz`])).toBe(200)
      expect(await curlStatus([`${base}/readyz`])).toBe(200)
      expect(await curlStatus([`${base}/metrics`])).toBe(200)
      expect(await curlStatus([`${base}/admin/stats`])).toBe(401)
      expect(await curlStatus(["-H", "Authorization: Bearer image-token", `${base}/admin/stats`])).toBe(200)
      expect(await curlStatus([`${base}/`])).toBe(401) // the token form
      expect(await curlStatus(["-H", `Host: rebind.evil.example:${port}`, `${base}/`])).toBe(403)
    }
  )
})
