// `listeners.tcp.route: sni`: real TLS clients (node:tls, curl) through polyproxy to two TLS origins with certificates
// from two unrelated CAs. Each client verifies the origin's certificate itself, and both ends derive the same keying
// material: one TLS session from client to origin, never terminated by the proxy.
import { execFile } from "node:child_process"
import { X509Certificate } from "node:crypto"
import * as https from "node:https"
import * as net from "node:net"
import { join } from "node:path"
import * as tls from "node:tls"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { decodeClientHello } from "../../src/codec/tls/index.ts"
import { curlAvailable, nodeHello, refragment } from "../codec/tls/capture.ts"
import { makeSiteCerts, type SiteCerts } from "../support/certs.ts"
import { eventually, startTestProxy, type TestProxy } from "../support/proxy.ts"

interface Seen {
  readonly origin: string
  readonly servername: string | false
  readonly offered: ReadonlyArray<string>
  readonly alpn: string | false | null
  /** RFC 5705 keying material of this TLS session, as the origin derives it. */
  readonly ekm: string
}

interface Origin {
  readonly name: string
  readonly port: number
  readonly certs: SiteCerts
  readonly close: () => Promise<void>
}

const EKM_LABEL = "EXPORTER-polyproxy-spec"
const EKM_CONTEXT = Buffer.from("tcp-sni")

/** An HTTPS origin answering with what its side of the TLS session saw: SNI, the client's ALPN offer, keying material. */
const startOrigin = async (name: string, certs: SiteCerts): Promise<Origin> => {
  const offers = new WeakMap<object, ReadonlyArray<string>>()
  let lastOffer: ReadonlyArray<string> = []
  const server = https.createServer(
    {
      key: certs.server.key,
      cert: certs.server.cert,
      // Called with the client's own ALPN list: what reaches it is what the client sent.
      ALPNCallback: ({ protocols }) => {
        lastOffer = protocols
        return protocols.includes("http/1.1") ? "http/1.1" : protocols[0]
      }
    },
    (req, res) => {
      const socket = req.socket as tls.TLSSocket
      const seen: Seen = {
        origin: name,
        servername: (socket as tls.TLSSocket & { servername: string | false }).servername,
        offered: offers.get(socket) ?? [],
        alpn: socket.alpnProtocol,
        ekm: socket.exportKeyingMaterial(32, EKM_LABEL, EKM_CONTEXT).toString("hex")
      }
      res.setHeader("content-type", "application/json")
      res.end(JSON.stringify(seen))
    }
  )
  server.on("secureConnection", (socket) => {
    offers.set(socket, lastOffer)
    lastOffer = []
  })
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  return {
    name,
    port: (server.address() as net.AddressInfo).port,
    certs,
    close: () => new Promise((r) => server.close(() => r()))
  }
}

interface Fetched {
  readonly seen: Seen
  readonly ekm: string
  readonly authorized: boolean
  readonly peer: X509Certificate
  readonly alpn: string | false | null
}

/** One HTTPS request over a hand-made TLS connection, so every option of the client is visible here. */
const fetchOver = (options: tls.ConnectionOptions & { hostHeader: string }): Promise<Fetched> =>
  new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", ...options }, () => {
      const peer = new X509Certificate(socket.getPeerX509Certificate()!.raw)
      const ekm = socket.exportKeyingMaterial(32, EKM_LABEL, EKM_CONTEXT).toString("hex")
      socket.write(`GET / HTTP/1.1\r\nHost: ${options.hostHeader}\r\nConnection: close\r\n\r\n`)
      let text = ""
      socket.setEncoding("utf8")
      socket.on("data", (d) => (text += d))
      socket.on("end", () => {
        const body = text.slice(text.indexOf("\r\n\r\n") + 4)
        resolve({ seen: JSON.parse(body) as Seen, ekm, authorized: socket.authorized, peer, alpn: socket.alpnProtocol })
      })
    })
    socket.on("error", reject)
  })

