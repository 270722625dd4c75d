import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  hasCapability,
  keywordOf,
  parseHeloDomain,
  recipientDomain,
  withoutCapabilities
} from "../../../src/codec/smtp/index.ts"

describe("parseHeloDomain", () => {
  it("lower-cases, drops one trailing dot and ignores words after the domain", () => {
    expect(parseHeloDomain("Tenant-A.Example.")).toEqual({ _tag: "Domain", key: "tenant-a.example" })
    expect(parseHeloDomain("mx_1.tenant.example extra words")).toEqual({ _tag: "Domain", key: "mx_1.tenant.example" })
    expect(parseHeloDomain("localhost")).toEqual({ _tag: "Domain", key: "localhost" })
    expect(parseHeloDomain("Bücher.Example")).toEqual({ _tag: "Domain", key: "bücher.example" })
  })

  it("reports address literals so they can go to the default route", () => {
    expect(parseHeloDomain("[127.0.0.1]")).toEqual({ _tag: "Literal", literal: "[127.0.0.1]" })
    expect(parseHeloDomain("[IPv6:::1]")).toEqual({ _tag: "Literal", literal: "[IPv6:::1]" })
  })

  it("refuses what is no domain", () => {
    for (const bad of ["", "[", "[]", "[1.2.3.4", "a..b", ".", "..", "a/b", "a@b", `${"a".repeat(254)}`, "-\u0000"]) {
      expect(parseHeloDomain(bad)._tag, bad).toBe("Invalid")
    }
  })

  it("never throws and a key never has upper case or a trailing dot (property)", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (s) => {
        const d = parseHeloDomain(s)
        return d._tag !== "Domain" || (d.key === d.key.toLowerCase() && !d.key.endsWith(".") && d.key.length > 0)
      })
    )
  })
})

describe("EHLO capabilities", () => {
  const reply = { code: 250, lines: ["sink greets you", "PIPELINING", "AUTH PLAIN LOGIN", "STARTTLS", "AUTH=LOGIN"] }

  it("reads keywords case-insensitively and never takes the greeting line for one", () => {
    expect(keywordOf("auth plain")).toBe("AUTH")
    expect(keywordOf("AUTH=LOGIN")).toBe("AUTH")
    expect(hasCapability(reply, "starttls")).toBe(true)
    expect(hasCapability(reply, "SIZE")).toBe(false)
    expect(hasCapability({ code: 250, lines: ["STARTTLS"] }, "STARTTLS")).toBe(false)
  })

  it("drops the named capabilities and keeps the rest in order", () => {
    expect(withoutCapabilities(reply, new Set(["STARTTLS"])).lines).toEqual([
      "sink greets you",
      "PIPELINING",
      "AUTH PLAIN LOGIN",
      "AUTH=LOGIN"
    ])
    expect(withoutCapabilities(reply, new Set(["CHUNKING"]))).toBe(reply)
  })
})

describe("recipientDomain", () => {
  it("finds the domain of a forward-path, with parameters, source routes and quoted local parts", () => {
    expect(recipientDomain("TO:<bob@Tenant-B.Example.>")).toBe("tenant-b.example")
    expect(recipientDomain("to: <bob@tenant-b.example> NOTIFY=NEVER ORCPT=rfc822;x@y")).toBe("tenant-b.example")
    expect(recipientDomain("TO:<@relay.example,@b.example:bob@tenant-b.example>")).toBe("tenant-b.example")
    expect(recipientDomain('TO:<"odd>@name"@tenant-b.example>')).toBe("tenant-b.example")
    expect(recipientDomain("TO:<jörg@bücher.example>")).toBe("bücher.example")
  })

  it("has no domain for postmaster, literals and malformed paths", () => {
    for (const bad of [
      "TO:<postmaster>",
      "TO:<a@[192.0.2.1]>",
      "TO:bob@x.example",
      "TO:<a@b",
      "FROM:<a@b>",
      "TO:<@x>"
    ]) {
      expect(recipientDomain(bad), bad).toBeUndefined()
    }
  })

  it("never throws (property)", () => {
    fc.assert(fc.property(fc.string({ maxLength: 120 }), (s) => recipientDomain(`TO:<${s}`) !== null))
  })
})
