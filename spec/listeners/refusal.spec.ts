// The one place that words a refusal for the client and logs it: no reason from any source but the client lets the
// detail through; the log line keeps it with the same ref.

import { describe, expect, it } from "vitest"
import type { Reason, Source } from "../../src/domain/ProxyError.ts"
import { clientText, logRefusal, newRef } from "../../src/listeners/refusal.ts"
import { makeLog } from "../../src/services/Log.ts"

const reasons: ReadonlyArray<Reason | "BAD_GATEWAY" | "UPSTREAM_TIMEOUT"> = [
  "NOT_FOUND",
  "FORBIDDEN",
  "UNAVAILABLE",
  "TIMEOUT",
  "INTERNAL",
  "BAD_REQUEST",
  "HANDSHAKE_TIMEOUT",
  "CONNECT_FAILED",
  "BAD_GATEWAY",
  "UPSTREAM_TIMEOUT"
]
const hiddenSources: ReadonlyArray<Source> = ["backend", "resolver", "policy", "internal"]
const detail = "connect ECONNREFUSED 10.0.0.5:5432 at /srv/app/resolver.ts:12"

describe("clientText", () => {
  it.each(hiddenSources)("source %s: no reason shows the detail; each names the resource and the ref", (source) => {
    for (const reason of reasons) {
      const ref = newRef()
      const text = clientText({ reason, source, message: detail, resourceId: "acme", ref, retryAfter: 3 })
      expect(text, reason).toMatch(/^polyproxy: /)
      expect(text, reason).not.toContain("10.0.0.5")
      expect(text, reason).not.toContain("ECONNREFUSED")
      expect(text, reason).not.toContain("/srv/")
      expect(text, reason).toMatch(new RegExp(` \\(ref ${ref}\\)$`))
    }
  })

  it("shows the client its own fault, and words written for it", () => {
    expect(clientText({ reason: "BAD_REQUEST", source: "client", message: "startup packet too large" })).toBe(
      "polyproxy: startup packet too large"
    )
    expect(
      clientText({
        reason: "FORBIDDEN",
        source: "resolver",
        message: "x",
        clientMessage: "tenant suspended",
        ref: "ab"
      })
    ).toBe("polyproxy: tenant suspended (ref ab)")
  })

  it("says when to come back in the protocol's own phrase, before the ref", () => {
    const cold = {
      reason: "UNAVAILABLE",
      source: "resolver",
      message: "x",
      resourceId: "acme",
      retryAfter: 5,
      ref: "ab"
    } as const
    expect(clientText(cold)).toBe('polyproxy: "acme" is starting; retry in 5 s (ref ab)')
    expect(clientText(cold, null)).toBe('polyproxy: "acme" is starting (ref ab)')
    expect(clientText(cold, (s) => ` [in ${s}]`)).toBe('polyproxy: "acme" is starting [in 5] (ref ab)')
  })

  it("refs are 12 hex digits, fresh each time", () => {
    const refs = new Set(Array.from({ length: 1000 }, newRef))
    expect(refs.size).toBe(1000)
    for (const r of refs) expect(r).toMatch(/^[0-9a-f]{12}$/)
  })
})

describe("logRefusal", () => {
  // The real logger, writing JSON lines as `polyproxy serve` does.
  const logged = (r: Parameters<typeof logRefusal>[2]) => {
    const lines: Array<Record<string, unknown>> = []
    const log = makeLog({ level: "debug", format: "json", write: (line) => lines.push(JSON.parse(line)) })
    logRefusal(log, "connection refused", r, { listener: "postgres" })
    return lines[0]!
  }

  it("keeps the detail, the ref and an exception's stack", () => {
    const cause = new Error("boom: secret")
    const line = logged({
      reason: "INTERNAL",
      source: "resolver",
      message: detail,
      ref: "ab",
      cause,
      resourceId: "acme"
    })
    expect(line).toMatchObject({
      level: "error",
      event: "connection refused",
      listener: "postgres",
      resource: "acme",
      reason: "INTERNAL",
      source: "resolver",
      message: detail,
      ref: "ab"
    })
    expect(String(line.stack)).toContain("boom: secret")
  })

  it.each([
    ["internal", "UNAVAILABLE", false, "error"],
    ["policy", "FORBIDDEN", false, "warn"],
    ["client", "BAD_REQUEST", true, "debug"],
    ["backend", "CONNECT_FAILED", false, "info"],
    ["resolver", "NOT_FOUND", false, "info"]
  ] as const)("source %s, %s (quiet: %s) logs at %s", (source, reason, quiet, level) => {
    expect(logged({ reason, source, message: "m", quiet }).level).toBe(level)
  })
})
