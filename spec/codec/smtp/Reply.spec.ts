import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { decodeReply, encodeReply, type Reply } from "../../../src/codec/smtp/index.ts"
import { decodeAll, feedByteByByte } from "./support.ts"

const b = (s: string) => Buffer.from(s, "latin1")

const replyOf = (s: string): Reply => {
  const d = decodeReply(b(s))
  if (d._tag !== "Frame") throw new Error(`expected a reply, got ${JSON.stringify(d)}`)
  return d.value
}

const reasonOf = (s: string): string => {
  const d = decodeReply(b(s))
  if (d._tag !== "Invalid") throw new Error(`expected Invalid, got ${JSON.stringify(d)}`)
  return d.reason
}

const ehlo = "250-sink.example Nice to meet you\r\n250-PIPELINING\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n"

describe("decodeReply", () => {
  it("decodes a one-line and a multi-line reply", () => {
    expect(decodeReply(b("220 sink.example ESMTP\r\n"))).toEqual({
      _tag: "Frame",
      value: { code: 220, lines: ["sink.example ESMTP"] },
      size: 24
    })
    expect(replyOf(ehlo)).toEqual({
      code: 250,
      lines: ["sink.example Nice to meet you", "PIPELINING", "AUTH PLAIN LOGIN", "STARTTLS"]
    })
  })

  it("accepts a bare code, an empty continuation and a bare LF from a sloppy backend", () => {
    expect(replyOf("250\r\n")).toEqual({ code: 250, lines: [""] })
    expect(replyOf("250-\r\n250 OK\r\n")).toEqual({ code: 250, lines: ["", "OK"] })
    expect(replyOf("220 hi\n")).toEqual({ code: 220, lines: ["hi"] })
  })

  it("needs the last line before answering, at any cut", () => {
    const buf = b(ehlo)
    const { result, at } = feedByteByByte(buf, (x) => decodeReply(x))
    expect(at).toBe(buf.length)
    expect(result._tag).toBe("Frame")
    expect(decodeReply(b("250-PIPELINING\r\n"))._tag).toBe("Need")
    expect(decodeReply(Buffer.alloc(0))._tag).toBe("Need")
  })

  it("decodes two replies in one buffer by size", () => {
    const two = decodeAll(b(`220 ready\r\n${ehlo}`), (x) => decodeReply(x))
    expect(two.map((r) => r.code)).toEqual([220, 250])
  })

  it("refuses a code that changes within a reply, garbage, and codes outside 2xx-5xx", () => {
    expect(reasonOf("250-a\r\n251 b\r\n")).toBe("reply code changed from 250 to 251 within one reply")
    expect(reasonOf("HTTP/1.1 400 Bad Request\r\n")).toMatch(/not a reply line/)
    expect(reasonOf("H")).toMatch(/not a reply line/)
    expect(reasonOf("199 what\r\n")).toMatch(/2 to 5/)
    expect(reasonOf("250_x\r\n")).toMatch(/space or a hyphen/)
    expect(reasonOf("25\r\n")).toMatch(/shorter/)
  })

  it("bounds line length and line count", () => {
    expect(reasonOf(`250 ${"x".repeat(3000)}`)).toMatch(/too long/)
    expect(decodeReply(b(`250 ${"x".repeat(100)}`), { maxLine: 50, maxLines: 4 })._tag).toBe("Invalid")
    expect(reasonOf("250-x\r\n".repeat(300))).toMatch(/256 lines/)
  })

  it("never throws on random bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        const d = decodeReply(Buffer.from(bytes))
        if (d._tag === "Need") return d.bytes > 0
        if (d._tag === "Frame") return d.size > 0 && d.size <= bytes.length
        return d.reason.length > 0
      }),
      { numRuns: 3000 }
    )
  })
})

describe("encodeReply", () => {
  it("writes one line or NNN- continuation lines", () => {
    expect(encodeReply(221, "2.0.0 Bye").toString()).toBe("221 2.0.0 Bye\r\n")
    expect(encodeReply(250, ["proxy greets x", "PIPELINING", "STARTTLS"]).toString()).toBe(
      "250-proxy greets x\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
    )
    expect(encodeReply(250, []).toString()).toBe("250 \r\n")
  })

  it("cannot be made to forge a second reply: CR, LF and controls in a text become spaces", () => {
    const forged = encodeReply(550, 'no route for "x"\r\n250 2.0.0 OK\u0000')
    expect(forged.toString()).toBe('550 no route for "x"  250 2.0.0 OK \r\n')
    expect(decodeAll(forged, (x) => decodeReply(x))).toHaveLength(1)
  })

  it("keeps each line within 512 bytes", () => {
    const long = encodeReply(451, `4.3.0 ${"x".repeat(2000)}`)
    expect(long.length).toBeLessThanOrEqual(512)
    expect(long.toString()).toMatch(/\.\.\.\r\n$/)
  })

  it("decodes back to what it encoded (property)", () => {
    const text = fc.stringMatching(/^[ -~]{0,80}$/)
    fc.assert(
      fc.property(fc.integer({ min: 200, max: 599 }), fc.array(text, { minLength: 1, maxLength: 8 }), (code, lines) => {
        expect(decodeReply(encodeReply(code, lines))).toMatchObject({ _tag: "Frame", value: { code, lines } })
      })
    )
  })
})