/** Resolves with the TLS error a client gets (or "connected"). */
const tlsError = (options: tls.ConnectionOptions): Promise<string> =>
  new Promise((resolve) => {
    const socket = tls.connect({ host: "127.0.0.1", ...options }, () => {
      socket.destroy()
      resolve("connected")
    })
    socket.on("error", (e: NodeJS.ErrnoException) => resolve(`${e.code ?? ""} ${e.message}`))
  })

/** Raw bytes in, everything the proxy sends back until it closes, and how long that took. */
const rawExchange = (port: number, chunks: ReadonlyArray<Buffer>, gapMs = 0) =>
  new Promise<{ data: Buffer; ms: number }>((resolve, reject) => {
    const started = Date.now()
    const s = net.connect(port, "127.0.0.1", async () => {
      for (const c of chunks) {
        if (s.destroyed) break
        s.write(c)
        if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs))
      }
    })
    const data: Array<Buffer> = []
    s.on("data", (d) => data.push(d))
    s.once("close", () => resolve({ data: Buffer.concat(data), ms: Date.now() - started }))
    s.once("error", reject)
  })

const curl = (args: ReadonlyArray<string>) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile("curl", ["-sS", "--max-time", "10", ...args], (error, stdout, stderr) =>
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr })
    )
  })

let a: Origin
let b: Origin
let proxy: TestProxy
let port: number

const routes = () => ({
  "a.sni.test": `127.0.0.1:${a.port}`,
  "b.sni.test": `127.0.0.1:${b.port}`
})

beforeAll(async () => {
  const [certsA, certsB] = await Promise.all([makeSiteCerts(["a.sni.test"]), makeSiteCerts(["b.sni.test"])])
  ;[a, b] = await Promise.all([startOrigin("a", certsA), startOrigin("b", certsB)])
  proxy = await startTestProxy({
    listeners: { tcp: { host: "127.0.0.1", port: 0, route: "sni", protocol: "http" } },
    routes: routes(),
    ssrf: { allow: ["127.0.0.0/8"] },
    timeouts: { handshake: 1 }
  })
  port = proxy.port("tcp")
})

afterAll(async () => {
  await proxy?.stop()
  await Promise.all([a?.close(), b?.close()])
})

