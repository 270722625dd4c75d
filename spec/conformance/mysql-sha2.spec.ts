// Real `mysql2` clients → polyproxy's mysql listener → a protocol fake of a MySQL 8 server that authenticates with
// caching_sha2_password, written from MySQL's "Caching_sha2_password information" pages. MariaDB has no such plugin
// and no container engine runs here, so this is how the fast path, the RSA key exchange, full authentication over
// TLS and the proxy's refusals get exercised in `make test`; mysql.spec.ts has the same against a real MySQL 8 when
// containers are available. The fake checks every sequence id the proxy sends it.
import { createHash, constants as cryptoConstants, generateKeyPairSync, privateDecrypt, randomBytes } from "node:crypto"
import * as net from "node:net"
import * as tls from "node:tls"
import mysql from "mysql2/promise"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  AuthPlugin,
  CachingSha2,
  Capability,
  decodePacket,
  encodeAuthMoreData,
  encodeAuthSwitchRequest,
  encodeErrPacket,
  encodeHandshakeV10,
  encodeOkPacket,
  encodePacket,
  type HandshakeResponse41,
  type HandshakeV10,
  type Packet,
  parseClientHandshake,
  parseHandshakeV10,
  Status
} from "../../src/codec/mysql/index.ts"
import { type Certs, makeCerts } from "../support/certs.ts"
import { startTestProxy, type TestProxy } from "../support/proxy.ts"

const sha256 = (...parts: Buffer[]) => createHash("sha256").update(Buffer.concat(parts)).digest()
const sha1 = (...parts: Buffer[]) => createHash("sha1").update(Buffer.concat(parts)).digest()
const xor = (a: Buffer, b: Buffer) => Buffer.from(a.map((x, i) => x ^ b[i % b.length]!))

/** Reads whole packets off a socket, in order. */
class Packets {
  private buf = Buffer.alloc(0)
  private wake: (() => void) | undefined
  private ended = false
  private readonly socket: net.Socket
  private readonly onData = (d: Buffer) => {
    this.buf = Buffer.concat([this.buf, d])
    this.wake?.()
  }
  private readonly onEnd = () => {
    this.ended = true
    this.wake?.()
  }
  constructor(socket: net.Socket) {
    this.socket = socket
    socket.on("data", this.onData)
    socket.on("end", this.onEnd)
    socket.on("close", this.onEnd)
  }
  async next(): Promise<Packet | undefined> {
    for (;;) {
      const d = decodePacket(this.buf)
      if (d._tag === "Frame") {
        this.buf = this.buf.subarray(d.size)
        return d.value
      }
      if (d._tag === "Invalid" || this.ended) return undefined
      await new Promise<void>((r) => (this.wake = r))
    }
  }
  /** Stops reading and gives back what was read past the last packet (a TLS ClientHello). */
  detach(): void {
    this.socket.off("data", this.onData)
    this.socket.off("end", this.onEnd)
    this.socket.off("close", this.onEnd)
    this.socket.pause()
    if (this.buf.length > 0) this.socket.unshift(this.buf)
  }
}

interface FakeOptions {
  readonly password: string
  /** Users logging in with mysql_native_password: the server switches them away from its default plugin. */
  readonly nativeUsers?: ReadonlySet<string>
  readonly tls?: tls.SecureContext
}

interface FakeMysql8 {
  readonly port: number
  /** How each login went: "fast", "full-rsa", "full-tls", "native", "refused", or "out of order: ...". */
  readonly logins: string[]
  /** Users whose password hash is in the server's cache (a successful full authentication puts it there). */
  readonly cache: Set<string>
  /** The packet a session got after "perform full authentication", if any. */
  readonly afterFullAuth: Buffer[]
  readonly stop: () => Promise<void>
}

