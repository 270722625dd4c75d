// Hot reload of the top-level `tls` (used by listeners without their own): flipping requireClientCert, by SIGHUP or
// POST /admin/reload, changes what the next clients of the postgres and HTTPS listeners experience, both ways, on the
// same ports, while a session opened before keeps running.
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import type * as net from "node:net"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type PostgresServer, startPostgres } from "../support/backends/index.ts"
import { type Certs, makeCerts } from "../support/certs.ts"
import { type CliProxy, startCliProxy } from "../support/cliProxy.ts"

let certs: Certs
let postgres: PostgresServer
let origin: http.Server
let proxy: CliProxy
/** What a reload reports: the TLS of both listeners reloaded in place, nothing restarted. */
const applied = ["listeners.http.tls reloaded", "listeners.postgres.tls reloaded"]

const config = (requireClientCert: boolean) => `admin: { host: 127.0.0.1, port: 0 }
listeners:
  postgres: { host: 127.0.0.1, port: 0 }
  http: { host: 127.0.0.1, port: 0 }
tls: { cert: ${certs.server.certPath}, key: ${certs.server.keyPath}, ca: ${certs.ca.certPath}, requireClientCert: ${requireClientCert} }
routes: { appdb: "127.0.0.1:${postgres.port}", localhost: "127.0.0.1:${(origin.address() as net.AddressInfo).port}" }
ssrf: { allow: ["127.0.0.0/8"] }
log: { format: json }
`

beforeAll(async () => {
  ;[certs, postgres] = await Promise.all([makeCerts(), startPostgres()])
  origin = http.createServer((_req, res) => res.end("origin"))
  await new Promise<void>((resolve) => origin.listen(0, "127.0.0.1", resolve))
  proxy = await startCliProxy(config(false))
})

afterAll(async () => {
  proxy?.stop()
  origin?.close()
  await postgres?.stop()
})

const pgClient = (withCert: boolean) =>
  new pg.Client({
    host: "127.0.0.1",
    port: proxy.port("postgres"),
    user: postgres.user,
    password: postgres.userPassword,
    database: "appdb",
    ssl: {
      ca: certs.ca.cert,
      servername: "localhost",
      ...(withCert ? { cert: certs.client.cert, key: certs.client.key } : {})
    }
  })

/** "ok" when `select 1` ran through the proxy, else the client's error message. */
const pgSelect = async (withCert: boolean): Promise<string> => {
  const c = pgClient(withCert)
  c.on("error", () => {})
  try {
    await c.connect()
  } catch (e) {
    // (end() would wait forever on a client that never connected)
    return (e as Error).message
  }
  try {
    const r = await c.query("select 1 as ok")
    return r.rows[0].ok === 1 ? "ok" : JSON.stringify(r.rows)
  } finally {
    await c.end()
  }
}

/** curl https://localhost/ through the proxy: the body, or "curl exit N". */
const curl = (withCert: boolean) =>
  new Promise<string>((resolve) => {
    const args = ["-sS", "--max-time", "10", "--cacert", certs.ca.certPath]
    if (withCert) args.push("--cert", certs.client.certPath, "--key", certs.client.keyPath)
    args.push(`https://localhost:${proxy.port("http")}/`)
    execFile("curl", args, { timeout: 15_000 }, (error, stdout) =>
      resolve(error ? `curl exit ${(error as { code?: number }).code}` : stdout)
    )
  })

describe("hot reload of the top-level tls.requireClientCert", () => {
  it("before: clients without a certificate are served", async () => {
    expect(await pgSelect(false)).toBe("ok")
    expect(await curl(false)).toBe("origin")
  })

  it("SIGHUP with requireClientCert: true refuses clients without a certificate; open sessions keep running", async () => {
    const open = pgClient(false)
    await open.connect()
    const ports = { postgres: proxy.port("postgres"), http: proxy.port("http") }
    fs.writeFileSync(proxy.file, config(true))
    await proxy.sighup()
    const reloaded = proxy
      .output()
      .split("\n")
      .findLast((l) => l.includes('"event":"config reloaded"'))
    expect((JSON.parse(reloaded!) as { applied: Array<string> }).applied.sort()).toEqual(applied)
    expect(await pgSelect(false)).toMatch(/certificate required/i)
    expect(await pgSelect(true)).toBe("ok")
    expect(await curl(false)).toMatch(/^curl exit \d+$/)
    expect(await curl(true)).toBe("origin")
    // Same ports (port 0 would bind new ones): applied in place, not by a restart.
    expect({ postgres: proxy.port("postgres"), http: proxy.port("http") }).toEqual(ports)
    const r = await open.query("select 2 as two")
    expect(r.rows).toEqual([{ two: 2 }])
    await open.end()
  })

  it("POST /admin/reload with requireClientCert: false serves clients without a certificate again", async () => {
    fs.writeFileSync(proxy.file, config(false))
    const report = (await (await fetch(`${proxy.adminUrl}/admin/reload`, { method: "POST" })).json()) as {
      applied: Array<string>
    }
    expect(report.applied.sort()).toEqual(applied)
    expect(await pgSelect(false)).toBe("ok")
    expect(await curl(false)).toBe("origin")
  })
})
