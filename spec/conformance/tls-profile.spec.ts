// The TLS profile of every listener that terminates TLS (Mozilla "intermediate": TLS 1.2+, AEAD suites with ECDHE for
// TLS 1.2, no client-initiated renegotiation), its `ciphers` / `minVersion` overrides, and testssl.sh's verdict on the
// postgres (STARTTLS) and HTTPS listeners.
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import type * as tls from "node:tls"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeTempDir } from "../support/backends/local.ts"
import { type Certs, makeCerts } from "../support/certs.ts"
import { startTestProxy, type TestProxy } from "../support/proxy.ts"
import { openTls, type TlsEntry } from "../support/starttls.ts"

let certs: Certs
/** Every TLS listener on the default profile (the shared top-level `tls`). */
let proxy: TestProxy
/** postgres with `minVersion: TLSv1.3`, http with `ciphers` that let one CBC suite back in. */
let custom: TestProxy

beforeAll(async () => {
  certs = await makeCerts()
  const files = { cert: certs.server.certPath, key: certs.server.keyPath }
  const listener = { host: "127.0.0.1", port: 0 }
  ;[proxy, custom] = await Promise.all([
    startTestProxy({
      listeners: { postgres: listener, mysql: listener, mongodb: listener, smtp: listener, http: listener },
      tls: files
    }),
    startTestProxy({
      listeners: {
        postgres: { ...listener, tls: { ...files, minVersion: "TLSv1.3" } },
        http: { ...listener, tls: { ...files, ciphers: "TLS_AES_128_GCM_SHA256:ECDHE-ECDSA-AES128-SHA256" } }
      }
    })
  ])
})

afterAll(async () => {
  await Promise.all([proxy?.stop(), custom?.stop()])
})

const listeners: ReadonlyArray<readonly [string, TlsEntry]> = [
  ["postgres", "postgres"],
  ["mysql", "mysql"],
  ["mongodb", "direct"],
  ["smtp", "smtp"],
  ["http", "direct"]
]

const tls12 = { minVersion: "TLSv1.2", maxVersion: "TLSv1.2" } as const
/** A CBC suite with ECDHE and the test certificate's ECDSA key: offered before the profile, refused now. */
const cbc = "ECDHE-ECDSA-AES128-SHA256"

const failure = (p: Promise<tls.TLSSocket>): Promise<string> =>
  p.then(
    (s) => {
      s.destroy()
      return "handshake succeeded"
    },
    (e: Error) => e.message
  )

/** Asks for a TLS 1.2 renegotiation: "renegotiated" when the server went along, else the client's error. */
const renegotiate = (s: tls.TLSSocket) =>
  new Promise<string>((resolve) => {
    s.once("error", (e) => resolve(e.message))
    s.once("close", () => resolve("closed"))
    if (!s.renegotiate({}, (e) => resolve(e ? e.message : "renegotiated"))) resolve("renegotiate() refused locally")
  })

describe("default TLS profile on every listener", () => {
  for (const [name, entry] of listeners) {
    it(`${name}: TLS 1.2 with an AEAD ECDHE suite; CBC suites refused; no client renegotiation`, async () => {
      const port = proxy.port(name)
      const s = await openTls(entry, port, tls12)
      expect(s.getProtocol()).toBe("TLSv1.2")
      expect(s.getCipher().name).toBe("ECDHE-ECDSA-AES128-GCM-SHA256")
      expect(await renegotiate(s)).toMatch(/no renegotiation/i)
      s.destroy()
      expect(await failure(openTls(entry, port, { ...tls12, ciphers: cbc }))).toMatch(/handshake failure/i)
      const modern = await openTls(entry, port)
      expect(modern.getProtocol()).toBe("TLSv1.3")
      modern.destroy()
    })
  }
})

describe("tls.minVersion and tls.ciphers", () => {
  it("minVersion: TLSv1.3 refuses TLS 1.2 clients", async () => {
    const port = custom.port("postgres")
    expect(await failure(openTls("postgres", port, tls12))).toMatch(/protocol version|unsupported protocol/i)
    const s = await openTls("postgres", port)
    expect(s.getProtocol()).toBe("TLSv1.3")
    s.destroy()
  })

  it("ciphers replaces the profile's list", async () => {
    const s = await openTls("direct", custom.port("http"), { ...tls12, ciphers: cbc })
    expect(s.getCipher().name).toBe(cbc)
    s.destroy()
  })
})

interface Finding {
  readonly id: string
  readonly severity: string
  readonly finding: string
}

/**
 * testssl.sh limited to what the proxy's configuration decides: protocols, cipher categories, forward secrecy,
 * server cipher order, renegotiation and the vulnerability list. The certificate checks (-S) are left out: they judge
 * the test PKI (a self-signed CA: no chain of trust, no revocation URLs), not polyproxy.
 */
const testssl = (port: number, starttls?: string) =>
  new Promise<ReadonlyArray<Finding>>((resolve, reject) => {
    const json = path.join(makeTempDir("testssl"), "findings.json")
    const args = [
      "--quiet",
      "--fast",
      "--color",
      "0",
      "--warnings",
      "off",
      "-n",
      "none",
      "--connect-timeout",
      "5",
      "--openssl-timeout",
      "10",
      ...(starttls ? ["--starttls", starttls] : []),
      "-p",
      "-s",
      "-f",
      "-P",
      "-R",
      "-U",
      "--jsonfile",
      json,
      `127.0.0.1:${port}`
    ]
    execFile("testssl", args, { timeout: 150_000 }, (error, stdout) => {
      if (!fs.existsSync(json)) {
        const hint =
          (error as NodeJS.ErrnoException | null)?.code === "ENOENT" ? " (run `bash scripts/install-test-deps.sh`)" : ""
        return reject(new Error(`testssl wrote no findings${hint}: ${error?.message}\n${stdout}`))
      }
      resolve(JSON.parse(fs.readFileSync(json, "utf8")) as Array<Finding>)
    })
  })

/** Findings testssl marks as a problem: any severity from LOW up, or its words "NOT ok" / "VULNERABLE". */
const problems = (findings: ReadonlyArray<Finding>) =>
  findings.filter(
    (f) => ["LOW", "MEDIUM", "HIGH", "CRITICAL"].includes(f.severity) || /NOT ok|VULNERABLE/.test(f.finding)
  )

const verdicts = (findings: ReadonlyArray<Finding>, ids: ReadonlyArray<string>) =>
  Object.fromEntries(ids.map((id) => [id, findings.find((f) => f.id === id)?.finding]))

describe("testssl.sh", () => {
  it("finds nothing NOT ok or VULNERABLE on the postgres (STARTTLS) and HTTPS listeners", async () => {
    const [postgres, https] = await Promise.all([
      testssl(proxy.port("postgres"), "postgres"),
      testssl(proxy.port("http"))
    ])
    for (const findings of [postgres, https]) {
      expect(problems(findings)).toEqual([])
      // The checks did run (a scan that could not connect reports no problem either).
      expect(verdicts(findings, ["TLS1", "TLS1_1", "TLS1_2", "cipherlist_AVERAGE", "secure_client_renego"])).toEqual({
        TLS1: "not offered",
        TLS1_1: "not offered",
        TLS1_2: "offered",
        cipherlist_AVERAGE: "not offered",
        secure_client_renego: "not vulnerable"
      })
    }
    expect(postgres.find((f) => f.id === "service")?.finding).toBe("postgres")
    expect(https.find((f) => f.id === "service")?.finding).toBe("HTTP")
  }, 180_000)
})
