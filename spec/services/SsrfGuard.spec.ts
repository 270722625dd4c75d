import { assert, describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import { TestClock } from "effect/testing"
import fc from "fast-check"
import ipaddr from "ipaddr.js"
import type { Endpoint } from "../../src/domain/Endpoint.ts"
import type { ProxyError } from "../../src/domain/ProxyError.ts"
import { cidrListContains, classifyIp, parseCidrList } from "../../src/domain/SpecialRanges.ts"
import { type LookupFn, SsrfGuard, type SsrfOptions } from "../../src/services/SsrfGuard.ts"

/** A fake resolver that records every name it is asked for. */
const fakeDns = (zone: Record<string, ReadonlyArray<string>>) => {
  const calls: Array<string> = []
  const lookup: LookupFn = async (host) => {
    calls.push(host)
    const addresses = zone[host]
    if (addresses === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: "ENOTFOUND" })
    return addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }))
  }
  return { lookup, calls }
}

const zone: Record<string, ReadonlyArray<string>> = {
  localhost: ["127.0.0.1"],
  "internal.example": ["10.0.0.5"],
  "mixed.example": ["93.184.216.34", "10.0.0.5"],
  "mixed-v6.example": ["2606:4700::1111", "fd00::1"],
  "public.example": ["93.184.216.34"],
  "dual.example": ["2606:4700::1111", "93.184.216.34"],
  "metadata.google.internal": ["169.254.169.254"],
  "127.0.0.1.nip.io": ["127.0.0.1"],
  "v6-localhost.example": ["::1", "127.0.0.1"]
}

const vetWith = (options: SsrfOptions, host: string, port = 5432) =>
  Effect.gen(function* () {
    const guard = yield* SsrfGuard.make(options).pipe(Effect.orDie)
    return yield* Effect.exit(guard.vet({ host, port }))
  })

const failureOf = <A>(exit: Exit.Exit<A, ProxyError>): ProxyError => {
  if (Exit.isSuccess(exit)) throw new Error(`expected a failure, got ${JSON.stringify(exit.value)}`)
  const error = exit.cause.reasons.find((r) => r._tag === "Fail")
  if (error === undefined || error._tag !== "Fail")
    throw new Error(`expected a typed failure, got ${String(exit.cause)}`)
  return error.error
}

type Case =
  | { readonly host: string; readonly allow?: ReadonlyArray<string>; readonly refused: string }
  | { readonly host: string; readonly allow?: ReadonlyArray<string>; readonly ip: string; readonly family: 4 | 6 }

