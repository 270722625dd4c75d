// Real `nodemailer` clients → polyproxy's smtp listener → in-process `smtp-server` sinks, one per tenant.
import { createHash, randomBytes } from "node:crypto"
import * as net from "node:net"
import { Effect, Exit, Layer, Scope } from "effect"
import nodemailer from "nodemailer"
import { SMTPServer } from "smtp-server"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { decodeConfig } from "../../src/config/decode.ts"
import { ResolveError } from "../../src/domain/ResolveError.ts"
import { Admission } from "../../src/listeners/Admission.ts"
import { startListener } from "../../src/listeners/Listener.ts"
import { makeSmtpProtocol } from "../../src/listeners/smtp/smtp.ts"
import { loadServerTls } from "../../src/listeners/tls.ts"
import { servicesLayer } from "../../src/Proxy.ts"
import { Log } from "../../src/services/Log.ts"
import { Resolver } from "../../src/services/Resolver.ts"
import { type SmtpSink, startSmtpSink } from "../support/backends/smtp.ts"
import { type Certs, makeCerts } from "../support/certs.ts"
import { closedPort } from "../support/net.ts"
import { eventually, startTestProxy, type TestProxy } from "../support/proxy.ts"
import { expectShownOnlyInLog } from "../support/refusals.ts"

let certs: Certs
let sinkA: SmtpSink // tenant-a.example: AUTH required
let sinkB: SmtpSink // tenant-b.example: open
let sinkTls: SmtpSink // tenant-tls.example: STARTTLS, AUTH only after it
let proxied: SMTPServer // proxyproto.example: expects a PROXY protocol header
const proxiedPeers: Array<{ address: string; port: number }> = []
let rawServers: Array<net.Server> = []
let proxy: TestProxy // STARTTLS offered at the proxy; literals go to tenant-b
let plain: TestProxy // no TLS at the proxy: every EHLO routes at once
let byRcpt: TestProxy // routeBy: rcpt

const alice = { user: "alice", pass: "secret-a" }
const tlsUser = { user: "tls-user", pass: "secret-t" }

const listen = async (server: net.Server) => {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  rawServers.push(server)
  return (server.address() as net.AddressInfo).port
}

const resolverFor = (table: Record<string, { endpoint: string; metadata?: Record<string, unknown> }>) =>
  Resolver.layerAsync({
    resolve: async (id) => {
      if (id === "cold.example") {
        throw new ResolveError({ code: "UNAVAILABLE", message: "cold.example is waking up", retryAfter: 4 })
      }
      if (id === "slow.example") return new Promise(() => {})
      if (id === "banned.example") throw new ResolveError({ code: "FORBIDDEN", message: "tenant banned is suspended" })
      if (id === "broken.example") throw new Error("route store unreachable")
      return table[id] ?? null
    }
  })

let table: Record<string, { endpoint: string; metadata?: Record<string, unknown> }>

