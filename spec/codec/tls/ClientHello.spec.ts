import fc from "fast-check"
import { beforeAll, describe, expect, it } from "vitest"
import {
  AlertDescription,
  type ClientHello,
  type Decoded,
  decodeClientHello,
  encodeAlert,
  MAX_CLIENT_HELLO
} from "../../../src/codec/tls/index.ts"
import { curlAvailable, curlHello, nodeHello, refragment } from "./capture.ts"

const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff])
const vec8 = (b: Buffer) => Buffer.concat([Buffer.from([b.length]), b])
const vec16 = (b: Buffer) => Buffer.concat([u16(b.length), b])
const extension = (type: number, data: Buffer) => Buffer.concat([u16(type), vec16(data)])
const sni = (...names: Array<string | Buffer>) =>
  extension(
    0,
    vec16(Buffer.concat(names.map((n) => Buffer.concat([Buffer.from([0]), vec16(Buffer.from(n as string, "latin1"))]))))
  )
const alpn = (...names: Array<string>) => extension(16, vec16(Buffer.concat(names.map((n) => vec8(Buffer.from(n))))))

/** A ClientHello body: legacy version, random, session id, suites, compression, then `extensions` (or none). */
const body = (extensions: Array<Buffer> | undefined, sessionId = Buffer.alloc(32, 7)) =>
  Buffer.concat([
    u16(0x0303),
    Buffer.alloc(32, 1),
    vec8(sessionId),
    vec16(Buffer.from([0x13, 0x01, 0x13, 0x02])),
    vec8(Buffer.from([0])),
    ...(extensions === undefined ? [] : [vec16(Buffer.concat(extensions))])
  ])

const handshake = (b: Buffer, type = 1) =>
  Buffer.concat([Buffer.from([type, b.length >> 16, b.length >> 8, b.length]), b])
const record = (fragment: Buffer, type = 0x16) =>
  Buffer.concat([Buffer.from([type, 3, 1]), u16(fragment.length), fragment])
const hello = (extensions: Array<Buffer> | undefined) => record(handshake(body(extensions)))

const frameOf = (d: Decoded<ClientHello>): ClientHello => {
  if (d._tag !== "Frame") throw new Error(`expected a Frame, got ${JSON.stringify(d)}`)
  return d.value
}
const reasonOf = (d: Decoded<ClientHello>): string => {
  if (d._tag !== "Invalid") throw new Error(`expected Invalid, got ${JSON.stringify(d)}`)
  return d.reason
}

/** Every prefix is Need with a bound that never overshoots; the whole is the frame. */
const expectByteByByte = (bytes: Buffer, size = bytes.length) => {
  for (let i = 1; i < size; i++) {
    const d = decodeClientHello(bytes.subarray(0, i))
    expect(d._tag, `at ${i} of ${size}`).toBe("Need")
    if (d._tag === "Need") expect(d.bytes).toBeLessThanOrEqual(size - i)
  }
  const whole = decodeClientHello(bytes)
  expect(whole._tag).toBe("Frame")
  if (whole._tag === "Frame") expect(whole.size).toBe(size)
  return frameOf(whole)
}

describe("decodeClientHello on real clients' hellos", () => {
  let node: Buffer
  let nodeAlpn: Buffer
  let nodeNoSni: Buffer
  let node12: Buffer
  beforeAll(async () => {
    ;[node, nodeAlpn, nodeNoSni, node12] = await Promise.all([
      nodeHello({ servername: "Tenant-A.Example.test" }),
      nodeHello({ servername: "b.example.test", ALPNProtocols: ["h2", "http/1.1"] }),
      // An IP literal as host and no servername: node sends no SNI.
      nodeHello({}),
      nodeHello({ servername: "old.example.test", maxVersion: "TLSv1.2", minVersion: "TLSv1.2" })
    ])
  })

  it("reads the server name as sent, and ALPN in the client's order (node:tls)", () => {
    expect(frameOf(decodeClientHello(node))).toMatchObject({ serverName: "Tenant-A.Example.test", alpn: [] })
    expect(frameOf(decodeClientHello(nodeAlpn))).toEqual({
      version: 0x0303,
      serverName: "b.example.test",
      alpn: ["h2", "http/1.1"]
    })
    expect(frameOf(decodeClientHello(node12)).serverName).toBe("old.example.test")
  })

  it("answers serverName undefined for a client that sent no SNI", () => {
    expect(frameOf(decodeClientHello(nodeNoSni)).serverName).toBeUndefined()
  })

  it("frames exactly the ClientHello record, whatever follows it", () => {
    const d = decodeClientHello(Buffer.concat([nodeAlpn, Buffer.from("\x17\x03\x03\x00\x05early")]))
    expect(d).toMatchObject({ _tag: "Frame", size: nodeAlpn.length })
  })

  it("answers Need byte by byte, never asking for more than is missing", () => {
    expect(expectByteByByte(nodeAlpn).serverName).toBe("b.example.test")
  })

  it("reassembles a hello split across records (2, 1 and 100 byte fragments), also fed byte by byte", () => {
    for (const size of [100, 2, 1]) {
      const split = refragment(nodeAlpn, size)
      expect(frameOf(decodeClientHello(split))).toEqual(frameOf(decodeClientHello(nodeAlpn)))
    }
    expect(expectByteByByte(refragment(node, 3)).serverName).toBe("Tenant-A.Example.test")
  })

  it("reads curl's hello (ALPN h2, http/1.1) and its HTTP/1.1-only one", async () => {
    if (!(await curlAvailable())) return
    const [h2, h1] = await Promise.all([curlHello("shop.example.test"), curlHello("api.example.test", ["--http1.1"])])
    expect(frameOf(decodeClientHello(h2))).toMatchObject({ serverName: "shop.example.test", alpn: ["h2", "http/1.1"] })
    expect(frameOf(decodeClientHello(h1))).toMatchObject({ serverName: "api.example.test", alpn: ["http/1.1"] })
    expect(expectByteByByte(refragment(h2, 7)).serverName).toBe("shop.example.test")
  })
})

