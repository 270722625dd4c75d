// UserHashes against a real MariaDB 10.11: a user's hash as mysql.user holds it, read with a login that has only
// SELECT on mysql.user; nothing for unknown users, users without a password or of another plugin; the Host row the
// server itself logs the proxy in with; errors that name no secret; one query per user per ttl (counted by the server:
// the counting query advances a sequence), concurrent lookups sharing it, one connection; TLS as the route asks.
// And the point of it all: a real MariaDB accepts a login whose answer was made from stage1 alone, stage1 recovered
// from a client's answer (mysql2's own scramble) and the looked-up hash, no password in between.
import { randomBytes } from "node:crypto"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import mysql from "mysql2/promise"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  AuthPlugin,
  Capability,
  decodeHandshakeV10,
  decodePacket,
  encodeHandshakeResponse41,
  encodePacket,
  nativeAnswer,
  nativeHashOf,
  nativeStage1,
  parseErrPacket,
  parseOkPacket,
  recoverStage1,
  UTF8MB4_GENERAL_CI
} from "../../../src/codec/mysql/index.ts"
import type { VettedEndpoint } from "../../../src/domain/Endpoint.ts"
import { type MysqlAuthSettings, mysqlAuthDefaults } from "../../../src/listeners/mysql/proxyAuth/settings.ts"
import {
  type AuthBackend,
  UserHashes,
  UserLookupError,
  type UserRecord
} from "../../../src/listeners/mysql/proxyAuth/userHashes.ts"
import type { ClientTlsOptions } from "../../../src/listeners/tlsProfile.ts"
import { type MariaDbServer, startMariaDb } from "../../support/backends/index.ts"
import { randomSecret } from "../../support/backends/local.ts"
import { RawClient } from "../../support/mysql.ts"
import { closedPort } from "../../support/net.ts"

const adminPassword = randomSecret()
let db: MariaDbServer
let admin: mysql.Connection
/** The address the server sees this machine's logins come from (USER()'s host part). */
let seen: string
const made: Array<UserHashes> = []

const require = createRequire(import.meta.url)
const auth41 = require(join(dirname(require.resolve("mysql2")), "lib/auth_41.js")) as {
  calculateToken(password: string, scramble1: Buffer, scramble2: Buffer): Buffer
}
/** What mysql2 answers to `nonce` for `password`: a real client's side of a login to the proxy. */
const clientAnswer = (password: string, nonce: Buffer) =>
  auth41.calculateToken(password, nonce.subarray(0, 8), nonce.subarray(8, 20))

const passwords: Record<string, string> = {
  native_user: "native-pw",
  via_user: "via-pw",
  late_user: "late-pw"
}

beforeAll(async () => {
  db = await startMariaDb({
    tls: true,
    setup: [
      `CREATE USER 'm1admin'@'%' IDENTIFIED BY '${adminPassword}'`,
      "GRANT ALL PRIVILEGES ON *.* TO 'm1admin'@'%' WITH GRANT OPTION"
    ]
  })
  admin = await mysql.createConnection({ host: "127.0.0.1", port: db.port, user: "m1admin", password: adminPassword })
  const [rows] = await admin.query<mysql.RowDataPacket[]>("SELECT SUBSTRING_INDEX(USER(), '@', -1) AS host")
  seen = rows[0]!.host as string
  const [a, b] = seen.split(".")
  for (const sql of [
    "INSTALL SONAME 'auth_ed25519'",
    "CREATE USER 'pooler'@'%' IDENTIFIED BY 'pooler-pw'",
    // All the default query needs: mysql.user is a view over mysql.global_priv, readable without access to the table.
    "GRANT SELECT ON mysql.user TO 'pooler'@'%'",
    // The connection-counting spec's own lookup login: other specs' lookup connections stay open a while.
    "CREATE USER 'pooler_idle'@'%' IDENTIFIED BY 'pooler-idle-pw'",
    "GRANT SELECT ON mysql.user TO 'pooler_idle'@'%'",
    "CREATE USER 'pooler_tls'@'%' IDENTIFIED BY 'pooler-tls-pw' REQUIRE SSL",
    "GRANT SELECT ON mysql.user TO 'pooler_tls'@'%'",
    "CREATE USER 'nogrant'@'%' IDENTIFIED BY 'nogrant-pw'",
    "CREATE USER 'native_user'@'%' IDENTIFIED BY 'native-pw'",
    "CREATE USER 'via_user'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('via-pw')",
    "CREATE USER 'nopass_user'@'%'",
    "CREATE USER 'ed_user'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('ed-pw')",
    // Several Host rows: the server logs a login from `seen` in with the most specific matching one.
    "CREATE USER 'multi'@'%' IDENTIFIED BY 'multi-any'",
    `CREATE USER 'multi'@'${seen}' IDENTIFIED BY 'multi-here'`,
    "CREATE USER 'multi'@'10.255.255.%' IDENTIFIED BY 'multi-elsewhere'",
    "CREATE USER 'shaped'@'%' IDENTIFIED BY 'shaped-any'",
    `CREATE USER 'shaped'@'${a}.${b}.%' IDENTIFIED BY 'shaped-wild'`,
    `CREATE USER 'shaped'@'${a}.${b}.0.0/255.255.0.0' IDENTIFIED BY 'shaped-mask'`,
    `CREATE USER 'prefix'@'${a}.%' IDENTIFIED BY 'prefix-short'`,
    `CREATE USER 'prefix'@'${a}.${b}.%' IDENTIFIED BY 'prefix-long'`,
    "CREATE USER 'elsewhere'@'10.255.255.1' IDENTIFIED BY 'elsewhere-pw'",
    "CREATE SEQUENCE appdb.lookups NOCACHE",
    "GRANT SELECT, INSERT ON appdb.lookups TO 'pooler'@'%'"
  ]) {
    await admin.query(sql)
  }
})