beforeAll(async () => {
  ;[certs, sinkA, sinkB, sinkTls] = await Promise.all([
    makeCerts(),
    startSmtpSink({ auth: alice }),
    startSmtpSink(),
    startSmtpSink({ tls: true, auth: tlsUser })
  ])
  proxied = new SMTPServer({
    useProxy: true,
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    disableReverseLookup: true,
    logger: false,
    closeTimeout: 500,
    onConnect(session, callback) {
      proxiedPeers.push({ address: session.remoteAddress, port: session.remotePort })
      callback()
    }
  })
  await new Promise<void>((r) => proxied.listen(0, "127.0.0.1", r))
  const proxiedPort = (proxied.server.address() as net.AddressInfo).port
  // Accepts and never greets.
  const mutePort = await listen(net.createServer(() => {}))
  // Greets with a refusal, as an overloaded or blocking MTA does.
  const grumpyPort = await listen(
    net.createServer((s) => {
      s.on("error", () => {})
      s.end("554-5.3.2 grumpy.example: no service for you\r\n554 5.3.2 come back never\r\n")
    })
  )
  const dead = await closedPort()
  table = {
    "tenant-a.example": { endpoint: `127.0.0.1:${sinkA.port}` },
    "tenant-b.example": { endpoint: `127.0.0.1:${sinkB.port}` },
    "tenant-tls.example": { endpoint: `127.0.0.1:${sinkTls.port}`, metadata: { tls: { ca: certs.ca.cert } } },
    "tenant-plainhop.example": { endpoint: `127.0.0.1:${sinkTls.port}` },
    "proxyproto.example": { endpoint: `127.0.0.1:${proxiedPort}`, metadata: { proxyProtocol: 1 } },
    "meta.example": { endpoint: "169.254.169.254:25" },
    "dead.example": { endpoint: `127.0.0.1:${dead}` },
    "mute.example": { endpoint: `127.0.0.1:${mutePort}` },
    "grumpy.example": { endpoint: `127.0.0.1:${grumpyPort}` }
  }
  // The STARTTLS proxy gets a roomy handshake timeout (50 TLS handshakes at once on a busy 2-core machine); the plain
  // one a short timeout, to test it.
  const common = { ssrf: { allow: ["127.0.0.0/8"] }, coldStart: { timeout: 1 } }
  const timeouts = (handshake: number) => ({ timeouts: { handshake, resolve: 0.5, connect: 1 } })
  ;[proxy, plain, byRcpt] = await Promise.all([
    startTestProxy(
      {
        listeners: {
          smtp: {
            host: "127.0.0.1",
            port: 0,
            tls: { cert: certs.server.certPath, key: certs.server.keyPath },
            defaultRoute: "tenant-b.example"
          }
        },
        ...common,
        ...timeouts(10)
      },
      resolverFor(table)
    ),
    startTestProxy(
      { listeners: { smtp: { host: "127.0.0.1", port: 0 } }, ...common, ...timeouts(1) },
      resolverFor(table)
    ),
    startTestProxy(
      { listeners: { smtp: { host: "127.0.0.1", port: 0, routeBy: "rcpt" } }, ...common, ...timeouts(5) },
      resolverFor(table)
    )
  ])
})

afterAll(async () => {
  await Promise.all([proxy?.stop(), plain?.stop(), byRcpt?.stop()])
  await Promise.all([sinkA?.stop(), sinkB?.stop(), sinkTls?.stop()])
  await new Promise<void>((r) => (proxied ? proxied.close(() => r()) : r()))
  for (const s of rawServers) s.close()
  rawServers = []
})

type TransportOptions = Parameters<typeof nodemailer.createTransport>[0] & Record<string, unknown>

/** A one-connection transport to `through` (default: the STARTTLS proxy) that trusts the test CA. */
const transport = (name: string, extra: Record<string, unknown> = {}, through: TestProxy = proxy) =>
  nodemailer.createTransport({
    host: "127.0.0.1",
    port: through.port("smtp"),
    secure: false,
    name,
    tls: { ca: certs.ca.cert, servername: "localhost" },
    connectionTimeout: 5_000,
    greetingTimeout: 5_000,
    socketTimeout: 10_000,
    ...extra
  } as TransportOptions)

const marker = () => `m-${randomBytes(6).toString("hex")}`

const send = async (name: string, to: string | string[], extra: Record<string, unknown> = {}, through?: TestProxy) => {
  const id = marker()
  const t = transport(name, extra, through)
  try {
    const info = await t.sendMail({ from: "sender@origin.example", to, subject: id, text: `body of ${id}` })
    return { id, info }
  } finally {
    t.close()
  }
}

type SmtpError = Error & { responseCode?: number; response?: string; code?: string }

const sendError = async (
  name: string,
  extra: Record<string, unknown> = {},
  through?: TestProxy,
  to = "x@y.example"
) => {
  const e = (await send(name, to, extra, through).then(
    () => undefined,
    (err: unknown) => err
  )) as SmtpError | undefined
  if (e === undefined) throw new Error(`sending as ${name} succeeded`)
  return e
}

