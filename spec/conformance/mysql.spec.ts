// Real `mysql2` clients → polyproxy's mysql listener → real MariaDB 10.11 servers with mysql_native_password.
// caching_sha2_password exists only in MySQL: its spec at the end needs a MySQL 8 container.
import { createHash, randomBytes } from "node:crypto"
import * as net from "node:net"
import { Readable } from "node:stream"
import * as tls from "node:tls"
import mysql from "mysql2/promise"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  Capability,
  decodeAuthSwitchRequest,
  decodeErrPacket,
  decodeHandshakeV10,
  decodeOkPacket,
  type ErrPacket,
  encodePacket,
  encodeSslRequest,
  type Framed,
  UTF8MB4_GENERAL_CI
} from "../../src/codec/mysql/index.ts"
import { ResolveError } from "../../src/domain/ResolveError.ts"
import { Resolver } from "../../src/services/Resolver.ts"
import { backendProvider, type MariaDbServer, startMariaDb } from "../support/backends/index.ts"
import { type Certs, makeCerts } from "../support/certs.ts"
import { loginFlags, nativeToken, RawClient, handshakeResponse as rawHandshakeResponse } from "../support/mysql.ts"
import { closedPort } from "../support/net.ts"
import { eventually, startMtlsProxy, startTestProxy, type TestProxy } from "../support/proxy.ts"
import { expectShownOnlyInLog } from "../support/refusals.ts"

let db1: MariaDbServer // appdb, otherdb; serves TLS (otherdb is reached over TLS) and has the REQUIRE SSL user
let db2: MariaDbServer // seconddb: another server, to prove per-database routing
let certs: Certs
let proxy: TestProxy
let deadPort: number
let impostors: net.Server[] = []

// mysql2 reports a sequence id it did not expect on console.error; the proxy's renumbering must never cause one.
const sequenceWarnings: string[] = []
const consoleError = console.error
console.error = (...args: unknown[]) => {
  if (String(args[0]).includes("out of order")) sequenceWarnings.push(String(args[0]))
  consoleError(...args)
}

beforeAll(async () => {
  ;[db1, db2, certs] = await Promise.all([
    startMariaDb({ tls: true, databases: ["appdb", "otherdb"] }),
    startMariaDb({ databases: ["seconddb"] }),
    makeCerts()
  ])
  deadPort = await closedPort()
  // Backends that are not MySQL: one accepts and never speaks, one greets like an SMTP server.
  impostors = await Promise.all(
    [() => {}, (s: net.Socket) => s.write("220 mail.example.com ESMTP ready\r\n")].map(
      (onConnection) =>
        new Promise<net.Server>((resolve) => {
          const server = net.createServer((s) => {
            s.on("error", () => {})
            onConnection(s)
          })
          server.listen(0, "127.0.0.1", () => resolve(server))
        })
    )
  )
  const portOf = (s: net.Server) => (s.address() as net.AddressInfo).port
  const table: Record<string, string> = {
    appdb: `127.0.0.1:${db1.port}`,
    otherdb: `127.0.0.1:${db1.port}`,
    seconddb: `127.0.0.1:${db2.port}`,
    meta: "169.254.169.254:3306",
    deaddb: `127.0.0.1:${deadPort}`,
    silentdb: `127.0.0.1:${portOf(impostors[0]!)}`,
    smtpdb: `127.0.0.1:${portOf(impostors[1]!)}`
  }
  // One entry per failure the client must be able to read.
  const resolver = Resolver.layerAsync({
    resolve: async (id) => {
      if (id === "colddb")
        throw new ResolveError({ code: "UNAVAILABLE", message: "colddb is waking up", retryAfter: 4 })
      if (id === "busydb") throw new ResolveError({ code: "UNAVAILABLE", message: "busydb is at capacity" })
      if (id === "slowdb") return new Promise(() => {})
      if (id === "banned") throw new ResolveError({ code: "FORBIDDEN", message: "tenant banned is suspended" })
      if (id === "brokendb") throw new Error("route store unreachable")
      const endpoint = table[id]
      // otherdb's backend is reached over TLS, verified against the test CA.
      return endpoint ? { endpoint, metadata: id === "otherdb" ? { tls: { ca: db1.certs!.ca.cert } } : {} } : null
    }
  })
  proxy = await startTestProxy(
    {
      listeners: {
        mysql: { host: "127.0.0.1", port: 0, tls: { cert: certs.server.certPath, key: certs.server.keyPath } }
      },
      ssrf: { allow: ["127.0.0.0/8"] },
      timeouts: { handshake: 1, resolve: 0.5, connect: 2 },
      coldStart: { timeout: 1 }
    },
    resolver
  )
})