const startFakeMysql8 = async (options: FakeOptions): Promise<FakeMysql8> => {
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 })
  const pem = Buffer.from(publicKey.export({ type: "spki", format: "pem" }))
  const logins: string[] = []
  const cache = new Set<string>()
  const afterFullAuth: Buffer[] = []
  const sockets = new Set<net.Socket>()
  let nextId = 100

  /** The login; resolves with the socket it ended on (TLS or not) when it succeeded. */
  const session = async (raw: net.Socket): Promise<net.Socket | undefined> => {
    let socket: net.Socket = raw
    let packets = new Packets(socket)
    let seq = 0
    const send = (payload: Buffer) => socket.write(encodePacket(payload, seq++))
    const receive = async (): Promise<Buffer | undefined> => {
      const p = await packets.next()
      if (p === undefined) return undefined
      if (p.sequenceId !== seq) {
        logins.push(`out of order: got ${p.sequenceId}, expected ${seq}`)
        send(encodeErrPacket({ code: 1156, sqlState: "08S01", message: "Got packets out of order" }))
        socket.end()
        return undefined
      }
      seq = (p.lastSequenceId + 1) & 0xff
      return p.payload
    }
    const deny = (user: string) => {
      logins.push("refused")
      send(encodeErrPacket({ code: 1045, sqlState: "28000", message: `Access denied for user '${user}'@'fake'` }))
      socket.end()
      return undefined
    }
    const ok = (how: string) => {
      logins.push(how)
      send(encodeOkPacket({ statusFlags: Status.AUTOCOMMIT }))
      packets.detach()
      return socket
    }

    const nonce = Buffer.from(randomBytes(20).map((b) => b & 0x7f || 1))
    send(
      encodeHandshakeV10({
        serverVersion: "8.4.0-fake",
        connectionId: nextId++,
        authPluginData: nonce,
        capabilities: (0xdfffffff & ~(options.tls ? 0 : Capability.SSL)) >>> 0,
        characterSet: 255,
        statusFlags: Status.AUTOCOMMIT,
        authPlugin: AuthPlugin.CACHING_SHA2
      })
    )
    let first = await receive()
    if (first === undefined) return
    let hello = parseClientHandshake(first)
    let secure = false
    if (hello._tag === "SSLRequest") {
      if (!options.tls) return void socket.destroy()
      packets.detach()
      socket = new tls.TLSSocket(raw, { isServer: true, secureContext: options.tls })
      await new Promise<void>((r) => socket.once("secure", r))
      socket.on("error", () => {})
      packets = new Packets(socket)
      secure = true
      first = await receive()
      if (first === undefined) return
      hello = parseClientHandshake(first)
    }
    if (hello._tag !== "HandshakeResponse41") return void socket.destroy()
    const login: HandshakeResponse41 = hello
    const stage1 = sha256(Buffer.from(options.password))
    const stage2 = sha256(stage1)

    if (options.nativeUsers?.has(login.user)) {
      // The account's plugin differs from the server default: switch, with a fresh nonce.
      const fresh = Buffer.from(randomBytes(20).map((b) => b & 0x7f || 1))
      send(encodeAuthSwitchRequest(AuthPlugin.NATIVE, Buffer.concat([fresh, Buffer.from([0])])))
      const token = await receive()
      if (token === undefined) return
      const s1 = sha1(Buffer.from(options.password))
      return token.equals(xor(s1, sha1(fresh, sha1(s1)))) ? ok("native") : deny(login.user)
    }
    if (login.authPlugin !== AuthPlugin.CACHING_SHA2) return deny(login.user)
    if (cache.has(login.user)) {
      // Fast path: the token is SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) + nonce).
      if (!login.authResponse.equals(xor(stage1, sha256(stage2, nonce)))) return deny(login.user)
      send(encodeAuthMoreData(Buffer.from([CachingSha2.FAST_AUTH_SUCCESS])))
      return ok("fast")
    }
    send(encodeAuthMoreData(Buffer.from([CachingSha2.PERFORM_FULL_AUTHENTICATION])))
    let answer = await receive()
    if (answer === undefined) return
    afterFullAuth.push(answer)
    let password: string
    let how: string
    if (secure) {
      password = answer.subarray(0, answer.indexOf(0)).toString()
      how = "full-tls"
    } else {
      if (answer.length !== 1 || answer[0] !== CachingSha2.REQUEST_PUBLIC_KEY) return deny(login.user)
      send(encodeAuthMoreData(pem))
      answer = await receive()
      if (answer === undefined) return
      const plain = xor(
        privateDecrypt({ key: privateKey, padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha1" }, answer),
        nonce
      )
      password = plain.subarray(0, plain.indexOf(0)).toString()
      how = "full-rsa"
    }
    if (password !== options.password) return deny(login.user)
    cache.add(login.user)
    return ok(how)
  }

  const commands = async (socket: net.Socket) => {
    // After the login the proxy only relays: answer COM_PING, stop at COM_QUIT.
    const packets = new Packets(socket)
    socket.resume()
    for (;;) {
      const p = await packets.next()
      if (p === undefined || p.payload[0] === 0x01) return void socket.end()
      if (p.payload[0] === 0x0e) socket.write(encodePacket(encodeOkPacket({ statusFlags: Status.AUTOCOMMIT }), 1))
    }
  }

  const server = net.createServer((raw) => {
    sockets.add(raw)
    raw.on("error", () => {})
    raw.once("close", () => sockets.delete(raw))
    void session(raw).then((socket) => socket && commands(socket))
  })
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  return {
    port: (server.address() as net.AddressInfo).port,
    logins,
    cache,
    afterFullAuth,
    stop: async () => {
      for (const s of sockets) s.destroy()
      await new Promise((r) => server.close(r))
    }
  }
}

let certs: Certs
let fake: FakeMysql8
let proxy: TestProxy
const password = "s3cret-sha2"

const sequenceWarnings: string[] = []
const consoleError = console.error

beforeAll(async () => {
  console.error = (...args: unknown[]) => {
    if (String(args[0]).includes("out of order")) sequenceWarnings.push(String(args[0]))
    consoleError(...args)
  }
  certs = await makeCerts()
  fake = await startFakeMysql8({
    password,
    nativeUsers: new Set(["legacy"]),
    tls: tls.createSecureContext({ cert: certs.server.cert, key: certs.server.key })
  })
  proxy = await startTestProxy({
    listeners: {
      mysql: { host: "127.0.0.1", port: 0, tls: { cert: certs.server.certPath, key: certs.server.keyPath } }
    },
    routes: {
      plain8: `127.0.0.1:${fake.port}`,
      tls8: { endpoint: `127.0.0.1:${fake.port}`, metadata: { tls: { ca: certs.ca.cert } } }
    },
    ssrf: { allow: ["127.0.0.0/8"] },
    timeouts: { handshake: 2 }
  })
})

afterAll(async () => {
  console.error = consoleError
  await proxy?.stop()
  await fake?.stop()
})

const connect = (database: string, user: string, extra: mysql.ConnectionOptions = {}) =>
  mysql.createConnection({ host: "127.0.0.1", port: proxy.port("mysql"), user, password, database, ...extra })

const login = async (database: string, user: string, extra: mysql.ConnectionOptions = {}) => {
  const c = await connect(database, user, extra)
  await c.ping()
  await c.end()
}

const loginError = async (database: string, user: string, extra: mysql.ConnectionOptions = {}) => {
  const e = await connect(database, user, extra).then(
    async (c) => {
      await c.end()
      return undefined
    },
    (err: unknown) => err as Error & { errno?: number }
  )
  if (e === undefined) throw new Error("login succeeded")
  return e
}

describe("mysql listener: caching_sha2_password (protocol fake of MySQL 8)", () => {
  it("plain on both hops: full authentication with the server's RSA key passed through, then the fast path", async () => {
    await login("plain8", "alice")
    expect(fake.logins.at(-1)).toBe("full-rsa")
    await login("plain8", "alice")
    expect(fake.logins.at(-1)).toBe("fast")
  })

  it("TLS on both hops: full authentication with the password over TLS", async () => {
    await login("tls8", "bob", { ssl: { ca: certs.ca.cert } })
    expect(fake.logins.at(-1)).toBe("full-tls")
    await login("tls8", "bob", { ssl: { ca: certs.ca.cert } })
    expect(fake.logins.at(-1)).toBe("fast")
  })

  it("TLS from the client only: refused before the password leaves the client", async () => {
    const seen = fake.afterFullAuth.length
    const e = await loginError("plain8", "carol", { ssl: { ca: certs.ca.cert } })
    expect(e.errno).toBe(1045)
    expect(e.message).toContain("TLS is on from the client and off to the backend")
    expect(e.message).toContain("a login the server has already cached needs neither")
    expect(fake.afterFullAuth.length).toBe(seen)
  })

  it("TLS to the backend only: refused, since the client would ask for a key the server will not give", async () => {
    const e = await loginError("tls8", "dave")
    expect(e.errno).toBe(1045)
    expect(e.message).toContain("TLS is off from the client and on to the backend")
  })

  it("a cached login works whatever the hops, since it needs no password", async () => {
    await login("plain8", "alice", { ssl: { ca: certs.ca.cert } })
    expect(fake.logins.at(-1)).toBe("fast")
  })

  it("the server's own refusal reaches the client", async () => {
    const e = await loginError("plain8", "alice", { password: "wrong" })
    expect(e.errno).toBe(1045)
    expect(e.message).toBe("Access denied for user 'alice'@'fake'")
  })

  it("an account on mysql_native_password gets the server's second auth switch passed through", async () => {
    await login("plain8", "legacy")
    expect(fake.logins.at(-1)).toBe("native")
  })

  it("every packet reached each side in sequence", () => {
    expect(fake.logins.filter((l) => l.startsWith("out of order"))).toEqual([])
    expect(sequenceWarnings).toEqual([])
  })
})

describe("mysql listener: MariaDB's extras in front of MySQL 8", () => {
  const proxyWith = (serverFlavor: string) =>
    startTestProxy({
      listeners: { mysql: { host: "127.0.0.1", port: 0, serverFlavor } },
      routes: { plain8: `127.0.0.1:${fake.port}` },
      ssrf: { allow: ["127.0.0.0/8"] },
      timeouts: { handshake: 2 }
    })

  const greetingOf = (port: number) =>
    new Promise<HandshakeV10>((resolve, reject) => {
      const s = net.connect(port, "127.0.0.1")
      const packets = new Packets(s)
      void packets.next().then((p) => {
        s.destroy()
        const g = p && parseHandshakeV10(p.payload)
        if (g?._tag === "HandshakeV10") resolve(g)
        else reject(new Error("no greeting"))
      })
      s.once("error", reject)
    })

  it("serverFlavor mariadb: a client that took the offered extended metadata is refused in words, not garbled", async () => {
    const mariadbFlavored = await proxyWith("mariadb")
    try {
      const port = mariadbFlavored.port("mysql")
      expect((await greetingOf(port)).mariadbCapabilities).toBe(0x1d)
      const e = await loginError("plain8", "alice", { port })
      expect(e.message).toContain("MARIADB_CLIENT_EXTENDED_METADATA")
      expect(e.message).toContain("which this connection negotiated with the proxy's greeting")
    } finally {
      await mariadbFlavored.stop()
    }
  })

  it("serverFlavor auto: greets as the MySQL 8 it has seen, with no extras, and logs in", async () => {
    const learning = await proxyWith("auto")
    try {
      const port = learning.port("mysql")
      await login("plain8", "alice", { port })
      const greeting = await greetingOf(port)
      expect(greeting.serverVersion).toBe("8.4.0-fake")
      expect(greeting.mariadbCapabilities).toBe(0)
      expect(greeting.capabilities & Capability.LONG_PASSWORD).toBe(Capability.LONG_PASSWORD)
      await login("plain8", "alice", { port })
      expect(fake.logins.at(-1)).toBe("fast")
    } finally {
      await learning.stop()
    }
  })
})