const arrived = (sink: SmtpSink, id: string) => {
  const found = sink.messages.find((m) => m.data.includes(id))
  if (found === undefined) throw new Error(`message ${id} did not reach the sink`)
  return found
}

/** A raw line-level SMTP client, for what nodemailer will not send. */
class Raw {
  private buf = ""
  private waiting: Array<(r: string) => void> = []
  private ended = false
  readonly closed: Promise<void>
  readonly socket: net.Socket
  constructor(socket: net.Socket) {
    this.socket = socket
    socket.on("data", (d: Buffer) => {
      this.buf += d.toString("utf8")
      this.drain()
    })
    socket.on("error", () => {})
    this.closed = new Promise((r) =>
      socket.once("close", () => {
        this.ended = true
        this.drain()
        r()
      })
    )
  }
  static open(port: number) {
    return new Promise<Raw>((resolve, reject) => {
      const s = net.connect(port, "127.0.0.1", () => resolve(new Raw(s)))
      s.once("error", reject)
    })
  }
  private take(): string | undefined {
    const m = /^(?:\d{3}-[^\n]*\n)*\d{3}(?: [^\n]*)?\r?\n/.exec(this.buf)
    if (!m) return undefined
    this.buf = this.buf.slice(m[0].length)
    return m[0].trimEnd()
  }
  private drain() {
    while (this.waiting.length > 0) {
      const r = this.take() ?? (this.ended ? "<closed>" : undefined)
      if (r === undefined) return
      this.waiting.shift()!(r)
    }
  }
  reply(): Promise<string> {
    return new Promise((r) => {
      this.waiting.push(r)
      this.drain()
    })
  }
  send(s: string | Buffer) {
    this.socket.write(s)
  }
  async command(s: string) {
    this.send(`${s}\r\n`)
    return this.reply()
  }
  close() {
    this.socket.destroy()
  }
}