afterAll(async () => {
  console.error = consoleError
  await proxy?.stop()
  await Promise.all([db1?.stop(), db2?.stop()])
  for (const server of impostors) server.close()
})

type Options = mysql.ConnectionOptions

const options = (database: string | undefined, extra: Options = {}): Options => ({
  host: "127.0.0.1",
  port: proxy.port("mysql"),
  user: db1.user,
  // each server has its own password for app: the right one proves the right server answered
  password: database === "seconddb" ? db2.password : db1.password,
  ...(database === undefined ? {} : { database }),
  ...extra
})

const withConnection = async <A>(
  database: string | undefined,
  f: (c: mysql.Connection) => Promise<A>,
  extra: Options = {}
): Promise<A> => {
  const c = await mysql.createConnection(options(database, extra))
  try {
    return await f(c)
  } finally {
    await c.end()
  }
}

interface MysqlError extends Error {
  readonly errno?: number
  readonly code?: string
  readonly sqlState?: string
  readonly sqlMessage?: string
}

const connectError = async (database: string | undefined, extra: Options = {}): Promise<MysqlError> => {
  const e = await mysql.createConnection(options(database, extra)).then(
    async (c) => {
      await c.end()
      return undefined
    },
    (err: unknown) => err as MysqlError
  )
  if (e === undefined) throw new Error(`connecting to ${database} succeeded`)
  return e
}

const one = async (c: mysql.Connection, sql: string, values?: unknown[]) => {
  const [rows] = await c.query<mysql.RowDataPacket[]>(sql, values)
  return rows[0]!
}

const rawConnect = () => RawClient.connect(proxy.port("mysql"))
const handshakeResponse = (database: string, authResponse?: Buffer) =>
  rawHandshakeResponse(db1.user, database, authResponse)

const errOf = (bytes: Buffer): Framed<ErrPacket> => {
  const d = decodeErrPacket(bytes)
  if (d._tag !== "Frame") throw new Error(`expected an ERR packet, got ${bytes.toString("hex")}`)
  return d.value
}

/** Raw bytes after the greeting; everything the proxy answers until it closes. */
const rawExchange = async (bytes: Buffer | undefined) => {
  const c = await rawConnect()
  await c.read(decodeHandshakeV10)
  if (bytes) c.socket.write(bytes)
  return c.rest()
}

