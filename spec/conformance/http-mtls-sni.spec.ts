// mTLS on the HTTPS listener with per-SNI certificates: every server name, whichever certificate serves it, checks
// client certificates against the configured `ca` only. The proxy runs with NODE_EXTRA_CA_CERTS naming a foreign CA,
// which stands for the public CAs of Node's default root store: a client certificate from it must be refused.
import { execFile } from "node:child_process"
import * as http from "node:http"
import type * as net from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Certs, makeCerts, makeSiteCerts, type SiteCerts } from "../support/certs.ts"
import { type CliProxy, startCliProxy } from "../support/cliProxy.ts"

let certs: Certs
let site: SiteCerts
let proxy: CliProxy
let origin: http.Server
/** Host headers the origin received: a request that reached it was let through. */
const reached: Array<string> = []

beforeAll(async () => {
  ;[certs, site] = await Promise.all([makeCerts(), makeSiteCerts(["a.tenant.test", "*.wild.test"])])
  origin = http.createServer((req, res) => {
    reached.push(req.headers.host ?? "")
    res.end(`origin for ${req.headers.host}`)
  })
  await new Promise<void>((resolve) => origin.listen(0, "127.0.0.1", resolve))
  const backend = `127.0.0.1:${(origin.address() as net.AddressInfo).port}`
  proxy = await startCliProxy(
    `admin: { host: 127.0.0.1, port: 0 }
listeners:
  http:
    host: 127.0.0.1
    port: 0
    tls: { cert: ${certs.server.certPath}, key: ${certs.server.keyPath}, ca: ${certs.ca.certPath}, requireClientCert: true }
    certificates: [{ cert: ${site.server.certPath}, key: ${site.server.keyPath} }]
routes: { "a.tenant.test": "${backend}", "*.wild.test": "${backend}", localhost: "${backend}" }
ssrf: { allow: ["127.0.0.0/8"] }
log: { format: json }
`,
    { NODE_EXTRA_CA_CERTS: certs.rogueCa.certPath }
  )
})

afterAll(() => {
  proxy?.stop()
  origin?.close()
})

interface CurlResult {
  readonly exitCode: number
  readonly body: string
}

/** curl to https://<name>/ through the proxy, trusting `serverCa`, presenting `client` if given. */
const curl = (name: string, serverCa: string, client?: { certPath: string; keyPath: string }) =>
  new Promise<CurlResult>((resolve) => {
    const port = proxy.port("http")
    const args = [
      "-sS",
      "--max-time",
      "10",
      "--resolve",
      `${name}:${port}:127.0.0.1`,
      "--cacert",
      serverCa,
      ...(client ? ["--cert", client.certPath, "--key", client.keyPath] : []),
      `https://${name}:${port}/`
    ]
    execFile("curl", args, { timeout: 15_000 }, (error, stdout) =>
      resolve({ exitCode: error ? ((error as { code?: number }).code ?? -1) : 0, body: stdout })
    )
  })

// The exact SNI name, a wildcard one (both served by the site's certificate) and the default certificate.
const names = [
  { name: "a.tenant.test", serverCa: () => site.ca.certPath },
  { name: "x.wild.test", serverCa: () => site.ca.certPath },
  { name: "localhost", serverCa: () => certs.ca.certPath }
]

describe("HTTPS mTLS with per-SNI certificates", () => {
  for (const { name, serverCa } of names) {
    it(`${name}: a certificate from the configured CA reaches the origin`, async () => {
      const r = await curl(name, serverCa(), certs.client)
      expect(r).toEqual({ exitCode: 0, body: `origin for ${name}:${proxy.port("http")}` })
    })

    it(`${name}: a certificate from a CA in Node's root store, but not the configured one, is refused`, async () => {
      const before = reached.length
      const r = await curl(name, serverCa(), certs.rogueClient)
      expect(r.exitCode).not.toBe(0)
      expect(r.body).toBe("")
      expect(reached.length).toBe(before)
    })

    it(`${name}: no certificate is refused`, async () => {
      const before = reached.length
      const r = await curl(name, serverCa())
      expect(r.exitCode).not.toBe(0)
      expect(reached.length).toBe(before)
    })
  }
})