describe("smtp listener: mail through the proxy", () => {
  it("STARTTLS at the proxy, then AUTH PLAIN passed through to the tenant's server", async () => {
    const { id, info } = await send("tenant-a.example", "bob@tenant-a.example", { auth: alice, requireTLS: true })
    const m = arrived(sinkA, id)
    expect(m).toMatchObject({ ehloName: "tenant-a.example", user: "alice", to: ["bob@tenant-a.example"] })
    expect(m.secure).toBe(false) // TLS ended at the proxy; the hop to sinkA is plain
    // After TLS the client sees the tenant server's own capabilities, not the proxy's.
    expect(info.ehlo).toContain("AUTH PLAIN LOGIN")
    expect(info.ehlo).toContain("SMTPUTF8")
    expect(info.ehlo).not.toContain("STARTTLS")
  })

  it("AUTH LOGIN works the same", async () => {
    const { id } = await send("tenant-a.example", "carol@tenant-a.example", { auth: alice, authMethod: "LOGIN" })
    expect(arrived(sinkA, id).user).toBe("alice")
  })

  it("a wrong password is the tenant server's own 535", async () => {
    const e = await sendError("tenant-a.example", { auth: { user: "alice", pass: "wrong" } })
    expect(e.responseCode).toBe(535)
    expect(e.response).toContain("Invalid username or password")
  })

  it("two tenants land on two different servers", async () => {
    const [a, b] = await Promise.all([
      send("tenant-a.example", "x@tenant-a.example", { auth: alice }),
      send("TENANT-B.example.", "y@tenant-b.example")
    ])
    expect(arrived(sinkA, a.id).ehloName).toBe("tenant-a.example")
    expect(arrived(sinkB, b.id).to).toEqual(["y@tenant-b.example"])
    expect(sinkB.messages.some((m) => m.data.includes(a.id))).toBe(false)
    expect(sinkA.messages.some((m) => m.data.includes(b.id))).toBe(false)
  })

  it("pipelines an envelope with several recipients", async () => {
    const to = Array.from({ length: 6 }, (_, i) => `r${i}@tenant-b.example`)
    const { id, info } = await send("tenant-b.example", to)
    expect(info.ehlo).toContain("PIPELINING")
    expect(arrived(sinkB, id).to).toEqual(to)
  })

  it("replays commands pipelined behind the routing EHLO, in order", async () => {
    const c = await Raw.open(plain.port("smtp"))
    expect(await c.reply()).toMatch(/^220 /)
    const id = marker()
    c.send(
      "EHLO tenant-b.example\r\nMAIL FROM:<p@origin.example>\r\nRCPT TO:<one@tenant-b.example>\r\n" +
        "RCPT TO:<two@tenant-b.example>\r\nDATA\r\n"
    )
    expect(await c.reply()).toMatch(/^250-sink\.polyproxy\.test/)
    expect(await c.reply()).toMatch(/^250 /)
    expect(await c.reply()).toMatch(/^250 /)
    expect(await c.reply()).toMatch(/^250 /)
    expect(await c.reply()).toMatch(/^354 /)
    c.send(`Subject: ${id}\r\n\r\n.leading dot\r\n.\r\nQUIT\r\n`)
    expect(await c.reply()).toMatch(/^250 /)
    expect(await c.reply()).toMatch(/^221 /)
    await c.closed
    const m = arrived(sinkB, id)
    expect(m.to).toEqual(["one@tenant-b.example", "two@tenant-b.example"])
    expect(m.data.toString()).toContain("\r\n.leading dot\r\n")
  })

  it("carries a 6 MB message intact (checksummed at the sink)", async () => {
    const id = marker()
    const body = randomBytes(4_500_000).toString("base64").replace(/.{76}/g, "$&\r\n")
    const raw = Buffer.from(
      `From: sender@origin.example\r\nTo: big@tenant-b.example\r\nSubject: ${id}\r\n` +
        `Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n${body}\r\n`
    )
    expect(raw.length).toBeGreaterThan(6_000_000)
    const t = transport("tenant-b.example")
    await t.sendMail({ envelope: { from: "sender@origin.example", to: ["big@tenant-b.example"] }, raw })
    t.close()
    const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex")
    expect(sha(arrived(sinkB, id).data)).toBe(sha(raw))
  })

  it("8-bit bodies and SMTPUTF8 addresses pass unchanged", async () => {
    const id = marker()
    const raw = Buffer.from(
      `From: jörg@origin.example\r\nTo: zoë@tenant-b.example\r\nSubject: ${id}\r\n` +
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln ✓\r\n",
      "utf8"
    )
    const t = transport("tenant-b.example")
    const info = await t.sendMail({ envelope: { from: "jörg@origin.example", to: ["zoë@tenant-b.example"] }, raw })
    t.close()
    expect(info.ehlo).toEqual(expect.arrayContaining(["8BITMIME", "SMTPUTF8"]))
    const m = arrived(sinkB, id)
    expect(m).toMatchObject({ from: "jörg@origin.example", to: ["zoë@tenant-b.example"] })
    expect(m.data.equals(raw)).toBe(true)
  })

  it("the tenant server's own rejections reach the client unchanged", async () => {
    sinkB.rejectNext("rcpt", 550, "5.1.1 no such mailbox here")
    const rcpt = await sendError("tenant-b.example", {}, undefined, "gone@tenant-b.example")
    expect(rcpt.responseCode).toBe(550)
    expect(rcpt.response).toContain("5.1.1 no such mailbox here")
    sinkB.rejectNext("mail", 451, "4.7.1 greylisted, try later")
    const mail = await sendError("tenant-b.example")
    expect(mail.responseCode).toBe(451)
    expect(mail.response).toContain("greylisted")
    sinkB.rejectNext("data", 554, "5.6.0 content refused")
    const data = await sendError("tenant-b.example", {}, undefined, "x@tenant-b.example")
    expect(data.responseCode).toBe(554)
    expect(data.response).toContain("5.6.0 content refused")
  })

  it("serves 50 concurrent senders across two tenants", async () => {
    const sent = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        i % 2
          ? send("tenant-a.example", `c${i}@tenant-a.example`, { auth: alice })
          : send("tenant-b.example", `c${i}@tenant-b.example`)
      )
    )
    sent.forEach(({ id }, i) => {
      expect(arrived(i % 2 ? sinkA : sinkB, id).to).toEqual([`c${i}@tenant-${i % 2 ? "a" : "b"}.example`])
    })
  })

  it("opens STARTTLS to the backend when the route's metadata asks (tls: { ca })", async () => {
    const { id, info } = await send("tenant-tls.example", "t@tenant-tls.example", { auth: tlsUser })
    expect(arrived(sinkTls, id)).toMatchObject({ secure: true, user: "tls-user", ehloName: "tenant-tls.example" })
    // The sink offers AUTH only over TLS: its advertising AUTH proves the proxy's hop to it is encrypted.
    expect(info.ehlo).toContain("AUTH PLAIN LOGIN")
    expect(info.ehlo).not.toContain("STARTTLS")
  })

  it("a client that declines STARTTLS gets the proxy's conservative EHLO and is routed at MAIL", async () => {
    const { id, info } = await send("tenant-b.example", "d@tenant-b.example", { ignoreTLS: true })
    expect(arrived(sinkB, id).ehloName).toBe("tenant-b.example")
    expect(info.ehlo).toEqual(["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "STARTTLS"])
  })

  it("without TLS at the proxy, the tenant's EHLO reply is passed on without its STARTTLS", async () => {
    const c = await Raw.open(plain.port("smtp"))
    expect(await c.reply()).toMatch(/^220 \S+ ESMTP polyproxy/)
    const ehlo = await c.command("EHLO tenant-plainhop.example")
    expect(ehlo).toMatch(/^250-sink\.polyproxy\.test /)
    expect(ehlo).toContain("250-PIPELINING")
    expect(ehlo).not.toContain("STARTTLS")
    expect(await c.command("QUIT")).toMatch(/^221 /)
    await c.closed
  })

  it("an address literal in EHLO goes to the listener's defaultRoute, or gets 550 without one", async () => {
    const { id } = await send("[127.0.0.1]", "lit@tenant-b.example")
    expect(arrived(sinkB, id).ehloName).toBe("[127.0.0.1]")
    const e = await sendError("[127.0.0.1]", {}, plain)
    expect(e.responseCode).toBe(550)
    expect(e.response).toMatch(/^550 5\.1\.2 .*names no domain to route by/)
  })

  it("sends a PROXY protocol header when the route asks, so the backend sees the client's address", async () => {
    const c = await Raw.open(plain.port("smtp"))
    await c.reply()
    expect(await c.command("EHLO proxyproto.example")).toMatch(/^250/)
    expect(await c.command("QUIT")).toMatch(/^221/)
    await eventually(() => proxiedPeers.length > 0)
    expect(proxiedPeers.at(-1)).toEqual({ address: "127.0.0.1", port: c.socket.localPort })
    c.close()
  })
})