describe("route: sni, node:tls clients", () => {
  it("routes by server name; the client verifies each origin's own certificate and shares its TLS session", async () => {
    for (const origin of [a, b]) {
      const host = `${origin.name}.sni.test`
      const got = await fetchOver({
        port,
        servername: host,
        hostHeader: host,
        ca: origin.certs.ca.cert,
        ALPNProtocols: ["polyproxy-test", "http/1.1"]
      })
      expect(got.authorized).toBe(true)
      expect(got.peer.fingerprint256).toBe(new X509Certificate(origin.certs.server.cert).fingerprint256)
      expect(got.seen).toMatchObject({
        origin: origin.name,
        servername: host,
        offered: ["polyproxy-test", "http/1.1"],
        alpn: "http/1.1"
      })
      expect(got.alpn).toBe("http/1.1")
      // Same exported keying material on both ends: the proxy holds no TLS session of its own in between.
      expect(got.seen.ekm).toBe(got.ekm)
    }
  })

  it("once a name's route is cached, its connections skip the handshake fiber, TLS still end to end", async () => {
    const fast = () => proxy.handle.listeners[0]!.fastConnections!()
    const options = { port, servername: "a.sni.test", hostHeader: "a.sni.test", ca: a.certs.ca.cert }
    await fetchOver(options)
    const before = fast()
    const got = await fetchOver(options)
    expect(fast()).toBe(before + 1)
    expect(got.authorized).toBe(true)
    expect(got.seen.origin).toBe("a")
    expect(got.seen.ekm).toBe(got.ekm)
  })

  it("matches the server name case-insensitively", async () => {
    const got = await fetchOver({ port, servername: "B.SNI.Test", hostHeader: "b.sni.test", ca: b.certs.ca.cert })
    expect(got.seen.origin).toBe("b")
  })

  it("never presents a certificate of its own: a client trusting only A's CA cannot reach B", async () => {
    const error = await tlsError({ port, servername: "b.sni.test", ca: a.certs.ca.cert })
    expect(error).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify/i)
  })

  it("relays a ClientHello split into 1-byte TCP segments and several TLS records", async () => {
    // A relay in front of the proxy: re-frames the client's ClientHello as 40-byte records, sends it a byte at a time.
    const chopper = net.createServer((client) => {
      const upstream = net.connect(port, "127.0.0.1")
      upstream.setNoDelay(true)
      let pending = Buffer.alloc(0)
      let passThrough = false
      client.on("data", async (chunk: Buffer) => {
        if (passThrough) return void upstream.write(chunk)
        pending = Buffer.concat([pending, chunk])
        const d = decodeClientHello(pending)
        if (d._tag !== "Frame") return
        passThrough = true
        const split = Buffer.concat([refragment(pending.subarray(0, d.size), 40), pending.subarray(d.size)])
        client.pause()
        for (let i = 0; i < split.length; i++) {
          upstream.write(split.subarray(i, i + 1))
          if (i % 64 === 0) await new Promise((r) => setTimeout(r, 1))
        }
        client.resume()
      })
      upstream.pipe(client)
      client.on("error", () => upstream.destroy())
      upstream.on("error", () => client.destroy())
      client.on("end", () => upstream.end())
    })
    await new Promise<void>((r) => chopper.listen(0, "127.0.0.1", r))
    try {
      const got = await fetchOver({
        port: (chopper.address() as net.AddressInfo).port,
        servername: "a.sni.test",
        hostHeader: "a.sni.test",
        ca: a.certs.ca.cert
      })
      expect(got.authorized).toBe(true)
      expect(got.seen.origin).toBe("a")
      expect(got.seen.ekm).toBe(got.ekm)
    } finally {
      chopper.close()
    }
  })

  it("labels metrics and log lines with the listener's protocol", async () => {
    const text = await fetch(`${proxy.adminUrl}/metrics`).then((r) => r.text())
    expect(text).toMatch(/polyproxy_connections_accepted_total\{listener="tcp",protocol="http"\} [1-9]/)
    await eventually(() => proxy.logs.some((l) => l.event === "connection closed"))
    expect(proxy.logs.find((l) => l.event === "connection closed")).toMatchObject({ listener: "tcp", protocol: "http" })
    expect(proxy.logs.find((l) => l.event === "listening")).toMatchObject({ protocol: "http" })
  })
})

describe("route: sni, curl", () => {
  it("reaches each origin with --resolve, verifying it with that origin's CA (ALPN h2 offered, http/1.1 chosen)", async () => {
    if (!(await curlAvailable())) return
    for (const origin of [a, b]) {
      const host = `${origin.name}.sni.test`
      const caFile = join(origin.certs.dir, "ca.crt")
      const r = await curl(["--cacert", caFile, "--resolve", `${host}:${port}:127.0.0.1`, `https://${host}:${port}/`])
      expect(r.stderr).toBe("")
      const seen = JSON.parse(r.stdout) as Seen
      expect(seen).toMatchObject({ origin: origin.name, servername: host, offered: ["h2", "http/1.1"] })
    }
    // Trusting only A's CA, B's certificate fails curl's own verification (exit 60).
    const wrong = await curl([
      "--cacert",
      join(a.certs.dir, "ca.crt"),
      "--resolve",
      `b.sni.test:${port}:127.0.0.1`,
      `https://b.sni.test:${port}/`
    ])
    expect(wrong.code).toBe(60)
  })

  it("an unknown name gets a TLS alert curl reports, not a bare reset", async () => {
    if (!(await curlAvailable())) return
    const r = await curl(["-k", "--resolve", `nope.sni.test:${port}:127.0.0.1`, `https://nope.sni.test:${port}/`])
    expect(r.code).toBe(35)
    expect(r.stderr).toMatch(/unrecognized name/i)
  })
})