afterAll(async () => {
  for (const h of made) h.close()
  await admin?.end()
  await db?.stop()
})

const endpoint = (port: number, host = "127.0.0.1"): VettedEndpoint => ({ host, port, ip: "127.0.0.1", family: 4 })
const at =
  (target: VettedEndpoint, tls?: ClientTlsOptions): AuthBackend =>
  () =>
    Promise.resolve({ target, tls })

const settings = (extra: Partial<MysqlAuthSettings> = {}): MysqlAuthSettings => ({
  route: "users",
  user: "pooler",
  password: "pooler-pw",
  query: mysqlAuthDefaults.query,
  ttl: 60,
  negativeTtl: 5,
  ...extra
})

const hashes = (extra: Partial<MysqlAuthSettings> = {}, backend: AuthBackend = at(endpoint(db.port))) => {
  const h = new UserHashes(settings(extra), backend, { timeoutMs: 3000 })
  made.push(h)
  return h
}

/** The default query, plus a sequence step per run: the server counts the queries. */
const counting = (extra: Partial<MysqlAuthSettings> = {}): Partial<MysqlAuthSettings> => ({
  query: `SELECT u.authentication_string, u.plugin FROM (SELECT NEXTVAL(appdb.lookups) AS n) s
          LEFT JOIN mysql.user u ON u.User = ? AND u.Host = '%'`,
  ...extra
})

/** Values the sequence gave out (NOCACHE: its next value is exact), read without taking one. */
const queriesRun = async (): Promise<number> => {
  const [rows] = await admin.query<mysql.RowDataPacket[]>("SELECT next_not_cached_value AS n FROM appdb.lookups")
  return Number(rows[0]!.n) - 1
}

const storedHash = async (user: string, host = "%"): Promise<Buffer> => {
  const [rows] = await admin.query<mysql.RowDataPacket[]>(
    "SELECT authentication_string FROM mysql.user WHERE User = ? AND Host = ?",
    [user, host]
  )
  return Buffer.from((rows[0]!.authentication_string as string).slice(1), "hex")
}

const rejection = async (p: Promise<unknown>): Promise<UserLookupError> => {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err
  )
  if (!(e instanceof UserLookupError)) throw new Error(`expected a UserLookupError, got ${String(e)}`)
  return e
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const poolerConnections = async (): Promise<number> => {
  const [rows] = await admin.query<mysql.RowDataPacket[]>(
    "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = 'pooler_idle'"
  )
  return Number(rows[0]!.n)
}

const eventually = async (check: () => Promise<boolean>): Promise<boolean> => {
  for (let i = 0; i < 50; i++) {
    if (await check()) return true
    await sleep(100)
  }
  return check()
}