describe("smtp listener: every refusal is an SMTP reply the client shows", () => {
  // The last column: what only the proxy's log line (the one with the reply's ref) may say.
  it.each([
    ["nosuch.example", 550, /^550 5\.1\.2 polyproxy: no route for "nosuch\.example" \(ref [0-9a-f]{12}\)$/, []],
    ["banned.example", 550, /^550 5\.7\.1 polyproxy: tenant banned is suspended \(ref /, []],
    [
      "meta.example",
      550,
      /^550 5\.7\.1 polyproxy: the backend of "meta\.example" is refused by the proxy's policy \(ref /,
      ["169.254.169.254"]
    ],
    ["cold.example", 421, /^421 4\.3\.2 .*cold\.example did not become ready within 1s; try again in \d+ s \(ref /, []],
    ["slow.example", 451, /^451 4\.4\.3 polyproxy: the route lookup for "slow\.example" did not answer in time/, []],
    [
      "dead.example",
      421,
      /^421 4\.4\.1 polyproxy: cannot connect to the backend of "dead\.example" \(ref /,
      ["127.0.0.1:", "ECONNREFUSED"]
    ],
    ["broken.example", 451, /^451 4\.3\.0 polyproxy: internal error \(ref /, ["route store unreachable"]],
    [
      "mute.example",
      421,
      /^421 4\.4\.1 polyproxy: the backend did not finish its greeting and EHLO within 1s \(ref /,
      ["127.0.0.1:"]
    ],
    ["grumpy.example", 554, /^554-5\.3\.2 grumpy\.example: no service for you/, []]
  ])("EHLO %s → %i", async (name, code, response, hidden) => {
    const e = await sendError(name)
    expect(e.responseCode).toBe(code)
    expect(e.response).toMatch(response)
    if (hidden.length > 0) expectShownOnlyInLog(String(e.response), proxy.logs, hidden)
  })

  it("after a 5xx the session stays open and says the same until QUIT, which gets 221", async () => {
    const c = await Raw.open(plain.port("smtp"))
    await c.reply()
    expect(await c.command("EHLO nosuch.example")).toMatch(/^550 5\.1\.2 /)
    expect(await c.command("HELO nosuch.example")).toMatch(/^550 5\.1\.2 /)
    expect(await c.command("NOOP")).toMatch(/^250 /)
    expect(await c.command("QUIT")).toMatch(/^221 /)
    await c.closed
  })

  it("commands before EHLO get 503 5.5.1; NOOP, RSET, HELP are answered; the session goes on", async () => {
    const c = await Raw.open(proxy.port("smtp"))
    await c.reply()
    expect(await c.command("MAIL FROM:<a@b.example>")).toMatch(/^503 5\.5\.1 .*EHLO first/)
    expect(await c.command("RCPT TO:<a@b.example>")).toMatch(/^503 5\.5\.1/)
    expect(await c.command("DATA")).toMatch(/^503 5\.5\.1/)
    expect(await c.command("STARTTLS")).toMatch(/^503 5\.5\.1/)
    expect(await c.command("BOGUS")).toMatch(/^500 5\.5\.1/)
    expect(await c.command("noop")).toMatch(/^250 2\.0\.0/)
    expect(await c.command("RSET")).toMatch(/^250 2\.0\.0/)
    expect(await c.command("HELP")).toMatch(/^214 2\.0\.0 Send EHLO/)
    expect(await c.command("EHLO")).toMatch(/^501 5\.5\.4 /)
    expect(await c.command("EHLO tenant-b.example")).toMatch(/^250-[\s\S]*250 STARTTLS$/)
    expect(await c.command("QUIT")).toMatch(/^221 2\.0\.0/)
    await c.closed
  })

  it("a client that sends nothing gets 421 4.4.2 after the handshake timeout", async () => {
    const started = Date.now()
    const c = await Raw.open(plain.port("smtp"))
    expect(await c.reply()).toMatch(/^220 /)
    expect(await c.reply()).toMatch(/^421 4\.4\.2 .*handshake/)
    await c.closed
    expect(Date.now() - started).toBeGreaterThanOrEqual(900)
  })

  it("an overlong line gets 500 5.5.2 and the connection closes", async () => {
    const c = await Raw.open(plain.port("smtp"))
    await c.reply()
    c.send(`EHLO ${"a".repeat(1200)}\r\n`)
    expect(await c.reply()).toMatch(/^500 5\.5\.2 .*line too long/)
    await c.closed
  })

  it("a bare LF, binary data or too many errors close the session with 500 5.5.2", async () => {
    for (const [bytes, why] of [
      ["EHLO tenant-b.example\n", /bare LF/],
      ["\u0016\u0003\u0001\u0002\u0000", /binary/],
      ["BOGUS\r\n".repeat(12), /10 bad commands/]
    ] as const) {
      const c = await Raw.open(plain.port("smtp"))
      await c.reply()
      c.send(Buffer.from(bytes, "latin1"))
      let last = await c.reply()
      while (last.startsWith("500 5.5.1")) last = await c.reply()
      expect(last).toMatch(/^500 5\.5\.2 /)
      expect(last).toMatch(why)
      await c.closed
    }
  })

  it("refuses plaintext pipelined behind STARTTLS (CVE-2011-0411)", async () => {
    const c = await Raw.open(proxy.port("smtp"))
    await c.reply()
    expect(await c.command("EHLO tenant-b.example")).toMatch(/STARTTLS/)
    c.send("STARTTLS\r\nMAIL FROM:<evil@x.example>\r\n")
    expect(await c.reply()).toMatch(/^500 5\.5\.2 .*pipelined after STARTTLS/)
    await c.closed
  })

  it("QUIT before routing is a goodbye, not an error worth a log line above debug", async () => {
    const c = await Raw.open(proxy.port("smtp"))
    await c.reply()
    expect(await c.command("QUIT")).toMatch(/^221 /)
    await c.closed
  })

  it("logs and counts every refusal by reason", async () => {
    await eventually(() => plain.logs.some((l) => l.reason === "HANDSHAKE_TIMEOUT"))
    const text = await fetch(`${proxy.adminUrl}/metrics`).then((r) => r.text())
    for (const reason of ["not_found", "forbidden", "unavailable", "timeout", "connect_failed", "internal"]) {
      expect(text).toMatch(new RegExp(`polyproxy_errors_total\\{[^}]*reason="${reason}"[^}]*\\} [1-9]`))
    }
    const quits = proxy.logs.filter((l) => l.message === "client quit before routing")
    expect(quits.length).toBeGreaterThan(0)
    expect(quits.every((l) => l.level === "debug")).toBe(true)
  })
})

describe("smtp listener: routeBy rcpt", () => {
  it("routes by the first recipient's domain, whatever the EHLO says", async () => {
    const { id, info } = await send("client.example", ["a@Tenant-B.Example", "b@tenant-b.example"], {}, byRcpt)
    // (the sink lower-cases addresses itself)
    expect(arrived(sinkB, id)).toMatchObject({
      ehloName: "client.example",
      to: ["a@tenant-b.example", "b@tenant-b.example"]
    })
    expect(info.ehlo).toEqual(["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"])
  })

  it("an unknown recipient domain is a 550 5.1.2 to RCPT", async () => {
    const e = await sendError("client.example", {}, byRcpt, "x@nowhere.example")
    expect(e.responseCode).toBe(550)
    expect(e.response).toMatch(/^550 5\.1\.2 .*nowhere\.example/)
  })

  it("answers MAIL locally, refuses AUTH and RCPT without a domain, replays MAIL to the backend", async () => {
    const c = await Raw.open(byRcpt.port("smtp"))
    await c.reply()
    expect(await c.command("EHLO client.example")).toMatch(/^250-/)
    expect(await c.command("AUTH PLAIN AGFsaWNlAHNlY3JldC1h")).toMatch(/^502 5\.5\.1/)
    expect(await c.command("RCPT TO:<a@tenant-b.example>")).toMatch(/^503 5\.5\.1 .*MAIL/)
    expect(await c.command("MAIL FROM:<m@origin.example>")).toMatch(/^250 2\.1\.0/)
    expect(await c.command("DATA")).toMatch(/^503 5\.5\.1 .*RCPT/)
    expect(await c.command("RCPT TO:<postmaster>")).toMatch(/^501 5\.1\.3/)
    const id = marker()
    c.send(`RCPT TO:<r@tenant-b.example>\r\nDATA\r\n`)
    expect(await c.reply()).toMatch(/^250 /)
    expect(await c.reply()).toMatch(/^354 /)
    c.send(`Subject: ${id}\r\n\r\nhi\r\n.\r\nQUIT\r\n`)
    expect(await c.reply()).toMatch(/^250 /)
    expect(await c.reply()).toMatch(/^221 /)
    expect(arrived(sinkB, id)).toMatchObject({ from: "m@origin.example", to: ["r@tenant-b.example"] })
    c.close()
  })
})

describe("smtp listener: implicit TLS and requireTls (protocol options)", () => {
  let scope: Scope.Closeable
  let implicitPort: number
  let strictPort: number

  beforeAll(async () => {
    // From the config decoder, so fields added to the listener schema later get their defaults here too.
    const config = decodeConfig(
      {
        listeners: { smtp: { host: "127.0.0.1", port: 0 } },
        ssrf: { allow: ["127.0.0.0/8"] },
        timeouts: { handshake: 5, connect: 2 }
      },
      process.cwd()
    )
    const layer = Layer.merge(servicesLayer(config, resolverFor(table)), Log.layerTest([]))
    scope = Effect.runSync(Scope.make())
    const serverTls = await Effect.runPromise(
      loadServerTls({ cert: certs.server.certPath, key: certs.server.keyPath, requireClientCert: false }, "tls")
    )
    const base = { tls: serverTls, routeBy: "ehlo" as const, connectTimeout: 2, hostname: "mx.polyproxy.test" }
    const listenerConfig = config.listeners.smtp!
    const timeouts = config.timeouts
    const admission = new Admission(config.limits)
    const [implicit, strict] = await Effect.runPromise(
      Effect.gen(function* () {
        const context = yield* Layer.build(layer)
        return yield* Effect.all([
          startListener(makeSmtpProtocol({ ...base, implicitTls: true }), listenerConfig, timeouts, admission),
          startListener(makeSmtpProtocol({ ...base, requireTls: true }), listenerConfig, timeouts, admission)
        ]).pipe(Effect.provideContext(context))
      }).pipe(Scope.provide(scope))
    )
    implicitPort = implicit!.port
    strictPort = strict!.port
  })

  afterAll(async () => {
    if (scope) await Effect.runPromise(Scope.close(scope, Exit.void))
  })

  it("implicit TLS (port 465 style): TLS from the first byte, then routing by EHLO", async () => {
    const t = nodemailer.createTransport({
      host: "127.0.0.1",
      port: implicitPort,
      secure: true,
      name: "tenant-b.example",
      tls: { ca: certs.ca.cert, servername: "localhost" }
    })
    const id = marker()
    await t.sendMail({ from: "s@origin.example", to: "i@tenant-b.example", subject: id, text: "implicit" })
    t.close()
    expect(arrived(sinkB, id).ehloName).toBe("tenant-b.example")
  })

  it("requireTls answers 530 5.7.0 to mail commands until STARTTLS, and routes after it", async () => {
    const c = await Raw.open(strictPort)
    expect(await c.reply()).toBe("220 mx.polyproxy.test ESMTP polyproxy")
    expect(await c.command("EHLO tenant-b.example")).toMatch(/^250-mx\.polyproxy\.test greets tenant-b\.example/)
    expect(await c.command("MAIL FROM:<a@b.example>")).toMatch(/^530 5\.7\.0/)
    expect(await c.command("AUTH PLAIN AGEAYg==")).toMatch(/^530 5\.7\.0/)
    c.close()
    const { id } = await (async () => {
      const t = nodemailer.createTransport({
        host: "127.0.0.1",
        port: strictPort,
        name: "tenant-b.example",
        tls: { ca: certs.ca.cert, servername: "localhost" }
      })
      const mid = marker()
      await t.sendMail({ from: "s@origin.example", to: "st@tenant-b.example", subject: mid, text: "strict" })
      t.close()
      return { id: mid }
    })()
    expect(arrived(sinkB, id).to).toEqual(["st@tenant-b.example"])
  })
})
