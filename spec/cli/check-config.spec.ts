// `polyproxy check-config` as a user runs it: whatever `serve` would refuse at start (addresses the kernel would not
// bind, TLS files OpenSSL would not load, a config that starts nothing) exits 2 naming the key, and serve says the same.
import { execFileSync } from "node:child_process"
import * as path from "node:path"
import { beforeAll, describe, expect, it } from "vitest"
import { makeCerts } from "../support/certs.ts"
import { configFolder, runCli as run } from "../support/cliRun.ts"

const { dir, write } = configFolder("check")

// The test PKI is made in a folder of this spec's, so that the table below can name its files before it exists.
const pki = path.join(dir, "pki")
const pem = (name: string) => path.join(pki, name)
const junk = write("junk.pem", "this is not PEM\n")
const encryptedKey = path.join(dir, "encrypted.key")

beforeAll(async () => {
  await makeCerts(pki)
  execFileSync("openssl", [
    "pkey",
    "-in",
    pem("server.key"),
    "-aes-128-cbc",
    "-passout",
    "pass:secret",
    "-out",
    encryptedKey
  ])
})

const tcp = "tcp: { port: 0, route: appdb }"

describe("check-config refuses what serve refuses, with exit 2 and the key", () => {
  // [what, config text, key, why]
  const cases: Array<readonly [string, string, string, string]> = [
    [
      "two listeners on one host:port",
      "listeners:\n  tcp: { port: 7400, route: appdb }\n  http: { port: 7400 }\n",
      "listeners.http.port",
      "0.0.0.0:7400 overlaps listeners.tcp on 0.0.0.0:7400"
    ],
    [
      "two listeners of one type on one port",
      "listeners:\n  pg-main: { type: postgres, port: 7405 }\n  pg-alt: { type: postgres, port: 7405 }\n",
      "listeners.pg-alt.port",
      "0.0.0.0:7405 overlaps listeners.pg-main on 0.0.0.0:7405"
    ],
    [
      "a listener named as no type, without `type`",
      "listeners:\n  pg-alt: { port: 7406 }\n",
      "listeners.pg-alt.type",
      'required: "pg-alt" is not a listener type (http, postgres, mysql, mongodb, smtp, tcp)'
    ],
    [
      "an unknown listener type",
      "listeners:\n  cache: { type: redis, port: 7406 }\n",
      "listeners.cache.type",
      'unknown listener type "redis" (known: http, postgres, mysql, mongodb, smtp, tcp)'
    ],
    [
      "a named listener's certificate that is not PEM",
      `listeners:\n  pg-alt: { type: postgres, port: 0, tls: { cert: ${junk}, key: ${pem("server.key")} } }\n`,
      "listeners.pg-alt.tls.cert",
      "is not a PEM certificate"
    ],
    [
      "0.0.0.0 and a specific address on one port",
      "listeners:\n  tcp: { host: 127.0.0.1, port: 7401, route: appdb }\n  mysql: { host: 0.0.0.0, port: 7401 }\n",
      "listeners.mysql.port",
      "overlaps listeners.tcp on 127.0.0.1:7401"
    ],
    [
      ":: (dual-stack) and an IPv4 address on one port",
      'listeners:\n  tcp: { host: "::", port: 7402, route: appdb }\n  postgres: { host: 10.1.2.3, port: 7402 }\n',
      "listeners.postgres.port",
      "overlaps listeners.tcp on [::]:7402"
    ],
    [
      "an IPv4-mapped IPv6 address and the IPv4 one",
      'listeners:\n  tcp: { host: 127.0.0.1, port: 7403, route: appdb }\n  smtp: { host: "::ffff:127.0.0.1", port: 7403 }\n',
      "listeners.smtp.port",
      "overlaps listeners.tcp"
    ],
    [
      "the admin endpoint on a listener's port",
      `admin: { host: 127.0.0.1, port: 7404 }\nlisteners:\n  tcp: { port: 7404, route: appdb }\n`,
      "admin.port",
      "127.0.0.1:7404 overlaps listeners.tcp on 0.0.0.0:7404"
    ],
    [
      "an invalid listen host",
      "listeners:\n  tcp: { host: 999.1.1.1, port: 0, route: appdb }\n",
      "listeners.tcp.host",
      'got "999.1.1.1" (not a valid IPv4 address)'
    ],
    [
      "an IPv6 listen host in brackets",
      'listeners:\n  tcp: { host: "[::1]", port: 0, route: appdb }\n',
      "listeners.tcp.host",
      "without brackets"
    ],
    ["an empty file", "", "listeners", "none configured: serve would start only the admin endpoint"],
    ["a file of comments", "# nothing yet\n", "listeners", "none configured"],
    ["listeners: {}", "listeners: {}\nroutes: { appdb: '10.0.0.1:5432' }\n", "listeners", "none configured"],
    [
      "a bare scalar",
      "polyproxy\n",
      "",
      'the top level must be a mapping of keys (listeners:, routes:, …), got string "polyproxy"'
    ],
    [
      "a YAML list",
      "- listeners\n- routes\n",
      "",
      "the top level must be a mapping of keys (listeners:, routes:, …), got a list"
    ],
    [
      "a certificate that is not PEM",
      `listeners:\n  postgres: { port: 0, tls: { cert: ${junk}, key: ${pem("server.key")} } }\n`,
      "listeners.postgres.tls.cert",
      `${junk} is not a PEM certificate (PEM routines::no start line)`
    ],
    [
      "a key that does not match its certificate",
      `listeners:\n  postgres: { port: 0, tls: { cert: ${pem("server.crt")}, key: ${pem("client.key")} } }\n`,
      "listeners.postgres.tls.key",
      `${pem("client.key")} does not match the certificate ${pem("server.crt")} (x509 certificate routines::key values mismatch)`
    ],
    [
      "a key that is not PEM",
      `listeners:\n  mysql: { port: 0, tls: { cert: ${pem("server.crt")}, key: ${junk} } }\n`,
      "listeners.mysql.tls.key",
      "is not a PEM private key"
    ],
    [
      "an encrypted key",
      `listeners:\n  mongodb: { port: 0, tls: { cert: ${pem("server.crt")}, key: ${encryptedKey} } }\n`,
      "listeners.mongodb.tls.key",
      "encrypted.key is encrypted, and polyproxy takes no passphrase"
    ],
    [
      "the top-level tls with a mismatched key",
      `listeners: { ${tcp} }\ntls: { cert: ${pem("server.crt")}, key: ${pem("ca.key")} }\n`,
      "tls.key",
      "does not match the certificate"
    ],
    [
      "a client CA that is not PEM",
      `listeners: { ${tcp} }\ntls: { cert: ${pem("server.crt")}, key: ${pem("server.key")}, ca: ${pem("server.key")}, requireClientCert: true }\n`,
      "tls.ca",
      "holds no PEM certificate"
    ],
    [
      "an SNI certificate with another certificate's key",
      `listeners:\n  http:\n    port: 0\n    tls: { cert: ${pem("server.crt")}, key: ${pem("server.key")} }\n    certificates: [ { cert: ${pem("client.crt")}, key: ${pem("server.key")}, hosts: [a.test] } ]\n`,
      "listeners.http.certificates.0.key",
      "does not match the certificate"
    ],
    [
      "an SNI certificate that names no host",
      `listeners:\n  http:\n    port: 0\n    tls: { cert: ${pem("server.crt")}, key: ${pem("server.key")} }\n    certificates: [ { cert: ${pem("client.crt")}, key: ${pem("client.key")} } ]\n`,
      "listeners.http.certificates.0.hosts",
      "names no DNS host (subjectAltName): list the names it serves"
    ],
    [
      "an upstream CA that is not PEM",
      `listeners:\n  postgres: { port: 0, upstreamTls: { ca: ${junk} } }\n`,
      "listeners.postgres.upstreamTls.ca",
      `${junk} holds no PEM certificate`
    ],
    [
      "a first-bytes extractor that is not there",
      "listeners:\n  tcp: { port: 0, route: { firstBytes: ./no-such-extractor.mjs#route } }\n",
      "listeners.tcp.route.firstBytes",
      `cannot read ${path.join(dir, "no-such-extractor.mjs")} (ENOENT)`
    ]
  ]

  it.each(cases)("%s", async (what, text, key, why) => {
    const file = write(`${what.replace(/\W+/g, "-")}.yaml`, text)
    const r = await run(["check-config", file])
    expect(r.stdout).toBe("")
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(`polyproxy: invalid config ${file}: ${key === "" ? file : key}: `)
    expect(r.stderr).toContain(why)
  })

  it("accepts what the kernel would bind: port 0 repeated, :: only with other ports, ::1 beside 0.0.0.0", async () => {
    const file = write(
      "binds.yaml",
      `admin: { host: 127.0.0.1, port: 0 }
listeners:
  tcp: { host: 0.0.0.0, port: 0, route: appdb }
  http: { host: 0.0.0.0, port: 0 }
  postgres: { host: 0.0.0.0, port: 7410 }
  mysql: { host: "::1", port: 7410 }
  smtp: { host: 127.0.0.1, port: 7411 }
  mongodb: { host: 127.0.0.2, port: 7411 }
`
    )
    const r = await run(["check-config", file])
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    expect(r.stdout).toContain("listeners tcp:0, http:0, postgres:7410, mysql:7410, smtp:7411, mongodb:7411")
  })

  it("lists named listeners with their type", async () => {
    const file = write(
      "named.yaml",
      `listeners:
  pg-main: { type: postgres, port: 0 }
  pg-alt: { type: postgres, port: 0, routeBy: user }
  tcp: { port: 0, route: appdb }
  cache: { type: tcp, port: 0, route: appdb, protocol: redis }
`
    )
    const r = await run(["check-config", file])
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    expect(r.stdout).toContain("listeners pg-main:0 (postgres), pg-alt:0 (postgres), tcp:0, cache:0 (tcp);")
  })

  it("accepts a full TLS setup: certificate, its key, a CA bundle, SNI certificates, an upstream CA", async () => {
    const file = write(
      "tls-ok.yaml",
      `listeners:
  http:
    port: 0
    tls: { cert: ${pem("server.crt")}, key: ${pem("server.key")}, ca: ${pem("ca.crt")}, requireClientCert: true }
    certificates: [ { cert: ${pem("server.crt")}, key: ${pem("server.key")} } ]
  postgres: { port: 0, upstreamTls: { ca: ${pem("ca.crt")} } }
`
    )
    const r = await run(["check-config", file])
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
  })

  it("shows a YAML syntax error with the file, line and column, and the lines around it", async () => {
    const file = write("syntax.yaml", "listeners:\n  tcp:\n    port: 7000\n   route: appdb\n")
    const r = await run(["check-config", file])
    expect(r.code).toBe(2)
    expect(r.stderr).toBe(
      `polyproxy: invalid config ${file}: not valid YAML/JSON: ${file}:4:1: All mapping items must start at the same column\n` +
        "        port: 7000\n" +
        "       route: appdb\n" +
        "    ^\n"
    )
  })

  it("serve refuses the same config with the same message, before binding anything", async () => {
    const file = write(
      "serve-mismatch.yaml",
      `admin: false\nlisteners:\n  postgres: { port: 0, tls: { cert: ${pem("server.crt")}, key: ${pem("client.key")} } }\n`
    )
    const r = await run(["serve", "--config", file])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(`polyproxy: invalid config ${file}: listeners.postgres.tls.key: ${pem("client.key")}`)
  })
})