describe("UserHashes", () => {
  it("reads a native user's hash as mysql.user holds it, through a login with SELECT on mysql.user only", async () => {
    const h = hashes()
    for (const user of ["native_user", "via_user"]) {
      const record = await h.lookup(user)
      expect(record).toEqual({ hash: await storedHash(user), plugin: AuthPlugin.NATIVE })
      expect(record!.hash).toEqual(nativeHashOf(nativeStage1(passwords[user]!)))
    }
  })

  it.each([
    ["an unknown user", "no_such_user"],
    ["a user without a password", "nopass_user"],
    ["an ed25519 user", "ed_user"],
    ["a user whose only row is for another host", "elsewhere"],
    ["a user name that is SQL", "x' OR '1'='1"]
  ])("has nothing for %s", async (_, user) => {
    expect(await hashes().lookup(user)).toBeUndefined()
  })

  it.each([
    ["an exact host before '%'", "multi", "multi-here"],
    ["a netmask before a wildcard", "shaped", "shaped-mask"],
    ["the longer part before the wildcard", "prefix", "prefix-long"]
  ])("of several Host rows picks the one the server logs this host in with: %s", async (_, user, password) => {
    const record = await hashes().lookup(user)
    expect(record?.hash).toEqual(nativeHashOf(nativeStage1(password)))
    // The server agrees: it accepts that password from here (and only that one).
    const c = await mysql.createConnection({ host: "127.0.0.1", port: db.port, user, password })
    await c.end()
  })

  it("rejects when the lookup login's password is wrong, naming the backend and login but no secret", async () => {
    const e = await rejection(hashes({ password: "wrong-lookup-pw" }).lookup("native_user"))
    expect(e.errno).toBe(1045)
    expect(e.code).toBe("ER_ACCESS_DENIED_ERROR")
    expect(e.message).toContain(`on 127.0.0.1:${db.port} (route users) as pooler failed: Access denied`)
    const secrets = ["wrong-lookup-pw", "pooler-pw", "native-pw", (await storedHash("native_user")).toString("hex")]
    for (const secret of secrets) expect(e.message.toLowerCase()).not.toContain(secret.toLowerCase())
  })

  it("rejects when the lookup login may not read mysql.user", async () => {
    const e = await rejection(hashes({ user: "nogrant", password: "nogrant-pw" }).lookup("native_user"))
    expect(e.errno).toBe(1142)
    expect(e.message).toContain("as nogrant failed: SELECT command denied")
    expect(e.message).not.toContain("nogrant-pw")
  })

  it("rejects when the backend is down or the route cannot be resolved, and asks again next time", async () => {
    const down = hashes({}, at(endpoint(await closedPort())))
    expect((await rejection(down.lookup("native_user"))).code).toBe("ECONNREFUSED")
    expect((await rejection(down.lookup("native_user"))).code).toBe("ECONNREFUSED")
    expect(down.stats()).toMatchObject({ lookups: 2, failures: 2, cached: 0 })
    const unresolved = hashes({}, () => Promise.reject(new Error("route users: NOT_FOUND")))
    const e = await rejection(unresolved.lookup("native_user"))
    expect(e.message).toBe("user lookup for route users as pooler failed: route users: NOT_FOUND")
  })

  it("gives up on a query after timeoutMs, and the next lookup gets a new connection", async () => {
    const slow = new UserHashes(
      settings({
        query:
          "SELECT authentication_string, plugin FROM mysql.user WHERE User = ? AND Host = '%' AND SLEEP(User = 'multi') = 0"
      }),
      at(endpoint(db.port)),
      { timeoutMs: 500 }
    )
    made.push(slow)
    const e = await rejection(slow.lookup("multi"))
    expect(e.code).toBe("ETIMEDOUT")
    expect(e.message).toContain("no answer within 500 ms")
    expect((await slow.lookup("native_user"))?.hash).toEqual(await storedHash("native_user"))
  })

  it("asks the server once per user while the answer is fresh, and again after ttl", async () => {
    const h = hashes(counting({ ttl: 0.5 }))
    const before = await queriesRun()
    const first = await h.lookup("native_user")
    expect(first?.hash).toEqual(await storedHash("native_user"))
    expect(await h.lookup("native_user")).toBe(first)
    expect(await queriesRun()).toBe(before + 1)
    await h.lookup("via_user")
    expect(await queriesRun()).toBe(before + 2)
    expect(h.stats()).toEqual({ lookups: 2, hits: 1, failures: 0, cached: 2 })
    await sleep(700)
    await h.lookup("native_user")
    expect(await queriesRun()).toBe(before + 3)
    expect(h.stats()).toMatchObject({ lookups: 3, hits: 1 })
  })

  it("sees a password change after ttl, not before", async () => {
    await admin.query("CREATE USER 'changing'@'%' IDENTIFIED BY 'old-pw'")
    const h = hashes({ ttl: 0.5 })
    expect((await h.lookup("changing"))?.hash).toEqual(nativeHashOf(nativeStage1("old-pw")))
    await admin.query("ALTER USER 'changing'@'%' IDENTIFIED BY 'new-pw'")
    expect((await h.lookup("changing"))?.hash).toEqual(nativeHashOf(nativeStage1("old-pw")))
    await sleep(700)
    expect((await h.lookup("changing"))?.hash).toEqual(nativeHashOf(nativeStage1("new-pw")))
  })

  it("remembers an unknown user for negativeTtl, then looks again", async () => {
    const h = hashes(counting({ negativeTtl: 0.5 }))
    const before = await queriesRun()
    expect(await h.lookup("late_user")).toBeUndefined()
    await admin.query("CREATE USER 'late_user'@'%' IDENTIFIED BY 'late-pw'")
    expect(await h.lookup("late_user")).toBeUndefined()
    expect(await queriesRun()).toBe(before + 1)
    await sleep(700)
    expect((await h.lookup("late_user"))?.hash).toEqual(nativeHashOf(nativeStage1(passwords.late_user!)))
    expect(await queriesRun()).toBe(before + 2)
  })

  it("sends one query for ten concurrent lookups of a user, even with ttl 0", async () => {
    const h = hashes(counting({ ttl: 0 }))
    const before = await queriesRun()
    const answers = await Promise.all(Array.from({ length: 10 }, () => h.lookup("native_user")))
    expect(new Set(answers).size).toBe(1)
    expect(answers[0]?.hash).toEqual(await storedHash("native_user"))
    expect(await queriesRun()).toBe(before + 1)
    expect(h.stats()).toEqual({ lookups: 1, hits: 9, failures: 0, cached: 0 })
    // ttl 0: the next lookup asks again.
    await h.lookup("native_user")
    expect(await queriesRun()).toBe(before + 2)
  })

  it("uses one connection however many users, closes it when idle, and rejects after close()", async () => {
    const login = { user: "pooler_idle", password: "pooler-idle-pw" }
    const h = new UserHashes(settings({ ...login, ttl: 0, negativeTtl: 0 }), at(endpoint(db.port)), { idleMs: 500 })
    made.push(h)
    const users = ["native_user", "via_user", "multi", "shaped", "nopass_user", "no_such_user"]
    await Promise.all(users.map((u) => h.lookup(u)))
    expect(await poolerConnections()).toBe(1)
    expect(await eventually(async () => (await poolerConnections()) === 0)).toBe(true)
    await h.lookup("native_user")
    expect(await poolerConnections()).toBe(1)
    h.close()
    expect((await rejection(h.lookup("native_user"))).message).toBe("user lookup is closed")
    expect(await eventually(async () => (await poolerConnections()) === 0)).toBe(true)
  })

  it("speaks TLS to the backend when the route asks, checking the certificate against the route's host name", async () => {
    const ca = db.certs!.ca.cert
    const tlsLogin = { user: "pooler_tls", password: "pooler-tls-pw" }
    // REQUIRE SSL: in clear the server refuses the lookup login.
    expect((await rejection(hashes(tlsLogin).lookup("native_user"))).errno).toBe(1045)
    const verified = hashes(tlsLogin, at(endpoint(db.port, "localhost"), { ca, rejectUnauthorized: true }))
    expect((await verified.lookup("native_user"))?.hash).toEqual(await storedHash("native_user"))
    // Named by its IP, checked against the certificate's IP address.
    const byIp = hashes(tlsLogin, at(endpoint(db.port), { ca, rejectUnauthorized: true }))
    expect((await byIp.lookup("native_user"))?.hash).toEqual(await storedHash("native_user"))
    // Dialed at the same IP, but named as a host the certificate does not cover: refused.
    const wrongName = hashes(tlsLogin, at(endpoint(db.port, "db.example.net"), { ca, rejectUnauthorized: true }))
    // mysql2 names every TLS failure HANDSHAKE_SSL_ERROR, keeping Node's words.
    const altname = await rejection(wrongName.lookup("native_user"))
    expect(altname.code).toBe("HANDSHAKE_SSL_ERROR")
    expect(altname.message).toContain("Host: db.example.net. is not in the cert's altnames")
    // Not signed by the CA given: refused.
    const otherCa = hashes(tlsLogin, at(endpoint(db.port, "localhost"), { ca: undefined, rejectUnauthorized: true }))
    const untrusted = await rejection(otherCa.lookup("native_user"))
    expect(untrusted.code).toBe("HANDSHAKE_SSL_ERROR")
    expect(untrusted.message).toMatch(/self-signed certificate|unable to (get local issuer|verify)/)
  })
})