describe("mysql listener: the protocol through the proxy", () => {
  it("greets as a MySQL 4.1+ server with mysql_native_password and a fresh nonce", async () => {
    const c = await rawConnect()
    const greeting = (await c.read(decodeHandshakeV10)).message
    // serverFlavor auto: the proxy's own MariaDB-like version until a login showed it the backend's.
    expect(greeting.serverVersion).toMatch(/^5\.5\.5-10\.11\.\d+-MariaDB/)
    expect(greeting.authPlugin).toBe("mysql_native_password")
    expect(greeting.authPluginData.length).toBe(20)
    expect(greeting.capabilities & Capability.SSL).toBe(Capability.SSL)
    expect(greeting.capabilities & Capability.COMPRESS).toBe(0)
    c.socket.destroy()
  })

  it("queries, prepared statements and transactions", async () => {
    await withConnection("appdb", async (c) => {
      expect(await one(c, "select database() as db, @@port as port")).toEqual({ db: "appdb", port: db1.port })
      await c.query("create table if not exists items (id int primary key, name varchar(50))")
      await c.query("truncate items")
      await c.beginTransaction()
      await c.execute("insert into items values (?, ?)", [1, "one"])
      await c.execute("insert into items values (?, ?)", [2, "two"])
      await c.rollback()
      expect(await one(c, "select count(*) as n from items")).toEqual({ n: 0 })
      await c.beginTransaction()
      await c.execute("insert into items values (?, ?)", [3, "three"])
      await c.commit()
      const [rows] = await c.execute<mysql.RowDataPacket[]>("select name from items where id = ?", [3])
      expect(rows).toEqual([{ name: "three" }])
      // An object parameter is JSON: mysql2 sends it as text because the greeting says MariaDB, which refuses the JSON
      // parameter type (and so would every MariaDB behind a greeting that did not say so).
      const [json] = await c.execute<mysql.RowDataPacket[]>("select json_value(?, '$.a') as a", [{ a: 7 }])
      expect(json).toEqual([{ a: "7" }])
      // an error inside the session is MariaDB's own, and the session goes on
      const e = (await c.query("select * from no_such_table").catch((x) => x)) as MysqlError
      expect(e.errno).toBe(1146)
      expect(e.code).toBe("ER_NO_SUCH_TABLE")
      expect(await one(c, "select 1 as ok")).toEqual({ ok: 1 })
    })
  })

  it("carries a 16 MB payload each way, split across packets", async () => {
    // MariaDB's max_allowed_packet is 16 MiB and it refuses a payload of exactly that, so the query and the row are
    // each 2^24-1 bytes: the most it takes, sent as one full packet and an empty continuation.
    const size = 0xffffff
    const blob = randomBytes(8_000_000)
    const pad = size - 4 - blob.length // the row: a 4-byte length, the blob, the padding
    const build = (spaces: number) =>
      `SELECT CONCAT(X'${blob.toString("hex")}', REPEAT('z', ${pad}))${" ".repeat(spaces)}AS d`
    const sql = build(1 + size - (1 + Buffer.byteLength(build(1))))
    expect(1 + Buffer.byteLength(sql)).toBe(size)
    await withConnection("appdb", async (c) => {
      const [rows] = await c.query<mysql.RowDataPacket[]>(sql)
      const d = rows[0]!.d as Buffer
      expect(d.length).toBe(blob.length + pad)
      const expected = Buffer.concat([blob, Buffer.alloc(pad, "z")])
      expect(createHash("sha256").update(d).digest("hex")).toBe(createHash("sha256").update(expected).digest("hex"))
      // and a blob stored and read back through a prepared statement
      await c.query("create table if not exists blobs (id int primary key, b longblob) engine=Aria")
      await c.query("delete from blobs")
      const stored = randomBytes(12_000_000)
      await c.execute("insert into blobs values (1, ?)", [stored])
      const [back] = await c.execute<mysql.RowDataPacket[]>("select b, length(b) as n from blobs where id = 1")
      expect(back[0]!.n).toBe(stored.length)
      expect((back[0]!.b as Buffer).equals(stored)).toBe(true)
    })
  })

  it("LOAD DATA LOCAL INFILE and a 5,000-row insert", async () => {
    const lines = Array.from({ length: 20_000 }, (_, i) => `${i}\t${randomBytes(16).toString("hex")}\n`)
    await withConnection(
      "appdb",
      async (c) => {
        await c.query("create table if not exists loaded (id int primary key, h char(32))")
        await c.query("truncate loaded")
        const [result] = await c.query<mysql.ResultSetHeader>({
          sql: "load data local infile 'lines.tsv' into table loaded",
          infileStreamFactory: () => Readable.from(lines.map((l) => Buffer.from(l)))
        })
        expect(result.affectedRows).toBe(20_000)
        expect(await one(c, "select h from loaded where id = 19999")).toEqual({
          h: lines[19_999]!.split("\t")[1]!.trim()
        })
        await c.query("truncate loaded")
        const rows = Array.from({ length: 5_000 }, (_, i) => [i, createHash("md5").update(String(i)).digest("hex")])
        const [inserted] = await c.query<mysql.ResultSetHeader>("insert into loaded values ?", [rows])
        expect(inserted.affectedRows).toBe(5_000)
      },
      { infileStreamFactory: () => Readable.from([]) }
    )
  })

  it("COM_RESET_CONNECTION and COM_CHANGE_USER", async () => {
    await withConnection("appdb", async (c) => {
      await c.query("set @marker = 42")
      await c.reset()
      expect(await one(c, "select @marker as m, database() as db")).toEqual({ m: null, db: "appdb" })
      // mysql2 hashes COM_CHANGE_USER with the first greeting's nonce (the proxy's); MariaDB answers it with an auth
      // switch carrying a fresh nonce, which mysql2 follows, so changing user works through the proxy.
      await c.changeUser({ user: db1.user, password: db1.password, database: "otherdb" })
      expect(await one(c, "select database() as db, current_user() as u")).toEqual({ db: "otherdb", u: "app@%" })
    })
  })

  it("multiple statements and compression requests are honoured or declined cleanly", async () => {
    await withConnection(
      "appdb",
      async (c) => {
        const [results] = await c.query<mysql.RowDataPacket[][]>("select 1 as a; select 2 as b")
        expect(results).toEqual([[{ a: 1 }], [{ b: 2 }]])
      },
      // The proxy does not offer compression, so mysql2 falls back to plain packets.
      { multipleStatements: true, compress: true }
    )
  })

  it("routes two databases on two different servers in the same run", async () => {
    const [a, b] = await Promise.all([
      withConnection("appdb", (c) => one(c, "select @@port as port")),
      withConnection("seconddb", (c) => one(c, "select database() as db, @@port as port"))
    ])
    expect(a).toEqual({ port: db1.port })
    expect(b).toEqual({ db: "seconddb", port: db2.port })
  })

  it("passes authentication through: a wrong password is MariaDB's own 1045", async () => {
    const e = await connectError("appdb", { password: "wrong" })
    expect(e.errno).toBe(1045)
    expect(e.code).toBe("ER_ACCESS_DENIED_ERROR")
    expect(e.message).toMatch(/Access denied for user 'app'@'[^']+' \(using password: YES\)/)
    const empty = await connectError("appdb", { password: "" })
    expect(empty.message).toContain("(using password: NO)")
  })

  it("numbers every packet of a hand-made login as a server would", async () => {
    const c = await rawConnect()
    const greeting = await c.read(decodeHandshakeV10)
    expect(greeting.sequenceId).toBe(0)
    c.socket.write(encodePacket(handshakeResponse("appdb"), 1))
    const change = await c.read(decodeAuthSwitchRequest)
    expect(change.sequenceId).toBe(2)
    expect(change.message.plugin).toBe("mysql_native_password")
    // the backend's nonce plus its NUL, not the proxy's
    expect(change.message.data.length).toBe(21)
    expect(change.message.data.subarray(0, 20).equals(greeting.message.authPluginData)).toBe(false)
    c.socket.write(encodePacket(nativeToken(db1.password, change.message.data.subarray(0, 20)), 3))
    const ok = await c.read(decodeOkPacket)
    expect(ok.sequenceId).toBe(4)
    c.socket.destroy()
  })

  it("serves 50 concurrent clients", async () => {
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        withConnection(i % 2 ? "appdb" : "seconddb", async (c) => (await one(c, "select ? + 1 as v", [i])).v)
      )
    )
    expect(results.map(Number)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1))
  })
})