describe("decodeClientHello on built hellos", () => {
  it("accepts a hello without extensions and one with an empty extension list", () => {
    expect(frameOf(decodeClientHello(hello(undefined)))).toEqual({ version: 0x0303, serverName: undefined, alpn: [] })
    expect(frameOf(decodeClientHello(hello([])))).toEqual({ version: 0x0303, serverName: undefined, alpn: [] })
  })

  it("skips unknown extensions and name types other than host_name", () => {
    const other = extension(
      0,
      vec16(
        Buffer.concat([
          Buffer.from([5]),
          vec16(Buffer.from("opaque")),
          Buffer.from([0]),
          vec16(Buffer.from("a.example.test"))
        ])
      )
    )
    const d = decodeClientHello(hello([extension(0xfe0d, Buffer.alloc(40)), other, alpn("x")]))
    expect(frameOf(d)).toMatchObject({ serverName: "a.example.test", alpn: ["x"] })
  })

  it("refuses a server name that is not a DNS host name", () => {
    for (const bad of [
      "a..b",
      ".a",
      "a.",
      "a b",
      "a/b",
      "[::1]",
      "é.test",
      "a\0b",
      "x".repeat(64),
      `${"a.".repeat(127)}a`
    ]) {
      expect(reasonOf(decodeClientHello(hello([sni(bad)]))), bad).toContain("not a DNS host name")
    }
    expect(frameOf(decodeClientHello(hello([sni("x".repeat(63))]))).serverName).toBe("x".repeat(63))
    expect(frameOf(decodeClientHello(hello([sni("_acme-1.A.test")]))).serverName).toBe("_acme-1.A.test")
  })

  it("refuses two server names, two SNI or ALPN extensions, and an empty SNI or ALPN", () => {
    expect(reasonOf(decodeClientHello(hello([sni("a.test", "b.test")])))).toContain("two host names")
    expect(reasonOf(decodeClientHello(hello([sni("a.test"), sni("a.test")])))).toContain("two server_name")
    expect(reasonOf(decodeClientHello(hello([alpn("h2"), alpn("h2")])))).toContain("two ALPN")
    expect(reasonOf(decodeClientHello(hello([extension(0, Buffer.alloc(0))])))).toContain("without a list")
    expect(reasonOf(decodeClientHello(hello([extension(16, vec16(Buffer.alloc(0)))])))).toContain("empty ALPN")
    expect(reasonOf(decodeClientHello(hello([alpn("")])))).toContain("ALPN protocol name")
  })

  it("refuses lengths that do not add up", () => {
    const ok = body([sni("a.test")])
    const at = ok.length - sni("a.test").length - 2 // the extensions' length field
    const shortExt = Buffer.from(ok)
    shortExt.writeUInt16BE(ok.readUInt16BE(at) - 1, at)
    expect(reasonOf(decodeClientHello(record(handshake(shortExt))))).toContain("extensions length does not match")
    // A server name whose length runs past its extension.
    const overrun = Buffer.from(hello([sni("a.test")]))
    overrun.writeUInt16BE(200, overrun.length - "a.test".length - 2)
    expect(reasonOf(decodeClientHello(overrun))).toContain("overruns")
    expect(reasonOf(decodeClientHello(record(handshake(body(undefined, Buffer.alloc(33))))))).toContain("session id")
    expect(reasonOf(decodeClientHello(record(handshake(Buffer.alloc(20)))))).toContain("too short")
    const oddSuites = Buffer.concat([
      u16(0x0303),
      Buffer.alloc(32),
      vec8(Buffer.alloc(0)),
      vec16(Buffer.from([1])),
      vec8(Buffer.from([0]))
    ])
    expect(reasonOf(decodeClientHello(record(handshake(oddSuites))))).toContain("cipher suites")
  })

  it("refuses what is not TLS, at the first byte", () => {
    expect(reasonOf(decodeClientHello(Buffer.from("G")))).toContain("not TLS: first byte 0x47 ('G')")
    expect(reasonOf(decodeClientHello(Buffer.from("GET / HTTP/1.1\r\n")))).toContain("not TLS")
    expect(reasonOf(decodeClientHello(Buffer.from("*1\r\n$4\r\nPING\r\n")))).toContain("not TLS")
    expect(reasonOf(decodeClientHello(Buffer.from([0x16, 0x47])))).toContain("record version")
    expect(reasonOf(decodeClientHello(Buffer.from([0x80, 0x2e, 0x01, 0x03, 0x01])))).toContain("SSL 2.0")
  })

  it("refuses a handshake that is not a ClientHello, an empty record, or a non-handshake record mid-hello", () => {
    expect(reasonOf(decodeClientHello(record(handshake(body([]), 2))))).toContain("type 2")
    expect(reasonOf(decodeClientHello(record(Buffer.alloc(0))))).toContain("empty handshake record")
    const h = handshake(body([sni("a.test")]))
    const mixed = Buffer.concat([record(h.subarray(0, 10)), record(h.subarray(10), 0x17)])
    expect(reasonOf(decodeClientHello(mixed))).toContain("content type 23")
    expect(reasonOf(decodeClientHello(record(Buffer.from([0x15, 2]), 0x15)))).toContain("not TLS")
  })

  it(`refuses a ClientHello over ${MAX_CLIENT_HELLO} bytes as soon as its length is known`, () => {
    const big = handshake(body([sni("a.test"), extension(0xffce, Buffer.alloc(MAX_CLIENT_HELLO))]))
    // Only the first 100 bytes have arrived: the handshake header already says too much is coming.
    expect(reasonOf(decodeClientHello(record(big.subarray(0, 100))))).toContain("limit is 16384")
    expect(reasonOf(decodeClientHello(Buffer.from([0x16, 3, 1, 0x40, 0x01])))).toContain("record of 16385 bytes")
    // A record header and a handshake header, nothing else yet: enough to refuse without waiting for 16 KB.
    expect(reasonOf(decodeClientHello(Buffer.from([0x16, 3, 1, 0x40, 0, 1, 0, 0x40, 0])))).toContain("16388 bytes")
    expect(reasonOf(decodeClientHello(Buffer.from([0x16, 3, 1, 0x40, 0, 2, 0, 0, 9])))).toContain("type 2")
    // At the limit exactly it is still read, across two records.
    const padding = MAX_CLIENT_HELLO - handshake(body([sni("a.test"), extension(0xffce, Buffer.alloc(0))])).length
    const exact = handshake(body([sni("a.test"), extension(0xffce, Buffer.alloc(padding))]))
    expect(exact.length).toBe(MAX_CLIENT_HELLO)
    const two = Buffer.concat([record(exact.subarray(0, 16_000)), record(exact.subarray(16_000))])
    expect(frameOf(decodeClientHello(two)).serverName).toBe("a.test")
  })

  it("never throws, and answers well-formed results, on arbitrary bytes", () => {
    const check = (buf: Buffer) => {
      const d = decodeClientHello(buf)
      if (d._tag === "Need") return d.bytes > 0
      if (d._tag === "Frame") return d.size > 0 && d.size <= buf.length
      return d.reason.length > 0
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (a) => check(Buffer.from(a))),
      { numRuns: 5_000 }
    )
    // Garbage behind a plausible header reaches the deeper parsers.
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.integer({ min: 1, max: 450 }), (a, len) => {
        const h = Buffer.concat([Buffer.from([1, 0, len >> 8, len & 0xff]), Buffer.from(a)])
        return check(record(h)) && check(Buffer.concat([u16(0x1603), h]))
      }),
      { numRuns: 5_000 }
    )
  })

  it("never throws on a real hello with bytes flipped, cut or split anywhere", async () => {
    const real = await nodeHello({ servername: "fuzz.example.test", ALPNProtocols: ["h2"] })
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: real.length - 1 }),
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 1, max: real.length }),
        fc.integer({ min: 1, max: 300 }),
        (at, byte, cut, fragment) => {
          const flipped = Buffer.from(real)
          flipped[at] = byte
          for (const input of [flipped, flipped.subarray(0, cut), refragment(flipped, fragment)]) {
            const d = decodeClientHello(input)
            if (d._tag === "Frame" && d.size > input.length) return false
          }
          return true
        }
      ),
      { numRuns: 3_000 }
    )
  })
})

describe("encodeAlert", () => {
  it("is a fatal alert record", () => {
    expect([...encodeAlert(AlertDescription.UnrecognizedName)]).toEqual([21, 3, 3, 0, 2, 2, 112])
  })
})