/** COM_QUERY SELECT CURRENT_USER() on a logged-in raw session: the account (user@host row) the server chose. */
const currentUser = async (client: RawClient): Promise<string> => {
  client.socket.write(encodePacket(Buffer.concat([Buffer.from([0x03]), Buffer.from("SELECT CURRENT_USER()")]), 0))
  const packets = []
  // Column count, column definition, EOF, the row, EOF (no CLIENT_DEPRECATE_EOF).
  for (let i = 0; i < 5; i++) packets.push((await client.read(decodePacket)).payload)
  const row = packets[3]!
  return row.subarray(1, 1 + row[0]!).toString("utf8")
}

/**
 * Logs in to `db` directly as `user`, answering the server's nonce with `answerFor(nonce)`; the server's verdict: the
 * account it chose, or its error.
 */
const loginWith = async (
  user: string,
  answerFor: (nonce: Buffer) => Buffer
): Promise<{ readonly account: string } | { readonly code: number; readonly message: string }> => {
  const client = await RawClient.connect(db.port)
  try {
    const greeting = (await client.read(decodeHandshakeV10)).message
    const response = encodeHandshakeResponse41({
      capabilities:
        (Capability.LONG_PASSWORD |
          Capability.PROTOCOL_41 |
          Capability.SECURE_CONNECTION |
          Capability.PLUGIN_AUTH |
          Capability.TRANSACTIONS) >>>
        0,
      maxPacketSize: 1 << 24,
      characterSet: UTF8MB4_GENERAL_CI,
      user,
      authResponse: answerFor(greeting.authPluginData),
      authPlugin: AuthPlugin.NATIVE
    })
    client.socket.write(encodePacket(response, 1))
    const first = await client.read(decodePacket)
    if (first.payload[0] === 0xff) {
      const err = parseErrPacket(first.payload)
      if (err._tag !== "ErrPacket") throw new Error(`undecodable ERR: ${first.payload.toString("hex")}`)
      return { code: err.code, message: err.message }
    }
    if (parseOkPacket(first.payload)._tag !== "OkPacket") {
      throw new Error(`expected OK after the login, got ${first.payload.toString("hex")}`)
    }
    return { account: await currentUser(client) }
  } finally {
    client.socket.destroy()
  }
}

