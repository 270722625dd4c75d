import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  CHUNK_INVALID,
  CHUNK_MORE,
  ChunkedReader,
  decodeRequestHead,
  decodeResponseHead,
  Framing,
  headEnd,
  isH2Preface,
  parseAuthority,
  parseTrailerText,
  partialHeadError,
  type RequestHead,
  type ResponseHead,
  responseFraming,
  responseKeepsAlive,
  skipEmptyLines
} from "../../../src/codec/http/index.ts"

const b = (s: string) => Buffer.from(s, "latin1")

const request = (s: string): RequestHead => {
  const buf = b(s)
  const end = headEnd(buf, 0, buf.length)
  if (end < 0) throw new Error("no head end")
  const d = decodeRequestHead(buf, 0, end)
  if (d._tag !== "Frame") throw new Error(`expected a head, got ${JSON.stringify(d)}`)
  expect(d.size).toBe(end)
  return d.value
}

const refused = (s: string): { status: number; reason: string } => {
  const buf = b(s)
  const end = headEnd(buf, 0, buf.length)
  const d = decodeRequestHead(buf, 0, end < 0 ? buf.length : end)
  if (d._tag !== "Invalid") throw new Error(`expected Invalid, got ${JSON.stringify(d)}`)
  return { status: d.status, reason: d.reason }
}

const response = (s: string): ResponseHead => {
  const buf = b(s)
  const d = decodeResponseHead(buf, 0, headEnd(buf, 0, buf.length))
  if (d._tag !== "Frame") throw new Error(`expected a head, got ${JSON.stringify(d)}`)
  return d.value
}

describe("decodeRequestHead", () => {
  it("reads the request line and fields, keeping names as sent and lower-casing a copy", () => {
    const h = request(
      "GET /a?b=1 HTTP/1.1\r\nHost: Example.COM:8080\r\nX-Thing:  spaced value \t\r\nAccept: */*\r\n\r\n"
    )
    expect(h).toMatchObject({ method: "GET", target: "/a?b=1", minor: 1, host: "Example.COM:8080", chunked: false })
    expect(h.fields).toEqual([
      "Host",
      "host",
      "Example.COM:8080",
      "X-Thing",
      "x-thing",
      "spaced value",
      "Accept",
      "accept",
      "*/*"
    ])
    expect(h.contentLength).toBe(-1)
  })

  it("decides the body framing once: Content-Length, chunked, or none", () => {
    expect(request("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n").contentLength).toBe(12)
    expect(request("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n").contentLength).toBe(
      5
    )
    expect(request("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n").contentLength).toBe(5)
    expect(request("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n").chunked).toBe(true)
    expect(request("GET / HTTP/1.0\r\nHost: a\r\n\r\n")).toMatchObject({ minor: 0, chunked: false, contentLength: -1 })
  })

  it("collects Connection tokens, Upgrade and Expect", () => {
    const h = request(
      "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, X-Foo\r\nConnection: keep-alive\r\nUpgrade: websocket\r\nExpect: 100-continue\r\n\r\n"
    )
    expect(h.connection).toBe("upgrade,x-foo,keep-alive")
    expect(h.upgrade).toBe("websocket")
    expect(h.expect).toBe("100-continue")
  })

  it("turns an absolute-form target into its authority and origin-form path", () => {
    expect(request("GET http://b.test:81/x?y HTTP/1.1\r\nHost: a\r\n\r\n")).toMatchObject({
      authority: "b.test:81",
      target: "/x?y"
    })
    expect(request("GET HTTPS://b.test HTTP/1.1\r\n\r\n")).toMatchObject({ authority: "b.test", target: "/" })
    expect(request("GET http://b.test?q HTTP/1.1\r\n\r\n")).toMatchObject({ target: "/?q" })
    expect(request("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").target).toBe("*")
  })

  it("refuses framing a server could read differently (400)", () => {
    const cases = [
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9999999999999999\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n",
      "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\n X-Folded: 1\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n folded\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\nX: 1\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX: a\u0000b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX\u0001: 1\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\n: empty name\r\n\r\n",
      "GET / HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
      "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
      "GET /\u00ff HTTP/1.1\r\nHost: a\r\n\r\n",
      "G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.x\r\nHost: a\r\n\r\n",
      "GET / FTP/1.1\r\nHost: a\r\n\r\n",
      "GET x HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET http://user@b.test/ HTTP/1.1\r\nHost: a\r\n\r\n"
    ]
    for (const c of cases) expect(refused(c).status, JSON.stringify(c)).toBe(400)
  })

  it("501 for a transfer coding it will not relay, 505 for another HTTP major version, 431 for too many fields", () => {
    expect(refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").status).toBe(501)
    expect(refused("GET / HTTP/2.0\r\nHost: a\r\n\r\n").status).toBe(505)
    const many = `GET / HTTP/1.1\r\nHost: a\r\n${"X: 1\r\n".repeat(300)}\r\n`
    expect(refused(many).status).toBe(431)
  })

  it("never throws on random bytes, and a complete head decodes the same however it was split", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const buf = Buffer.from(bytes)
        const d = decodeRequestHead(buf, 0, buf.length)
        expect(["Frame", "Invalid"]).toContain(d._tag)
      })
    )
    const whole = b("POST /x HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\nX-A: b\r\n\r\n")
    fc.assert(
      fc.property(fc.integer({ min: 1, max: whole.length - 1 }), (cut) => {
        // Fed in two pieces: the end is found only once the second arrives, and from where the search stopped.
        expect(headEnd(whole.subarray(0, cut), 0, cut)).toBe(-1)
        const end = headEnd(whole, 0, whole.length, cut)
        expect(end).toBe(whole.length)
        expect(decodeRequestHead(whole, 0, end)).toEqual(decodeRequestHead(whole, 0, whole.length))
      })
    )
  })

  it("skips empty lines before a request and spots the h2 preface", () => {
    const buf = b("\r\n\r\nGET / HTTP/1.1\r\n")
    expect(skipEmptyLines(buf, 0, buf.length)).toBe(4)
    const preface = b("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    expect(isH2Preface(preface, 0, preface.length)).toBe(true)
    expect(isH2Preface(preface, 0, 5)).toBe(undefined)
    expect(isH2Preface(b("GET / HTTP/1.1"), 0, 14)).toBe(false)
  })
})

