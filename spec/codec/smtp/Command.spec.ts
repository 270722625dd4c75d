import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { type Command, DEFAULT_COMMAND_LIMITS, decodeCommand } from "../../../src/codec/smtp/index.ts"
import { decodeAll, feedByteByByte } from "./support.ts"

const b = (s: string) => Buffer.from(s, "latin1")

const commandOf = (s: string | Buffer): Command => {
  const d = decodeCommand(typeof s === "string" ? b(s) : s)
  if (d._tag !== "Frame") throw new Error(`expected a command, got ${JSON.stringify(d)}`)
  return d.value
}

const reasonOf = (s: string | Buffer): string => {
  const d = decodeCommand(typeof s === "string" ? b(s) : s)
  if (d._tag !== "Invalid") throw new Error(`expected Invalid, got ${JSON.stringify(d)}`)
  return d.reason
}

describe("decodeCommand", () => {
  it("splits verb and argument; verbs are case-insensitive", () => {
    expect(decodeCommand(b("EHLO tenant-a.example\r\n"))).toEqual({
      _tag: "Frame",
      value: { verb: "EHLO", argument: "tenant-a.example" },
      size: 23
    })
    expect(commandOf("ehLo Tenant.Example\r\n")).toEqual({ verb: "EHLO", argument: "Tenant.Example" })
    expect(commandOf("mail FROM:<a@b.example> SIZE=100 BODY=8BITMIME\r\n")).toEqual({
      verb: "MAIL",
      argument: "FROM:<a@b.example> SIZE=100 BODY=8BITMIME"
    })
  })

  it("takes no argument, extra spaces and trailing blanks in its stride", () => {
    expect(commandOf("QUIT\r\n")).toEqual({ verb: "QUIT", argument: "" })
    expect(commandOf("NOOP   \r\n")).toEqual({ verb: "NOOP", argument: "" })
    expect(commandOf("EHLO   x.example \t \r\n")).toEqual({ verb: "EHLO", argument: "x.example" })
    expect(commandOf("\r\n")).toEqual({ verb: "", argument: "" })
  })

  it("keeps UTF-8 arguments (SMTPUTF8) and refuses malformed UTF-8", () => {
    expect(commandOf(Buffer.from("EHLO bücher.example\r\n", "utf8")).argument).toBe("bücher.example")
    expect(reasonOf(Buffer.from([0x45, 0x48, 0x4c, 0x4f, 0x20, 0xc3, 0x28, 0x0d, 0x0a]))).toContain("UTF-8")
  })

  it("asks for more until CRLF, whether the line is cut anywhere, even between CR and LF", () => {
    expect(decodeCommand(Buffer.alloc(0))).toEqual({ _tag: "Need", bytes: 1 })
    expect(decodeCommand(b("EHL"))._tag).toBe("Need")
    expect(decodeCommand(b("EHLO x.example\r"))._tag).toBe("Need")
    const line = b("EHLO tenant-a.example\r\n")
    const { result, at } = feedByteByByte(line, (x) => decodeCommand(x))
    expect(at).toBe(line.length)
    expect(result).toEqual({ _tag: "Frame", value: { verb: "EHLO", argument: "tenant-a.example" }, size: line.length })
  })

  it("decodes two commands in one buffer (pipelining) by size", () => {
    const buf = b("MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n")
    expect(decodeAll(buf, (x) => decodeCommand(x)).map((c) => c.verb)).toEqual(["MAIL", "RCPT", "DATA"])
    const first = decodeCommand(buf)
    expect(first._tag === "Frame" && first.size).toBe(25)
  })

  it("limits a line to 1000 bytes with its CRLF, and an AUTH line to 12288", () => {
    const ok = `NOOP ${"x".repeat(DEFAULT_COMMAND_LIMITS.maxLine - 7)}\r\n`
    expect(ok.length).toBe(1000)
    expect(commandOf(ok).verb).toBe("NOOP")
    expect(reasonOf(`NOOP ${"x".repeat(DEFAULT_COMMAND_LIMITS.maxLine - 6)}\r\n`)).toMatch(/line too long/)
    // Refused as soon as the limit passes without a line end: no need to wait for the rest.
    expect(reasonOf("A".repeat(1000))).toBe("line too long: over 1000 bytes")
    expect(decodeCommand(b("A".repeat(999)))._tag).toBe("Need")
    const auth = `AUTH XOAUTH2 ${"Q".repeat(8000)}\r\n`
    expect(commandOf(auth).verb).toBe("AUTH")
    expect(reasonOf(`auth PLAIN ${"Q".repeat(12_300)}`)).toBe("line too long: over 12288 bytes")
    expect(decodeCommand(b("EHLO x"), { maxLine: 4, maxAuthLine: 4 })._tag).toBe("Invalid")
  })

  it("refuses bare LF and bare CR, which a backend might split differently", () => {
    expect(reasonOf("EHLO x.example\n")).toMatch(/bare LF/)
    expect(reasonOf("\n")).toMatch(/bare LF/)
    expect(reasonOf("EHLO x\rRCPT TO:<a@b>\r\n")).toMatch(/bare CR/)
  })

  it("refuses binary at once: a TLS ClientHello on the plaintext port, NUL bytes", () => {
    const hello = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])
    expect(reasonOf(hello)).toMatch(/binary data.*0x16/)
    expect(reasonOf(Buffer.from("EHLO a\u0000b\r\n", "latin1"))).toMatch(/0x00/)
    expect(reasonOf(Buffer.from("NO\u007fOP", "latin1"))).toMatch(/0x7f/)
  })

  it("never throws, never reads past the buffer, and Need is always positive (random bytes)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1500 }), (bytes) => {
        const d = decodeCommand(Buffer.from(bytes))
        if (d._tag === "Need") return d.bytes > 0
        if (d._tag === "Frame") return d.size > 0 && d.size <= bytes.length
        return d.reason.length > 0
      }),
      { numRuns: 2000 }
    )
  })

  it("decodes any printable line it is given, at any split (property)", () => {
    const verb = fc.stringMatching(/^[A-Za-z]{1,10}$/)
    const arg = fc.stringMatching(/^[!-~]([ -~]{0,60}[!-~])?$/)
    fc.assert(
      fc.property(verb, fc.option(arg), fc.nat(), (v, a, cut) => {
        const line = b(a === null ? `${v}\r\n` : `${v} ${a}\r\n`)
        const split = cut % line.length
        if (split > 0) expect(decodeCommand(line.subarray(0, split))._tag).toBe("Need")
        const d = decodeCommand(Buffer.concat([line, b("NOOP\r\n")]))
        expect(d).toEqual({ _tag: "Frame", value: { verb: v.toUpperCase(), argument: a ?? "" }, size: line.length })
      })
    )
  })
})