describe("mysql listener: a handshake without a database", () => {
  it("answers 1046 No database selected when no default route is configured", async () => {
    const e = await connectError(undefined)
    expect(e.errno).toBe(1046)
    expect(e.code).toBe("ER_NO_DB_ERROR")
    expect(e.sqlState).toBe("3D000")
    expect(e.message).toContain("No database selected")
  })

  it("uses listeners.mysql.defaultRoute, or routes by user with routeBy: user", async () => {
    const fallback = await startTestProxy({
      listeners: { mysql: { host: "127.0.0.1", port: 0, defaultRoute: "seconddb" } },
      routes: { seconddb: `127.0.0.1:${db2.port}` },
      ssrf: { allow: ["127.0.0.0/8"] }
    })
    const byUser = await startTestProxy({
      listeners: { mysql: { host: "127.0.0.1", port: 0, routeBy: "user" } },
      routes: { app: `127.0.0.1:${db2.port}` },
      ssrf: { allow: ["127.0.0.0/8"] }
    })
    try {
      const viaDefault = await withConnection(undefined, (c) => one(c, "select database() as db, @@port as port"), {
        port: fallback.port("mysql"),
        password: db2.password
      })
      expect(viaDefault).toEqual({ db: null, port: db2.port })
      const viaUser = await withConnection("seconddb", (c) => one(c, "select database() as db, @@port as port"), {
        port: byUser.port("mysql")
      })
      expect(viaUser).toEqual({ db: "seconddb", port: db2.port })
      const noDb = await withConnection(undefined, (c) => one(c, "select @@port as port"), {
        port: byUser.port("mysql"),
        password: db2.password
      })
      expect(noDb).toEqual({ port: db2.port })
      const unknown = await connectError(undefined, { port: byUser.port("mysql"), user: "nobody" })
      expect(unknown.errno).toBe(1049)
      expect(unknown.message).toContain('no route for "nobody"')
    } finally {
      await Promise.all([fallback.stop(), byUser.stop()])
    }
  })
})