describe("decodeResponseHead and its framing", () => {
  it("reads the status line and decides the body length per RFC 9112 §6.3", () => {
    const ok = response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
    expect(ok).toMatchObject({ status: 200, reason: "OK", minor: 1, contentLength: 5 })
    expect(responseFraming(ok, "GET")).toBe(Framing.Length)
    expect(responseFraming(ok, "HEAD")).toBe(Framing.None)
    expect(responseFraming(response("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"), "GET")).toBe(Framing.None)
    expect(responseFraming(response("HTTP/1.1 304 Not Modified\r\n\r\n"), "GET")).toBe(Framing.None)
    expect(responseFraming(response("HTTP/1.1 100 Continue\r\n\r\n"), "GET")).toBe(Framing.None)
    expect(responseFraming(response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), "GET")).toBe(
      Framing.Chunked
    )
    expect(responseFraming(response("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), "GET")).toBe(Framing.Close)
    expect(responseFraming(response("HTTP/1.0 200 OK\r\n\r\n"), "GET")).toBe(Framing.Close)
    expect(response("HTTP/1.1 404\r\n\r\n")).toMatchObject({ status: 404, reason: "" })
  })

  it("knows when the server keeps the connection", () => {
    expect(responseKeepsAlive(response("HTTP/1.1 200 OK\r\n\r\n"))).toBe(true)
    expect(responseKeepsAlive(response("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"))).toBe(false)
    expect(responseKeepsAlive(response("HTTP/1.0 200 OK\r\n\r\n"))).toBe(false)
    expect(responseKeepsAlive(response("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n\r\n"))).toBe(true)
  })

  it("refuses responses that could desynchronise a pooled connection (502)", () => {
    for (const s of [
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
      "HTTP/1.1 2OO OK\r\n\r\n",
      "HTTP/1.1 099 Low\r\n\r\n",
      "HTTP/2 200\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX: a\nY: b\r\n\r\n",
      "HTTP/1.1 200 O\u0000K\r\n\r\n"
    ]) {
      const buf = b(s)
      const d = decodeResponseHead(buf, 0, headEnd(buf, 0, buf.length))
      expect(d._tag, JSON.stringify(s)).toBe("Invalid")
      if (d._tag === "Invalid") expect(d.status).toBe(502)
    }
  })
})

describe("ChunkedReader", () => {
  const body = "4\r\nWiki\r\n5;name=value\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Sum: 7\r\n\r\n"

  it("finds the end of a chunked body and hands out the decoded data and trailers", () => {
    const data: Array<string> = []
    const r = new ChunkedReader(true)
    const buf = b(`${body}NEXT`)
    const end = r.read(buf, 0, buf.length, { chunkData: (x, s, e) => data.push(x.toString("latin1", s, e)) })
    expect(end).toBe(body.length)
    expect(data.join("")).toBe("Wikipedia in\r\n\r\nchunks.")
    expect(parseTrailerText(r.trailerText)).toEqual([["x-sum", "7"]])
  })

  it("gives the same answer however the bytes are split", () => {
    const whole = b(body)
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: whole.length - 1 }), { maxLength: 8 }), (cuts) => {
        const points = [...new Set(cuts)].sort((x, y) => x - y)
        const r = new ChunkedReader()
        let start = 0
        let result = CHUNK_MORE
        for (const p of [...points, whole.length]) {
          result = r.read(whole, start, p)
          if (result !== CHUNK_MORE) break
          start = p
        }
        expect(result).toBe(whole.length)
      })
    )
  })

  it("refuses what a server could read differently", () => {
    for (const bad of [
      "4\nWiki\r\n0\r\n\r\n",
      "4\r\nWikiX\r\n0\r\n\r\n",
      "4\r\nWiki\n0\r\n\r\n",
      "-4\r\nWiki\r\n0\r\n\r\n",
      " 4\r\nWiki\r\n0\r\n\r\n",
      "4;a\nb\r\nWiki\r\n0\r\n\r\n",
      "fffffffffffffffff\r\n",
      "0\r\nX-Sum 7\r\n\r\n",
      "0\r\n\n"
    ]) {
      const r = new ChunkedReader()
      const buf = b(bad)
      expect(r.read(buf, 0, buf.length), JSON.stringify(bad)).toBe(CHUNK_INVALID)
      expect(r.error.length).toBeGreaterThan(0)
    }
  })
})