// `refused` is a fragment the refusal message must contain, so each row also pins down *why*.
const cases: ReadonlyArray<Case> = [
  // IPv4 special-purpose ranges
  { host: "127.0.0.1", refused: "loopback" },
  { host: "127.255.0.9", refused: "loopback" },
  { host: "10.0.0.5", refused: "a private address (10.0.0.0/8)" },
  { host: "172.16.3.4", refused: "private" },
  { host: "172.31.255.255", refused: "private" },
  { host: "192.168.1.1", refused: "private" },
  { host: "169.254.1.1", refused: "link-local" },
  { host: "169.254.169.254", refused: "cloud metadata" },
  { host: "169.254.170.2", refused: "cloud metadata" },
  { host: "100.64.0.1", refused: "carrier-grade NAT" },
  { host: "100.127.255.254", refused: "carrier-grade NAT" },
  { host: "100.100.100.200", refused: "cloud metadata" },
  { host: "224.0.0.1", refused: "multicast" },
  { host: "239.255.255.250", refused: "multicast" },
  { host: "240.0.0.1", refused: "reserved" },
  { host: "255.255.255.255", refused: "broadcast" },
  { host: "0.0.0.0", refused: "unspecified" },
  { host: "0.1.2.3", refused: "this network" },
  { host: "192.0.2.10", refused: "documentation" },
  { host: "198.51.100.7", refused: "documentation" },
  { host: "203.0.113.9", refused: "documentation" },
  { host: "198.18.0.1", refused: "benchmarking" },
  { host: "198.19.255.254", refused: "benchmarking" },
  { host: "192.0.0.8", refused: "IETF protocol assignment" },
  { host: "192.88.99.1", refused: "6to4 relay" },
  { host: "168.63.129.16", refused: "Azure WireServer" },
  // IPv6 special-purpose ranges
  { host: "::1", refused: "loopback" },
  { host: "::", refused: "unspecified" },
  { host: "fe80::1", refused: "link-local" },
  { host: "febf:ffff::1", refused: "link-local" },
  { host: "fec0::1", refused: "site-local" },
  { host: "fc00::1", refused: "unique local" },
  { host: "fd12:3456::1", refused: "unique local" },
  { host: "fd00:ec2::254", refused: "AWS IMDS" },
  { host: "ff02::1", refused: "multicast" },
  { host: "100::1", refused: "discard-only" },
  { host: "2001:db8::1", refused: "documentation" },
  { host: "3fff::1", refused: "documentation" },
  { host: "2001:2::1", refused: "benchmarking" },
  { host: "2001::1", refused: "Teredo" },
  { host: "2001:10::1", refused: "ORCHID" },
  { host: "2001:20::1", refused: "ORCHIDv2" },
  { host: "2002:808:808::1", refused: "6to4" },
  { host: "1::", refused: "outside global unicast" },
  // Bypass forms: other spellings of 127.0.0.1 / 0.0.0.0 / metadata
  { host: "2130706433", refused: "looks numeric" },
  { host: "0x7f000001", refused: "looks numeric" },
  { host: "0177.0.0.1", refused: "looks numeric" },
  { host: "127.1", refused: "looks numeric" },
  { host: "0x7f.1", refused: "looks numeric" },
  { host: "127.0.0.01", refused: "looks numeric" },
  { host: "::ffff:127.0.0.1", refused: "loopback address embedded in an IPv4-mapped" },
  { host: "[::ffff:127.0.0.1]", refused: "loopback" },
  { host: "::ffff:7f00:1", refused: "loopback" },
  { host: "::127.0.0.1", refused: "IPv4-compatible" },
  { host: "::7f00:1", refused: "IPv4-compatible" },
  { host: "64:ff9b::7f00:1", refused: "loopback address embedded in a NAT64" },
  { host: "64:ff9b::a9fe:a9fe", refused: "cloud metadata" },
  { host: "64:ff9b:1::a00:1", refused: "private" },
  { host: "2002:7f00:1::1", refused: "loopback address embedded in a 6to4" },
  { host: "2002:a9fe:a9fe::", refused: "cloud metadata" },
  { host: "::ffff:0.0.0.0", refused: "unspecified" },
  { host: "127.0.0.1.", refused: "loopback" },
  { host: "localhost.", refused: "127.0.0.1, a loopback address" },
  { host: "::FFFF:127.0.0.1", refused: "loopback" },
  { host: "FE80::1", refused: "link-local" },
  { host: "fe80::1%eth0", refused: "zone id" },
  { host: "127.0.0.1 public.example", refused: "not a valid hostname" },
  { host: "", refused: "not a valid hostname" },
  // Public addresses
  { host: "8.8.8.8", ip: "8.8.8.8", family: 4 },
  { host: "1.1.1.1.", ip: "1.1.1.1", family: 4 },
  { host: "2606:4700::1111", ip: "2606:4700::1111", family: 6 },
  { host: "2606:4700::AAAA", ip: "2606:4700::aaaa", family: 6 },
  { host: "::ffff:8.8.8.8", ip: "::ffff:8.8.8.8", family: 6 },
  { host: "64:ff9b::808:808", ip: "64:ff9b::808:808", family: 6 },
  // Names, through the fake resolver
  { host: "internal.example", refused: "resolves to 10.0.0.5, a private address (10.0.0.0/8)" },
  { host: "mixed.example", refused: "10.0.0.5, a private address" },
  { host: "mixed-v6.example", refused: "fd00::1, a unique local address" },
  { host: "metadata.google.internal", refused: "cloud metadata" },
  { host: "127.0.0.1.nip.io", refused: "loopback" },
  { host: "public.example", ip: "93.184.216.34", family: 4 },
  { host: "PUBLIC.Example.", ip: "93.184.216.34", family: 4 },
  { host: "dual.example", ip: "2606:4700::1111", family: 6 },
  // Allow list: opens exactly what it names, and the mapped forms of its IPv4 ranges
  { host: "127.0.0.1", allow: ["127.0.0.0/8"], ip: "127.0.0.1", family: 4 },
  { host: "127.8.9.10", allow: ["127.0.0.0/8"], ip: "127.8.9.10", family: 4 },
  { host: "::ffff:127.0.0.1", allow: ["127.0.0.0/8"], ip: "::ffff:127.0.0.1", family: 6 },
  { host: "localhost", allow: ["127.0.0.0/8"], ip: "127.0.0.1", family: 4 },
  { host: "10.0.0.1", allow: ["127.0.0.0/8"], refused: "private" },
  { host: "0.0.0.0", allow: ["127.0.0.0/8"], refused: "unspecified" },
  { host: "::1", allow: ["127.0.0.0/8"], refused: "loopback" },
  { host: "::127.0.0.1", allow: ["127.0.0.0/8"], refused: "IPv4-compatible" },
  { host: "v6-localhost.example", allow: ["127.0.0.0/8"], refused: "::1, the loopback address" },
  { host: "fd00::7", allow: ["fd00::/8"], ip: "fd00::7", family: 6 },
  { host: "10.1.2.3", allow: ["0.0.0.0/0", "::/0"], ip: "10.1.2.3", family: 4 },
  { host: "0.0.0.0", allow: ["0.0.0.0/0", "::/0"], refused: "never a backend" },
  { host: "::", allow: ["0.0.0.0/0", "::/0"], refused: "never a backend" }
]