describe("mysql listener: TLS", () => {
  const ssl = () => ({ ca: certs.ca.cert })

  it("terminates TLS from the client; the hop to a plain backend stays plain", async () => {
    const r = await withConnection(
      "seconddb",
      async (c) => {
        const cipher = (c as unknown as { connection: { stream: tls.TLSSocket } }).connection.stream.getCipher()
        return { cipher: cipher.name, backend: await one(c, "show session status like 'Ssl_cipher'") }
      },
      { ssl: ssl() }
    )
    expect(r.cipher).toBeTruthy()
    expect(r.backend).toEqual({ Variable_name: "Ssl_cipher", Value: "" })
  })

  it("opens TLS to the backend when the route asks for it (metadata.tls)", async () => {
    for (const extra of [{}, { ssl: ssl() }]) {
      const r = await withConnection("otherdb", (c) => one(c, "show session status like 'Ssl_cipher'"), extra)
      expect(r.Value).not.toBe("")
    }
  })

  it("lets a REQUIRE SSL user in when both hops are TLS, and MariaDB refuses it over a plain backend hop", async () => {
    const tlsUser = { user: db1.tlsUser, password: db1.tlsPassword, ssl: ssl() }
    const r = await withConnection("otherdb", (c) => one(c, "select current_user() as u"), tlsUser)
    expect(r).toEqual({ u: "app_tls@%" })
    const e = await connectError("appdb", tlsUser)
    expect(e.errno).toBe(1045)
    expect(e.message).toContain("Access denied for user 'app_tls'")
  })

  it("refuses a client that does not trust the proxy's certificate", async () => {
    const e = await connectError("appdb", { ssl: { ca: certs.rogueCa.cert } })
    expect(e.message).toMatch(/self[- ]signed|unable to verify|certificate/i)
  })

  it("upgrades a hand-made SSLRequest and numbers the login after it from 2", async () => {
    const c = await rawConnect()
    await c.read(decodeHandshakeV10)
    c.socket.write(
      encodePacket(
        encodeSslRequest({ capabilities: loginFlags, maxPacketSize: 1 << 24, characterSet: UTF8MB4_GENERAL_CI }),
        1
      )
    )
    const secure = tls.connect({ socket: c.socket, ca: certs.ca.cert, servername: "localhost" })
    await new Promise<void>((r, j) => secure.once("secureConnect", r).once("error", j))
    const s = new RawClient(secure)
    secure.write(encodePacket(handshakeResponse("appdb"), 2))
    const change = await s.read(decodeAuthSwitchRequest)
    expect(change.sequenceId).toBe(3)
    secure.write(encodePacket(nativeToken(db1.password, change.message.data.subarray(0, 20)), 4))
    expect((await s.read(decodeOkPacket)).sequenceId).toBe(5)
    secure.destroy()
  })
})

