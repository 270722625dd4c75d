// `tls.ciphers` and `tls.minVersion` (top level and per listener), `upstreamTls.minVersion`, and their variables.
import { describe, expect, it } from "vitest"
import { defaults } from "../../src/config/Config.ts"
import { decodeConfig } from "../../src/config/decode.ts"
import { applyEnv } from "../../src/config/env.ts"
import { configErrorOf } from "../support/config.ts"

const errorOf = configErrorOf

const files = { cert: "s.crt", key: "s.key" }

describe("tls profile keys", () => {
  it("default to Mozilla intermediate: TLS 1.2 minimum, AEAD suites with forward secrecy only", () => {
    expect(defaults.tls.minVersion).toBe("TLSv1.2")
    const twelve = defaults.tls.ciphers.split(":").filter((c) => !c.startsWith("TLS_"))
    expect(twelve.every((c) => /^ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/.test(c))).toBe(
      true
    )
    const c = decodeConfig({ tls: files, listeners: { postgres: { port: 1 } } }, "/srv")
    expect(c.tls?.ciphers).toBeUndefined()
    expect(c.tls?.minVersion).toBeUndefined()
  })

  it("reads ciphers and minVersion, top level and per listener", () => {
    const c = decodeConfig(
      {
        tls: { ...files, minVersion: "TLSv1.3" },
        listeners: { mysql: { port: 1, tls: { ...files, ciphers: "ECDHE-RSA-AES128-SHA:TLS_AES_128_GCM_SHA256" } } }
      },
      "/srv"
    )
    expect(c.tls?.minVersion).toBe("TLSv1.3")
    expect(c.listeners.mysql?.tls?.ciphers).toBe("ECDHE-RSA-AES128-SHA:TLS_AES_128_GCM_SHA256")
  })

  it("refuses a cipher list OpenSSL matches nothing in, and an unknown version, by key", () => {
    const bad = errorOf(() => decodeConfig({ tls: { ...files, ciphers: "NO-SUCH-CIPHER" } }, "/"))
    expect(bad.key).toBe("tls.ciphers")
    expect(bad.message).toContain("OpenSSL accepts none of these ciphers")
    expect(
      errorOf(() => decodeConfig({ listeners: { http: { port: 1, tls: { ...files, minVersion: "SSLv3" } } } }, "/")).key
    ).toBe("listeners.http.tls.minVersion")
    expect(
      errorOf(() => decodeConfig({ listeners: { postgres: { port: 1, upstreamTls: { minVersion: "TLSv1.4" } } } }, "/"))
        .key
    ).toBe("listeners.postgres.upstreamTls.minVersion")
  })

  it("upstreamTls.minVersion", () => {
    const c = decodeConfig({ listeners: { postgres: { port: 1, upstreamTls: { minVersion: "TLSv1.3" } } } }, "/")
    expect(c.listeners.postgres?.upstreamTls).toEqual({ rejectUnauthorized: true, minVersion: "TLSv1.3" })
  })

  it("PROXY_TLS_CIPHERS / PROXY_TLS_MIN_VERSION and POLYPROXY_*_TLS_* set them", () => {
    const seed = decodeConfig(
      applyEnv(
        {},
        {
          PROXY_TLS_ENABLED: "true",
          PROXY_TLS_CERT: "/c",
          PROXY_TLS_KEY: "/k",
          PROXY_TLS_CIPHERS: "TLS_AES_256_GCM_SHA384",
          PROXY_TLS_MIN_VERSION: "TLSv1.3"
        },
        "/"
      ),
      "/"
    )
    expect(seed.tls).toMatchObject({ ciphers: "TLS_AES_256_GCM_SHA384", minVersion: "TLSv1.3" })
    const own = decodeConfig(
      applyEnv(
        { tls: files, listeners: { smtp: { port: 1, tls: files } } },
        { POLYPROXY_LISTENERS_SMTP_TLS_MIN_VERSION: "TLSv1.3", POLYPROXY_TLS_CIPHERS: "ECDHE-ECDSA-AES128-GCM-SHA256" },
        "/"
      ),
      "/"
    )
    expect(own.listeners.smtp?.tls?.minVersion).toBe("TLSv1.3")
    expect(own.tls?.ciphers).toBe("ECDHE-ECDSA-AES128-GCM-SHA256")
  })
})
