import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { decodeProxyHeader, encodeProxyHeader, looksLikeProxyHeader } from "../../../src/codec/proxy/ProxyHeader.ts"

const src = { address: "203.0.113.7", port: 51234 }
const dst = { address: "198.51.100.1", port: 5432 }

describe("PROXY protocol header", () => {
  it("decodes v1 TCP4 and TCP6 and UNKNOWN, with the bytes after it left alone", () => {
    const buf = Buffer.from("PROXY TCP4 203.0.113.7 198.51.100.1 51234 5432\r\nhello")
    const d = decodeProxyHeader(buf)
    expect(d).toEqual({
      _tag: "Frame",
      value: { version: 1, command: "PROXY", family: "TCP4", source: src, destination: dst },
      size: buf.length - 5
    })
    const v6 = decodeProxyHeader(Buffer.from("PROXY TCP6 2001:db8::1 ::1 1 2\r\n"))
    expect(v6._tag === "Frame" && v6.value.source).toEqual({ address: "2001:db8::1", port: 1 })
    const unknown = decodeProxyHeader(Buffer.from("PROXY UNKNOWN\r\n"))
    expect(unknown._tag === "Frame" && unknown.value.family).toBe("UNKNOWN")
  })

  it("round-trips v2 for IPv4 and IPv6, and reads LOCAL", () => {
    for (const [s, d] of [
      [src, dst],
      [
        { address: "2001:db8::7", port: 1 },
        { address: "::1", port: 443 }
      ]
    ] as const) {
      const bytes = encodeProxyHeader(2, s, d)
      const out = decodeProxyHeader(Buffer.concat([bytes, Buffer.from("rest")]))
      expect(out).toEqual({
        _tag: "Frame",
        value: expect.objectContaining({ version: 2, source: s, destination: d }),
        size: bytes.length
      })
    }
    const local = encodeProxyHeader(2, src, dst)
    local[12] = 0x20
    const l = decodeProxyHeader(local)
    expect(l._tag === "Frame" && l.value.command).toBe("LOCAL")
  })

  it("encodes v1 the way HAProxy writes it", () => {
    expect(encodeProxyHeader(1, src, dst).toString()).toBe("PROXY TCP4 203.0.113.7 198.51.100.1 51234 5432\r\n")
    expect(encodeProxyHeader(1, { address: "::ffff:127.0.0.1", port: 1 }, { address: "::1", port: 2 }).toString()).toBe(
      "PROXY TCP6 ::ffff:127.0.0.1 ::1 1 2\r\n"
    )
  })

  it("asks for more bytes, byte by byte, then decodes", () => {
    for (const full of [encodeProxyHeader(1, src, dst), encodeProxyHeader(2, src, dst)]) {
      for (let i = 1; i < full.length; i++) expect(decodeProxyHeader(full.subarray(0, i))._tag).toBe("Need")
      expect(decodeProxyHeader(full)._tag).toBe("Frame")
    }
  })

  it("refuses what is not a header, overlong v1, bad addresses", () => {
    expect(decodeProxyHeader(Buffer.from("GET / HTTP/1.1\r\n"))._tag).toBe("Invalid")
    expect(looksLikeProxyHeader(Buffer.from([0, 0, 0, 8]))).toBe(false)
    expect(decodeProxyHeader(Buffer.from(`PROXY TCP4 ${"1".repeat(120)}\r\n`))._tag).toBe("Invalid")
    expect(decodeProxyHeader(Buffer.from("PROXY TCP4 300.1.1.1 1.1.1.1 1 2\r\n"))._tag).toBe("Invalid")
    expect(decodeProxyHeader(Buffer.from("PROXY TCP4 1.1.1.1 1.1.1.1 1 99999\r\n"))._tag).toBe("Invalid")
  })

  it("never throws on arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const d = decodeProxyHeader(Buffer.from(bytes))
        if (d._tag === "Need") expect(d.bytes).toBeGreaterThan(0)
        if (d._tag === "Frame") expect(d.size).toBeLessThanOrEqual(bytes.length)
      })
    )
    const sig = encodeProxyHeader(2, src, dst).subarray(0, 12)
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        decodeProxyHeader(Buffer.concat([sig, Buffer.from(bytes)]))
      })
    )
  })
})