const describeCase = (c: Case) =>
  `${JSON.stringify(c.host)}${c.allow ? ` allow=${c.allow.join(",")}` : ""} → ${"ip" in c ? c.ip : "refused"}`

describe("SsrfGuard.vet", () => {
  it("has a broad table", () => {
    expect(cases.length).toBeGreaterThanOrEqual(45)
  })

  for (const c of cases) {
    it.effect(describeCase(c), () =>
      Effect.gen(function* () {
        const dns = fakeDns(zone)
        const exit = yield* vetWith({ allow: c.allow ?? [], lookup: dns.lookup }, c.host)
        if ("ip" in c) {
          assert.isTrue(Exit.isSuccess(exit), Exit.isFailure(exit) ? failureOf(exit).message : "")
          if (Exit.isSuccess(exit)) {
            assert.deepStrictEqual(exit.value, { host: c.host, port: 5432, ip: c.ip, family: c.family })
          }
        } else {
          const error = failureOf(exit)
          assert.strictEqual(error.reason, "FORBIDDEN")
          assert.strictEqual(error.source, "policy")
          assert.include(error.message, c.refused)
          assert.include(error.message, "refused by the SSRF guard")
        }
        // Names are looked up exactly once; literals never reach DNS.
        assert.isAtMost(dns.calls.length, 1)
      })
    )
  }

  it.effect("looks a public name up exactly once, normalised, and returns the looked-up IP", () =>
    Effect.gen(function* () {
      const dns = fakeDns(zone)
      const exit = yield* vetWith({ allow: [], lookup: dns.lookup }, "Public.Example.", 443)
      assert.deepStrictEqual(dns.calls, ["public.example"])
      assert.isTrue(Exit.isSuccess(exit))
      if (Exit.isSuccess(exit)) assert.strictEqual(exit.value.ip, "93.184.216.34")
    })
  )

  it.effect("never looks up literals or numeric-looking hosts", () =>
    Effect.gen(function* () {
      const dns = fakeDns(zone)
      for (const host of ["8.8.8.8", "::1", "2130706433", "127.1", "0x7f000001"]) {
        yield* vetWith({ allow: [], lookup: dns.lookup }, host)
      }
      assert.deepStrictEqual(dns.calls, [])
    })
  )

  it.effect("names the endpoint, the address, the range and the setting in the message", () =>
    Effect.gen(function* () {
      const dns = fakeDns({ "db.example": ["10.0.0.5"] })
      const error = failureOf(yield* vetWith({ allow: [], lookup: dns.lookup }, "db.example", 5432))
      assert.strictEqual(
        error.message,
        "endpoint db.example:5432 resolves to 10.0.0.5, a private address (10.0.0.0/8), and ssrf.allow does not include it; refused by the SSRF guard"
      )
      assert.isFalse(error.retryable)
    })
  )

  it.effect("an unknown name fails with CONNECT_FAILED from the backend side, naming the host", () =>
    Effect.gen(function* () {
      const dns = fakeDns(zone)
      const error = failureOf(yield* vetWith({ allow: [], lookup: dns.lookup }, "nope.example"))
      assert.strictEqual(error.reason, "CONNECT_FAILED")
      assert.strictEqual(error.source, "backend")
      assert.include(error.message, "nope.example")
      assert.include(error.message, "ENOTFOUND")
      assert.isTrue(error.retryable)
    })
  )

  it.effect("an empty answer fails with CONNECT_FAILED", () =>
    Effect.gen(function* () {
      const error = failureOf(yield* vetWith({ allow: [], lookup: async () => [] }, "empty.example"))
      assert.strictEqual(error.reason, "CONNECT_FAILED")
      assert.include(error.message, "no addresses")
    })
  )

  it.effect("a lookup that never answers fails with CONNECT_FAILED after 5 seconds", () =>
    Effect.gen(function* () {
      const guard = yield* SsrfGuard.make({ allow: [], lookup: () => new Promise(() => {}) }).pipe(Effect.orDie)
      const fiber = yield* Effect.forkChild(guard.vet({ host: "slow.example", port: 80 }))
      yield* TestClock.adjust("4999 millis")
      assert.isUndefined(fiber.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      const error = failureOf(yield* Fiber.await(fiber))
      assert.strictEqual(error.reason, "CONNECT_FAILED")
      assert.include(error.message, "slow.example")
      assert.include(error.message, "5 seconds")
    })
  )
})

describe("SsrfGuard construction", () => {
  it.effect("make fails with a message naming an invalid allow entry", () =>
    Effect.gen(function* () {
      for (const bad of ["10.0.0.0/33", "not-a-cidr", "10.1/16", "10.0.0.1/8", "fe80::/129", "fe80::%eth0/64", ""]) {
        const exit = yield* Effect.exit(SsrfGuard.make({ allow: ["127.0.0.0/8", bad] }))
        assert.isTrue(Exit.isFailure(exit), bad)
        if (Exit.isFailure(exit)) {
          const reason = exit.cause.reasons[0]
          assert.strictEqual(reason?._tag, "Fail")
          if (reason?._tag === "Fail") {
            assert.include(reason.error, `"${bad}"`)
            assert.include(reason.error, "ssrf.allow")
          }
        }
      }
    })
  )

  it.effect("layer fails the same way", () =>
    Effect.gen(function* () {
      const useGuard = Effect.gen(function* () {
        return yield* SsrfGuard
      })
      const exit = yield* Effect.exit(Effect.provide(useGuard, SsrfGuard.layer({ allow: ["nope"] })))
      const reason = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
      assert.strictEqual(reason?._tag, "Fail")
      if (reason?._tag === "Fail") assert.include(reason.error, '"nope"')
    })
  )

  it.effect("layer with a valid list provides a working guard", () =>
    Effect.gen(function* () {
      const guard = yield* SsrfGuard
      const vetted = yield* guard.vet({ host: "127.0.0.1", port: 6379 })
      assert.strictEqual(vetted.ip, "127.0.0.1")
    }).pipe(Effect.provide(SsrfGuard.layer({ allow: ["127.0.0.0/8"] })))
  )

  it.effect("layerTest allows literals and localhost without DNS, and refuses names", () =>
    Effect.gen(function* () {
      const guard = yield* SsrfGuard
      const vet = (host: string) => Effect.exit(guard.vet({ host, port: 1 } satisfies Endpoint))
      const ok = (exit: Exit.Exit<{ readonly ip: string }, ProxyError>) => (Exit.isSuccess(exit) ? exit.value.ip : "")
      assert.strictEqual(ok(yield* vet("10.0.0.1")), "10.0.0.1")
      assert.strictEqual(ok(yield* vet("::1")), "::1")
      assert.strictEqual(ok(yield* vet("localhost")), "127.0.0.1")
      assert.strictEqual(failureOf(yield* vet("db.example")).reason, "CONNECT_FAILED")
      assert.strictEqual(failureOf(yield* vet("0.0.0.0")).reason, "FORBIDDEN")
    }).pipe(Effect.provide(SsrfGuard.layerTest))
  )
})

describe("classifyIp", () => {
  it("returns undefined for public addresses", () => {
    for (const ip of ["8.8.8.8", "93.184.216.34", "2606:4700::1111", "2a00:1450:4001::200e", "::ffff:1.1.1.1"]) {
      expect(classifyIp(ip), ip).toBeUndefined()
    }
  })

  it("names the most specific range", () => {
    expect(classifyIp("10.20.30.40")).toEqual({ range: "10.0.0.0/8", name: "a private address" })
    expect(classifyIp("169.254.169.254")?.name).toContain("cloud metadata")
    expect(classifyIp("169.254.10.10")?.range).toBe("169.254.0.0/16")
    expect(classifyIp("fd00:ec2::254")?.range).toBe("fd00:ec2::254/128")
    expect(classifyIp("fd00:ec2::253")?.range).toBe("fc00::/7")
    expect(classifyIp("2001::1")?.range).toBe("2001::/32")
    expect(classifyIp("2001:1::1")?.range).toBe("2001::/23")
  })

  it("classifies IPv4 hidden in IPv6 by the IPv4 it carries", () => {
    expect(classifyIp("::ffff:127.0.0.1")?.range).toBe("127.0.0.0/8 via ::ffff:0:0/96")
    expect(classifyIp("2002:7f00:1::")?.range).toBe("127.0.0.0/8 via 2002::/16")
    expect(classifyIp("64:ff9b::10.0.0.1")?.range).toBe("10.0.0.0/8 via 64:ff9b::/96")
    expect(classifyIp("::10.0.0.1")?.range).toBe("10.0.0.0/8 via ::/96")
    expect(classifyIp("::1")?.range).toBe("::1/128")
  })

  it("reads IPv4 shorthand the way inet_aton would, and fails closed on garbage", () => {
    expect(classifyIp("2130706433")?.range).toBe("127.0.0.0/8")
    expect(classifyIp("0x7f.1")?.range).toBe("127.0.0.0/8")
    expect(classifyIp("not an ip")?.name).toBe("not an IP address")
  })

  it("never throws, and classifies whatever ipaddr.js can parse as an address", () => {
    const anyIpText = fc.oneof(fc.ipV4(), fc.ipV4Extended(), fc.ipV6(), fc.string(), fc.string({ unit: "binary" }))
    fc.assert(
      fc.property(anyIpText, (text) => {
        const result = classifyIp(text)
        if (ipaddr.isValid(text)) expect(result?.name).not.toBe("not an IP address")
      }),
      { numRuns: 2000 }
    )
  })

  it("classifies every address in 10.0.0.0/8 as private, also when IPv4-mapped", () => {
    const octet = fc.integer({ min: 0, max: 255 })
    fc.assert(
      fc.property(octet, octet, octet, (b, c, d) => {
        expect(classifyIp(`10.${b}.${c}.${d}`)).toEqual({ range: "10.0.0.0/8", name: "a private address" })
        expect(classifyIp(`::ffff:10.${b}.${c}.${d}`)?.name).toBe(
          "a private address embedded in an IPv4-mapped address"
        )
      }),
      { numRuns: 500 }
    )
  })
})

describe("parseCidrList / cidrListContains", () => {
  it("lets an IPv4 range also match its IPv4-mapped forms, and nothing else", () => {
    const list = parseCidrList(["127.0.0.0/8", "192.168.1.7", "::ffff:10.0.0.0/104", "fd00::/8"])
    if (typeof list === "string") throw new Error(list)
    const inside = ["127.0.0.1", "::ffff:127.0.0.1", "::ffff:7f00:2", "192.168.1.7", "10.9.9.9", "fd00::1"]
    const outside = ["128.0.0.1", "::127.0.0.1", "192.168.1.8", "::1", "fe80::1", "not-an-ip", "11.0.0.0"]
    for (const ip of inside) expect(cidrListContains(list, ip), ip).toBe(true)
    for (const ip of outside) expect(cidrListContains(list, ip), ip).toBe(false)
  })

  it("returns a message naming the bad entry", () => {
    expect(parseCidrList(["10.0.0.0/8", "10.0.0.0/40"])).toContain('"10.0.0.0/40"')
    expect(parseCidrList(["10.0.0.9/8"])).toContain('did you mean "10.0.0.0/8"')
  })
})