describe("mysql listener: every failure is an ERR packet the client prints", () => {
  // The last column: what only the proxy's log line (the one with the message's ref) may say.
  it.each([
    ["nosuchdb", 1049, "ER_BAD_DB_ERROR", /Unknown database 'nosuchdb'.*no route for "nosuchdb"/, []],
    ["banned", 1045, "ER_ACCESS_DENIED_ERROR", /suspended/, []],
    [
      "meta",
      1045,
      "ER_ACCESS_DENIED_ERROR",
      /the backend of "meta" is refused by the proxy's policy/,
      ["169.254.169.254"]
    ],
    ["busydb", 1040, "ER_CON_COUNT_ERROR", /^polyproxy: "busydb" is unavailable \(ref /, ["at capacity"]],
    ["colddb", 1040, "ER_CON_COUNT_ERROR", /retry in \d+ s/, []],
    ["slowdb", 2003, undefined, /Can't connect.*the route lookup for "slowdb" did not answer in time/, []],
    [
      "deaddb",
      2003,
      undefined,
      /Can't connect.*cannot connect to the backend of "deaddb"/,
      ["127.0.0.1:", "ECONNREFUSED"]
    ],
    ["silentdb", 2003, undefined, /Can't connect.*backend did not complete the login within 1s/, []],
    ["smtpdb", 2003, undefined, /Can't connect.*cannot connect to the backend/, ["backend greeting: packet too large"]],
    ["brokendb", 1105, "ER_UNKNOWN_ERROR", /^polyproxy: internal error \(ref /, ["route store unreachable"]]
  ])("database %s → %i", async (database, errno, code, message, hidden) => {
    const e = await connectError(database)
    expect(e.errno).toBe(errno)
    expect(e.code).toBe(code)
    expect(e.message).toMatch(message)
    expectShownOnlyInLog(e.message, proxy.logs, hidden)
  })

  it("a listener at its connection limit answers 1040 in place of the greeting", async () => {
    const small = await startTestProxy({
      listeners: { mysql: { host: "127.0.0.1", port: 0, maxConnections: 1 } },
      routes: { appdb: `127.0.0.1:${db1.port}` },
      ssrf: { allow: ["127.0.0.0/8"] }
    })
    try {
      const port = small.port("mysql")
      await withConnection(
        "appdb",
        async () => {
          const e = await connectError("appdb", { port })
          expect(e.errno).toBe(1040)
          expect(e.code).toBe("ER_CON_COUNT_ERROR")
          expect(e.message).toMatch(/at its limit of 1 connections; retry in 1 s/)
        },
        { port }
      )
    } finally {
      await small.stop()
    }
  })

  it("a client that sends nothing gets 1043 Bad handshake after the handshake timeout", async () => {
    const started = Date.now()
    const err = errOf(await rawExchange(undefined))
    expect(err.sequenceId).toBe(2)
    expect(err.message.code).toBe(1043)
    expect(err.message.sqlState).toBe("08S01")
    expect(err.message.message).toMatch(/Bad handshake.*handshake within 1s/)
    expect(Date.now() - started).toBeGreaterThanOrEqual(900)
  })

  it("a client that never answers the auth switch gets 1043, numbered after the switch", async () => {
    const c = await rawConnect()
    await c.read(decodeHandshakeV10)
    c.socket.write(encodePacket(handshakeResponse("appdb"), 1))
    await c.read(decodeAuthSwitchRequest)
    const err = errOf(await c.rest())
    expect(err.sequenceId).toBe(4)
    expect(err.message.code).toBe(1043)
    expect(err.message.message).toContain("authentication did not finish")
  })

  it("an oversized handshake gets 1153 before its bytes arrive", async () => {
    const header = Buffer.from([0x70, 0x11, 0x01, 0x01]) // 70,000 bytes announced
    const err = errOf(await rawExchange(header))
    expect(err.message.code).toBe(1153)
    expect(err.message.message).toContain("70000")
  })

  it("garbage gets 1153 or 1043 with a readable reason", async () => {
    // "GET " read as a packet header announces 2 MB: too large.
    expect(errOf(await rawExchange(Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))).message.code).toBe(1153)
    const noise = errOf(await rawExchange(encodePacket(Buffer.alloc(40, 0xff).fill(0, 0, 2), 1)))
    expect(noise.message.code).toBe(1043)
    expect(noise.message.message).toContain("protocol 4.1")
  })

  it("logs and counts every refusal by reason", async () => {
    await eventually(() => proxy.logs.some((l) => l.reason === "HANDSHAKE_TIMEOUT"))
    const text = await fetch(`${proxy.adminUrl}/metrics`).then((r) => r.text())
    expect(text).toMatch(/polyproxy_errors_total\{[^}]*listener="mysql"[^}]*reason="not_found"[^}]*\} [1-9]/)
    expect(text).toMatch(/polyproxy_errors_total\{[^}]*listener="mysql"[^}]*reason="bad_request"[^}]*\} [1-9]/)
  })

  it("mysql2 saw no packet out of order in any of the above", () => {
    expect(sequenceWarnings).toEqual([])
  })
})