describe("a login made from stage1 alone", () => {
  /**
   * The proxy's side: a client (mysql2's scramble) answers the proxy's nonce; the proxy recovers stage1 with the
   * looked-up hash, then answers the real server's nonce with it.
   */
  const throughTheProxy = async (user: string, password: string) => {
    const record: UserRecord | undefined = await hashes().lookup(user)
    if (record === undefined) throw new Error(`no hash for ${user}`)
    const proxyNonce = randomBytes(20)
    return recoverStage1(clientAnswer(password, proxyNonce), proxyNonce, record.hash)
  }

  it("is accepted by MariaDB for a user created with IDENTIFIED BY", async () => {
    const stage1 = await throughTheProxy("native_user", "native-pw")
    expect(stage1).toBeDefined()
    expect(await loginWith("native_user", (nonce) => nativeAnswer(stage1!, nonce))).toEqual({
      account: "native_user@%"
    })
  })

  it("is accepted for the Host row the lookup picked", async () => {
    const stage1 = await throughTheProxy("multi", "multi-here")
    expect(await loginWith("multi", (nonce) => nativeAnswer(stage1!, nonce))).toEqual({ account: `multi@${seen}` })
  })

  it("recovers nothing from a wrong password, and a made-up stage1 is refused by the server with 1045", async () => {
    expect(await throughTheProxy("native_user", "not-the-pw")).toBeUndefined()
    const verdict = await loginWith("native_user", (nonce) => nativeAnswer(nativeStage1("not-the-pw"), nonce))
    expect(verdict).toMatchObject({ code: 1045 })
    expect((verdict as { message: string }).message).toMatch(
      /^Access denied for user 'native_user'@'.+' \(using password: YES\)$/
    )
  })
})