describe("route: sni refusals", () => {
  it("answers an unknown server name with a fatal unrecognized_name alert and logs NOT_FOUND", async () => {
    expect(await tlsError({ port, servername: "nope.sni.test" })).toMatch(/UNRECOGNIZED_NAME|unrecognized name/i)
    await eventually(() => proxy.logs.some((l) => l.reason === "NOT_FOUND" && l.resource === "nope.sni.test"))
  })

  it("refuses a client without SNI when there is no defaultRoute (FORBIDDEN, access_denied alert)", async () => {
    // Connecting to an IP address, node:tls sends no server name.
    expect(await tlsError({ port, rejectUnauthorized: false })).toMatch(/ACCESS_DENIED|access denied/i)
    await eventually(() =>
      proxy.logs.some((l) => l.reason === "FORBIDDEN" && String(l.message).includes("without a server name"))
    )
  })

  it("closes on bytes that are not TLS, without answering, and logs why", async () => {
    const { data } = await rawExchange(port, [Buffer.from("GET / HTTP/1.1\r\nHost: a.sni.test\r\n\r\n")])
    expect(data.length).toBe(0)
    await eventually(() =>
      proxy.logs.some((l) => l.reason === "BAD_REQUEST" && String(l.message).includes("not TLS: first byte 0x47"))
    )
  })

  it("refuses an oversized ClientHello as soon as its length says so", async () => {
    const { data, ms } = await rawExchange(port, [Buffer.from([0x16, 3, 1, 0x40, 0x00, 1, 0x01, 0x00, 0x00])])
    expect(data.length).toBe(0)
    expect(ms).toBeLessThan(900)
    await eventually(() => proxy.logs.some((l) => String(l.message).includes("limit is 16384")))
  })

  it("closes a ClientHello that stops half way at the handshake deadline (slow-loris)", async () => {
    const real = await nodeHello({ servername: "a.sni.test" })
    const { data, ms } = await rawExchange(port, [real.subarray(0, 20)])
    expect(data.length).toBe(0)
    expect(ms).toBeGreaterThanOrEqual(900)
    expect(ms).toBeLessThan(3_000)
    await eventually(() => proxy.logs.some((l) => l.reason === "HANDSHAKE_TIMEOUT"))
  })

  it("also times out a ClientHello dribbled too slowly, byte by byte", async () => {
    const bytes = Array.from({ length: 30 }, (_, i) => Buffer.from([[0x16, 3, 1, 0, 200, 1, 0, 0, 196][i] ?? 3]))
    const { ms } = await rawExchange(port, bytes, 100)
    expect(ms).toBeGreaterThanOrEqual(900)
    expect(ms).toBeLessThan(2_500)
  })
})

describe("route: sni with defaultRoute", () => {
  let withDefault: TestProxy
  afterAll(async () => withDefault?.stop())

  it("sends clients without SNI to the default route, TLS still end to end", async () => {
    withDefault = await startTestProxy({
      listeners: { tcp: { host: "127.0.0.1", port: 0, route: "sni", defaultRoute: "b.sni.test" } },
      routes: routes(),
      ssrf: { allow: ["127.0.0.0/8"] }
    })
    const got = await fetchOver({
      port: withDefault.port("tcp"),
      hostHeader: "b.sni.test",
      ca: b.certs.ca.cert,
      // No servername is sent to an IP address: check the certificate against the name we meant.
      checkServerIdentity: (_host, cert) => tls.checkServerIdentity("b.sni.test", cert)
    })
    expect(got.authorized).toBe(true)
    expect(got.seen).toMatchObject({ origin: "b", servername: false })
    expect(got.seen.ekm).toBe(got.ekm)
    // Clients with SNI are still routed by it.
    const named = await fetchOver({
      port: withDefault.port("tcp"),
      servername: "a.sni.test",
      hostHeader: "a.sni.test",
      ca: a.certs.ca.cert
    })
    expect(named.seen.origin).toBe("a")
    // The default label of a tcp listener on a port outside the table.
    expect(withDefault.logs.find((l) => l.event === "listening")).toMatchObject({ protocol: "tcp" })
  })
})