describe("mysql listener: mTLS", () => {
  let mtls: TestProxy
  const subjects: Array<string | undefined> = []
  beforeAll(async () => {
    mtls = await startMtlsProxy("mysql", certs, `127.0.0.1:${db1.port}`, subjects)
  })
  afterAll(async () => mtls?.stop())

  it("accepts a client with a valid certificate and passes its subject to the resolver", async () => {
    const ssl = { ca: certs.ca.cert, cert: certs.client.cert, key: certs.client.key }
    const r = await withConnection("appdb", (c) => one(c, "select 1 as ok"), { port: mtls.port("mysql"), ssl })
    expect(r).toEqual({ ok: 1 })
    expect(subjects).toContain("CN=tenant-client")
  })

  it("refuses a certificate from another CA in words, and a client without TLS", async () => {
    const port = mtls.port("mysql")
    const rogue = await connectError("appdb", {
      port,
      ssl: { ca: certs.ca.cert, cert: certs.rogueClient.cert, key: certs.rogueClient.key }
    })
    expect(rogue.errno).toBe(1045)
    expect(rogue.message).toContain("a valid client certificate is required")
    const plain = await connectError("appdb", { port })
    expect(plain.errno).toBe(1045)
    expect(plain.message).toContain("requires TLS with a client certificate")
  })
})

// caching_sha2_password is MySQL's (MariaDB has no such plugin), so this needs a MySQL 8 container. With the local
// provider (no container engine on this machine) it is skipped; TEST_BACKENDS=containers runs it.
const provider = await backendProvider()
describe("mysql listener: caching_sha2_password against MySQL 8", () => {
  it.skipIf(provider === "local")(
    "full authentication (RSA key exchange passed through), then the fast path; TLS on one hop only is refused",
    async () => {
      const { GenericContainer, Wait } = await import("testcontainers")
      const password = randomBytes(9).toString("hex")
      const mysql8 = await new GenericContainer("mysql:8.4")
        .withEnvironment({ MYSQL_ROOT_PASSWORD: randomBytes(9).toString("hex") })
        .withExposedPorts(3306)
        .withCopyContentToContainer([
          {
            content: [
              "CREATE DATABASE sha2db",
              `CREATE USER 'sha2'@'%' IDENTIFIED WITH caching_sha2_password BY '${password}'`,
              `CREATE USER 'sha2tls'@'%' IDENTIFIED WITH caching_sha2_password BY '${password}'`,
              "GRANT ALL ON sha2db.* TO 'sha2'@'%'",
              "GRANT ALL ON sha2db.* TO 'sha2tls'@'%'",
              ""
            ].join(";\n"),
            target: "/docker-entrypoint-initdb.d/10-polyproxy.sql"
          }
        ])
        .withWaitStrategy(
          Wait.forAll([Wait.forLogMessage(/ready for connections.*port: 3306/), Wait.forListeningPorts()])
        )
        .start()
      const sha2 = await startTestProxy({
        listeners: {
          mysql: { host: "127.0.0.1", port: 0, tls: { cert: certs.server.certPath, key: certs.server.keyPath } }
        },
        routes: { sha2db: `${mysql8.getHost()}:${mysql8.getMappedPort(3306)}` },
        ssrf: { allow: ["0.0.0.0/0", "::/0"] }
      })
      try {
        const login = { port: sha2.port("mysql"), user: "sha2", password }
        // Not cached yet: full authentication over plain TCP on both hops, the client fetching the server's RSA key.
        const first = await withConnection("sha2db", (c) => one(c, "select current_user() as u"), login)
        expect(first).toEqual({ u: "sha2@%" })
        // Cached now: the fast path, a scramble of the backend's nonce.
        expect(await withConnection("sha2db", (c) => one(c, "select 1 as ok"), login)).toEqual({ ok: 1 })
        // TLS from the client but not to the backend, and no cached login: the client would send its password in
        // clear for the proxy to pass on over plain TCP. Refused with a reason instead.
        const e = await connectError("sha2db", { ...login, user: "sha2tls", ssl: { ca: certs.ca.cert } })
        expect(e.errno).toBe(1045)
        expect(e.message).toContain("TLS is on from the client and off to the backend")
      } finally {
        await sha2.stop()
        await mysql8.stop()
      }
    },
    300_000
  )
})