describe("parseAuthority", () => {
  it("lower-cases, strips the port and a trailing dot, accepts IP literals", () => {
    expect(parseAuthority("Example.COM:8080")).toEqual({ hostname: "example.com", port: 8080 })
    expect(parseAuthority("example.com.")).toEqual({ hostname: "example.com", port: 0 })
    expect(parseAuthority("10.1.2.3")).toEqual({ hostname: "10.1.2.3", port: 0 })
    expect(parseAuthority("[::1]:443")).toEqual({ hostname: "::1", port: 443 })
    expect(parseAuthority("my_service.internal")).toEqual({ hostname: "my_service.internal", port: 0 })
  })

  it("refuses what is not a host", () => {
    for (const bad of [
      "",
      "a b",
      "a/b",
      "-a.test",
      "a..test",
      "a.test:99999",
      "a.test:x",
      "[::1",
      "[zz]:80",
      "127.1",
      "2130706433",
      `${"a".repeat(64)}.test`
    ]) {
      expect(typeof parseAuthority(bad), bad).toBe("string")
    }
  })
})

describe("partialHeadError: a head still arriving", () => {
  const valid = [
    "GET /a?b=1 HTTP/1.1\r\nHost: a.test\r\nX-Thing:  spaced \t\r\n\r\n",
    "M-SEARCH * HTTP/1.1\r\nHost: a.test\r\n\r\n",
    "OPTIONS * HTTP/1.0\r\n\r\n",
    `${"X".repeat(40)} /long-method HTTP/1.1\r\nHost: a.test\r\n\r\n`
  ]

  it("never refuses a prefix of a valid head, however it was split", () => {
    for (const head of valid) {
      const buf = b(head)
      for (let end = 0; end < buf.length; end++) {
        for (let from = 0; from <= end; from++) expect(partialHeadError(buf, 0, from, end), head).toBeUndefined()
      }
    }
    // A lone CR may become the CRLF of an empty line before the request line.
    expect(partialHeadError(b("\r"), 0, 0, 1)).toBeUndefined()
  })

  it("refuses a bare LF and a method that is not a token at once", () => {
    const cases: Array<[string, string]> = [
      ["GET / HTTP/1.1\nHost: a", "bare LF"],
      ["GET / HTTP/1.1\r\nHost: a\n", "bare LF"],
      ["\n", "bare LF"],
      ["\u0016\u0003\u0001", "invalid byte 0x16"],
      [" GET /", "without a method"],
      ["GE\u0000T", "invalid byte 0x00"],
      ["\rX", "invalid byte 0x0d"]
    ]
    for (const [text, reason] of cases) {
      const buf = b(text)
      const d = partialHeadError(buf, 0, 0, buf.length)
      expect(d?.status, text).toBe(400)
      expect(d?.reason, text).toContain(reason)
    }
    // Only the bytes from `from` are looked at for bare LFs; `start` offsets everything.
    const offset = b("xxGET / HTTP/1.1\r\nHost: a\n")
    expect(partialHeadError(offset, 2, 0, offset.length)?.reason).toContain("bare LF")
  })

  it("refuses only what the whole-head decoder would refuse too", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
        const head = Buffer.from(bytes)
        fc.pre(head.indexOf("\r\n\r\n") < 0)
        if (partialHeadError(head, 0, 0, head.length) === undefined) return
        const whole = Buffer.concat([head, b("\r\n\r\n")])
        expect(decodeRequestHead(whole, 0, headEnd(whole, 0, whole.length))._tag).toBe("Invalid")
      })
    )
  })
})

describe("decoders stay inside [start, end)", () => {
  it("never read the bytes after `end`, whatever they are", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.constantFrom(":", "\r\n", " ", "\n", "x"), (bytes, tail) => {
        const head = Buffer.from(bytes)
        const buf = Buffer.concat([head, Buffer.from(tail.repeat(20), "latin1")])
        // Whatever follows `end` must not change the verdict on the bytes before it.
        const alone = decodeRequestHead(head, 0, head.length)
        const followed = decodeRequestHead(buf, 0, head.length)
        expect(followed._tag).toBe(alone._tag)
        const r1 = decodeResponseHead(head, 0, head.length)
        const r2 = decodeResponseHead(buf, 0, head.length)
        expect(r2._tag).toBe(r1._tag)
      })
    )
  })
})