describe("environment variables", () => {
  it("a mistyped POLYPROXY_ variable names the nearest one and `polyproxy env`", async () => {
    const file = write("env.yaml", `listeners: { ${tcp} }\n`)
    const typo = await run(["check-config", file], { POLYPROXY_LISTENER_HTTP_PORT: "8081" })
    expect(typo.code).toBe(2)
    expect(typo.stderr).toContain(
      "POLYPROXY_LISTENER_HTTP_PORT: unknown environment variable; did you mean POLYPROXY_LISTENERS_HTTP_PORT? (`polyproxy env` lists them all)"
    )
    const short = await run(["check-config", file], { POLYPROXY_HTTP_PORT: "8081" })
    expect(short.stderr).toContain("did you mean POLYPROXY_LISTENERS_HTTP_PORT?")
    const far = await run(["check-config", file], { POLYPROXY_WHATEVER: "1" })
    expect(far.stderr).toContain("POLYPROXY_WHATEVER: unknown environment variable (`polyproxy env` lists them all)")
  })

  it("env lists every variable: key paths, POLYPROXY_CONFIG and the PROXY_TLS_* ones", async () => {
    const r = await run(["env"])
    expect(r.code).toBe(0)
    const names = new Map(
      r.stdout
        .trim()
        .split("\n")
        .map((l) => l.split("\t") as [string, string])
    )
    expect(names.get("POLYPROXY_LISTENERS_HTTP_PORT")).toBe("listeners.http.port")
    expect(names.get("POLYPROXY_TCP_KEEP_ALIVE_IDLE")).toBe("tcp.keepAlive.idle")
    expect(names.get("POLYPROXY_SSRF_DISABLED")).toBe("ssrf.disabled")
    expect(names.get("POLYPROXY_CONFIG")).toContain("config file")
    for (const v of ["ENABLED", "CERT", "KEY", "CA", "REQUIRE_CLIENT_CERT", "CIPHERS", "MIN_VERSION"]) {
      expect(names.has(`PROXY_TLS_${v}`)).toBe(true)
    }
  })
})
