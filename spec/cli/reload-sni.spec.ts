// Hot reload of the HTTP listener's per-name certificates (`listeners.http.certificates`): a renewed certificate file
// (same path, new content) and a changed list are both served to the next handshakes, as `openssl s_client
// -servername …` sees them, on the same port (in place, no restart), while a connection opened before keeps working.
import { execFile } from "node:child_process"
import { X509Certificate } from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import type * as net from "node:net"
import * as path from "node:path"
import * as tls from "node:tls"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { tenantCert } from "../listeners/http/certs.ts"
import { makeTempDir } from "../support/backends/local.ts"
import { type Certs, makeCerts, type PemPair } from "../support/certs.ts"
import { type CliProxy, startCliProxy } from "../support/cliProxy.ts"

let certs: Certs
let origin: http.Server
let proxy: CliProxy
/** The files the config names: renewing a certificate rewrites them. */
const dir = makeTempDir("reload-sni")
const tenantFiles = { cert: path.join(dir, "tenant.crt"), key: path.join(dir, "tenant.key") }
let first: PemPair
let renewed: PemPair
let other: PemPair

const config = (extra: PemPair | undefined) => `admin: { host: 127.0.0.1, port: 0 }
listeners:
  http:
    host: 127.0.0.1
    port: 0
    tls: { cert: ${certs.server.certPath}, key: ${certs.server.keyPath} }
    certificates:
      - { cert: ${tenantFiles.cert}, key: ${tenantFiles.key} }
${extra === undefined ? "" : `      - { cert: ${extra.certPath}, key: ${extra.keyPath} }\n`}routes:
  tenant.example: "127.0.0.1:${(origin.address() as net.AddressInfo).port}"
  other.example: "127.0.0.1:${(origin.address() as net.AddressInfo).port}"
ssrf: { allow: ["127.0.0.0/8"] }
log: { format: json }
`

const install = (pair: PemPair) => {
  fs.writeFileSync(tenantFiles.cert, pair.cert)
  fs.writeFileSync(tenantFiles.key, pair.key)
}

beforeAll(async () => {
  certs = await makeCerts()
  ;[first, renewed, other] = await Promise.all([
    tenantCert(certs, "tenant-first", ["tenant.example"]),
    tenantCert(certs, "tenant-renewed", ["tenant.example"]),
    tenantCert(certs, "other", ["other.example"])
  ])
  install(first)
  origin = http.createServer((_req, res) => res.end("origin"))
  await new Promise<void>((resolve) => origin.listen(0, "127.0.0.1", resolve))
  proxy = await startCliProxy(config(undefined))
})

afterAll(() => {
  proxy?.stop()
  origin?.close()
})

const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256

/** The fingerprint of the certificate `openssl s_client -servername <name>` is served on the HTTP port. */
const served = (servername: string) =>
  new Promise<string>((resolve, reject) => {
    const child = execFile(
      "openssl",
      ["s_client", "-connect", `127.0.0.1:${proxy.port("http")}`, "-servername", servername],
      { timeout: 15_000 },
      (_error, stdout) => {
        const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(stdout)?.[0]
        if (pem === undefined) reject(new Error(`no certificate from openssl s_client:\n${stdout}`))
        else resolve(fingerprint(pem))
      }
    )
    child.stdin!.end()
  })

/** A kept-alive HTTPS connection to tenant.example: `get()` sends one more request on it. */
const openConnection = async () => {
  const socket = tls.connect({
    host: "127.0.0.1",
    port: proxy.port("http"),
    servername: "tenant.example",
    ca: certs.ca.cert
  })
  await new Promise<void>((resolve, reject) => {
    socket.once("secureConnect", resolve)
    socket.once("error", reject)
  })
  const get = () =>
    new Promise<string>((resolve, reject) => {
      let answer = ""
      const onData = (d: Buffer) => {
        answer += d
        if (answer.endsWith("\r\n\r\norigin")) {
          socket.off("data", onData)
          resolve(answer.slice(0, answer.indexOf("\r\n")))
        }
      }
      socket.on("data", onData)
      socket.once("error", reject)
      socket.write("GET / HTTP/1.1\r\nHost: tenant.example\r\n\r\n")
    })
  return { socket, get }
}

const lastReload = () =>
  JSON.parse(
    proxy
      .output()
      .split("\n")
      .findLast((l) => l.includes('"event":"config reloaded"'))!
  ) as { applied: Array<string>; needsRestart: Array<string> }

describe("hot reload of per-name (SNI) certificates", () => {
  it("serves each name its own certificate, others the listener's default", async () => {
    expect(await served("tenant.example")).toBe(fingerprint(first.cert))
    expect(await served("other.example")).toBe(fingerprint(certs.server.cert))
  })

  it("SIGHUP after renewing a certificate file in place: new handshakes get the new one, open connections stay", async () => {
    const port = proxy.port("http")
    const open = await openConnection()
    expect(await open.get()).toBe("HTTP/1.1 200 OK")
    install(renewed)
    await proxy.sighup()
    expect(lastReload().applied).toEqual(["listeners.http.tls reloaded"])
    expect(await served("tenant.example")).toBe(fingerprint(renewed.cert))
    expect(proxy.port("http")).toBe(port)
    // Opened before the reload: still served, with the certificate it negotiated.
    expect(await open.get()).toBe("HTTP/1.1 200 OK")
    expect(open.socket.getPeerX509Certificate()?.fingerprint256).toBe(fingerprint(first.cert))
    open.socket.destroy()
  })

  it("POST /admin/reload with a changed certificates list applies it in place", async () => {
    const port = proxy.port("http")
    const open = await openConnection()
    fs.writeFileSync(proxy.file, config(other))
    const report = (await (await fetch(`${proxy.adminUrl}/admin/reload`, { method: "POST" })).json()) as {
      applied: Array<string>
      needsRestart: Array<string>
    }
    expect(report).toEqual({ applied: ["listeners.http.tls reloaded"], needsRestart: [] })
    expect(await served("other.example")).toBe(fingerprint(other.cert))
    expect(await served("tenant.example")).toBe(fingerprint(renewed.cert))
    expect(proxy.port("http")).toBe(port)
    expect(await open.get()).toBe("HTTP/1.1 200 OK")
    open.socket.destroy()
  })

  it("a reload naming a certificate that cannot be read is refused; the running certificates stay", async () => {
    fs.writeFileSync(proxy.file, config({ ...other, certPath: path.join(dir, "missing.crt") }))
    const answer = await fetch(`${proxy.adminUrl}/admin/reload`, { method: "POST" })
    expect(answer.ok).toBe(false)
    expect(((await answer.json()) as { error: string }).error).toContain("listeners.http.certificates.1.cert")
    expect(await served("other.example")).toBe(fingerprint(other.cert))
    expect(await served("tenant.example")).toBe(fingerprint(renewed.cert))
  })
})
