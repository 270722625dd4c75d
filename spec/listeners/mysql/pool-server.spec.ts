// MysqlPool and its MysqlServerConns against a real MariaDB 10.11: the login as the client's user from SHA1(password)
// alone and the server's own nonce, over TLS when the route asks; the server's refusals (1045, 1226) carried whole as
// the ERR payload a client should read; COM_RESET_CONNECTION before a reuse (user variables, temporary tables, the
// database and character set, an open transaction); the pool's cap counted by the server itself, its FIFO queue and
// its bounds, idle timeout, lifetime, the backend's breaker; a user limited to MAX_USER_CONNECTIONS 2 behind a pool of
// size 2 never refused. Fake servers for what MariaDB does not do (an auth switch, an ERR greeting). Time-based rules
// run through `sweep` with a clock moved by hand: no timed assertions.
import mysql from "mysql2/promise"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import {
  AuthPlugin,
  Capability,
  decodePacket,
  encodeAuthSwitchRequest,
  encodeErrPacket,
  encodeHandshakeV10,
  encodeOkPacket,
  encodePacket,
  MariaDbCapability,
  nativeAnswer,
  nativeStage1,
  parseErrPacket,
  parseHandshakeResponse41,
  parseOkPacket,
  Status,
  UTF8MB4_GENERAL_CI
} from "../../../src/codec/mysql/index.ts"
import { Reader } from "../../../src/codec/mysql/Reader.ts"
import type { VettedEndpoint } from "../../../src/domain/Endpoint.ts"
import type { ProxyError } from "../../../src/domain/ProxyError.ts"
import type { Route } from "../../../src/domain/Route.ts"
import { offered } from "../../../src/listeners/mysql/capabilities.ts"
import { type MysqlPool, MysqlPoolRefusal, poolErrPayload } from "../../../src/listeners/mysql/pool/mysqlPool.ts"
import { type MysqlPools, mysqlPools } from "../../../src/listeners/mysql/pool/mysqlPools.ts"
import type { MysqlServerConn, ProxyLogin } from "../../../src/listeners/mysql/pool/serverConn.ts"
import {
  type MysqlPoolSettings,
  mysqlSessionDefaults,
  mysqlTransactionDefaults
} from "../../../src/listeners/mysql/pool/settings.ts"
import { type BreakerHooks, makeBackendPool } from "../../../src/services/BackendPool.ts"
import { makeCircuitBreaker } from "../../../src/services/CircuitBreaker.ts"
import { prometheusText } from "../../../src/services/prometheus.ts"
import { type MariaDbServer, startMariaDb } from "../../support/backends/index.ts"
import { closedPort, type SilentServer, silentServer } from "../../support/net.ts"
import { poolWaiters } from "../../support/poolWaiters.ts"
import { eventually } from "../../support/proxy.ts"

const USERS = {
  counted: "counted-pw",
  capped: "capped-pw",
  plain: "plain-pw"
} as const

let db: MariaDbServer
let watcher: mysql.Connection
const opened: Array<MysqlPools> = []
const { ask, granted, refused, giveBack, cleanup } = poolWaiters<MysqlServerConn>()
let listeners = 0

const endpoint = (port: number): VettedEndpoint => ({ host: "127.0.0.1", port, ip: "127.0.0.1", family: 4 })

beforeAll(async () => {
  db = await startMariaDb({
    tls: true,
    databases: ["appdb", "other", "doomed"],
    setup: [
      "CREATE USER 'watcher'@'%' IDENTIFIED BY 'watcher-pw'",
      "GRANT PROCESS ON *.* TO 'watcher'@'%'",
      ...Object.entries(USERS).flatMap(([user, pw]) => [
        `CREATE USER '${user}'@'%' IDENTIFIED BY '${pw}'${user === "capped" ? " WITH MAX_USER_CONNECTIONS 2" : ""}`,
        `GRANT ALL PRIVILEGES ON appdb.* TO '${user}'@'%'`,
        `GRANT ALL PRIVILEGES ON other.* TO '${user}'@'%'`,
        `GRANT ALL PRIVILEGES ON doomed.* TO '${user}'@'%'`
      ])
    ]
  })
  watcher = await mysql.createConnection({ host: "127.0.0.1", port: db.port, user: "watcher", password: "watcher-pw" })
}, 120_000)

afterEach(() => {
  cleanup()
  for (const pools of opened.splice(0)) pools.close()
})

afterAll(async () => {
  await watcher?.end()
  await db?.stop()
})

/** What a client that negotiated mysql2's usual flags with the proxy's greeting brings. */
const loginOf = (user: string, password: string, extra: Partial<ProxyLogin> = {}): ProxyLogin => ({
  user,
  stage1: nativeStage1(password),
  database: "appdb",
  flags:
    (offered &
      (Capability.LONG_PASSWORD |
        Capability.FOUND_ROWS |
        Capability.LONG_FLAG |
        Capability.CONNECT_WITH_DB |
        Capability.PROTOCOL_41 |
        Capability.TRANSACTIONS |
        Capability.SECURE_CONNECTION |
        Capability.MULTI_RESULTS |
        Capability.PLUGIN_AUTH |
        Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA |
        Capability.SESSION_TRACK |
        Capability.DEPRECATE_EOF)) >>>
    0,
  mariadbCapabilities: 0,
  characterSet: UTF8MB4_GENERAL_CI,
  maxPacketSize: 1 << 24,
  ...extra
})

const settings = (extra: Partial<MysqlPoolSettings> = {}): MysqlPoolSettings => ({
  ...mysqlTransactionDefaults,
  size: 2,
  ...extra
})

interface Made {
  readonly pool: MysqlPool
  readonly pools: MysqlPools
  readonly owner: string
}

const makePool = (
  login: ProxyLogin,
  o: {
    readonly settings?: Partial<MysqlPoolSettings>
    readonly metadata?: Record<string, unknown>
    readonly port?: number
    readonly breaker?: BreakerHooks
    readonly loginTimeoutMs?: number
  } = {}
): Made => {
  const owner = `mysql-pool-spec-${++listeners}`
  const port = o.port ?? db.port
  const pools = mysqlPools(makeBackendPool({ sweepMs: 0, breaker: o.breaker }), owner, {
    connectTimeoutMs: 2_000,
    loginTimeoutMs: o.loginTimeoutMs ?? 5_000,
    upstreamTls: undefined
  })
  opened.push(pools)
  const route: Route = { resourceId: "appdb", endpoint: { host: "127.0.0.1", port }, metadata: o.metadata ?? {} }
  return { pool: pools.get(endpoint(port), route, login, settings(o.settings)), pools, owner }
}

interface Answer {
  readonly rows: Array<Array<string | null>>
  readonly error?: { readonly code: number; readonly message: string }
}

/**
 * Runs `sql` (COM_QUERY) on a held connection as a session would (its own data listener, status kept): the text
 * rows, or the server's error.
 */
const run = (conn: MysqlServerConn, sql: string): Promise<Answer> =>
  new Promise((resolve, reject) => {
    const s = conn.socket
    let buf = Buffer.alloc(0)
    const rows: Array<Array<string | null>> = []
    let columns = -1
    let columnEof = !conn.deprecateEof
    const finish = (answer: Answer, status?: number) => {
      if (status !== undefined) conn.status = status
      s.off("data", onData)
      s.pause()
      resolve(answer)
    }
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk])
      for (;;) {
        const d = decodePacket(buf)
        if (d._tag === "Invalid") return reject(new Error(d.reason))
        if (d._tag === "Need") return
        buf = buf.subarray(d.size)
        const p = d.value.payload
        if (p[0] === 0xff) {
          const e = parseErrPacket(p)
          return finish({ rows, error: e._tag === "ErrPacket" ? e : { code: -1, message: "?" } })
        }
        if (columns < 0) {
          if (p[0] === 0x00) return finish({ rows }, (parseOkPacket(p) as { statusFlags: number }).statusFlags)
          columns = new Reader(p).lenencInt()!
        } else if (columns > 0) columns--
        else if (columnEof) columnEof = false
        else if (p[0] === 0xfe && p.length < 0xffffff) {
          return finish(
            { rows },
            conn.deprecateEof ? (parseOkPacket(p) as { statusFlags: number }).statusFlags : p.readUInt16LE(3)
          )
        } else {
          const r = new Reader(p)
          const row: Array<string | null> = []
          while (r.remaining > 0) {
            if (p[r.offset] === 0xfb) {
              r.offset++
              row.push(null)
            } else row.push(r.lenencBytes()!.toString("utf8"))
          }
          rows.push(row)
        }
      }
    }
    s.on("data", onData)
    s.resume()
    s.write(encodePacket(Buffer.concat([Buffer.from([0x03]), Buffer.from(sql, "utf8")]), 0))
  })

const one = async (conn: MysqlServerConn, sql: string): Promise<string | null> => {
  const a = await run(conn, sql)
  if (a.error !== undefined) throw new Error(`${sql}: ${a.error.code} ${a.error.message}`)
  return a.rows[0]![0]!
}

/** Server connections of `user`, as the server counts them. */
const serverCount = async (user: string): Promise<number> => {
  const [rows] = await watcher.query("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = ?", [user])
  return Number((rows as Array<{ n: number }>)[0]!.n)
}

const errOf = (error: ProxyError) => {
  expect(Buffer.isBuffer(error.cause)).toBe(true)
  const e = parseErrPacket(error.cause as Buffer)
  if (e._tag !== "ErrPacket") throw new Error(e.reason)
  return e
}

describe("MysqlServerConn: the proxy's login to the server", () => {
  it("logs in as the client's user from stage1 alone, with its database, flags and character set", async () => {
    const { pool } = makePool(loginOf("plain", USERS.plain))
    const conn = await granted(ask(pool))
    expect(await one(conn, "SELECT CURRENT_USER()")).toBe("plain@%")
    expect(await one(conn, "SELECT DATABASE()")).toBe("appdb")
    expect(await one(conn, "SELECT CONNECTION_ID()")).toBe(String(conn.connectionId))
    expect(await one(conn, "SELECT @@character_set_client")).toBe("utf8mb4")
    expect(conn.mariadb).toBe(true)
    expect(conn.serverVersion).toMatch(/MariaDB/)
    expect(conn.deprecateEof).toBe(true)
    expect(conn.flags & Capability.CAN_HANDLE_EXPIRED_PASSWORDS).toBe(0)
    expect(conn.status & Status.AUTOCOMMIT).toBe(Status.AUTOCOMMIT)
    const ssl = await run(conn, "SHOW SESSION STATUS LIKE 'Ssl_version'")
    expect(ssl.rows[0]![1]).toBe("")
  })

  it("a client's latin1 and no CLIENT_DEPRECATE_EOF: the server connection has the same", async () => {
    const login = loginOf("plain", USERS.plain, { characterSet: 8 /* latin1_swedish_ci */ })
    const { pool } = makePool({ ...login, flags: (login.flags & ~Capability.DEPRECATE_EOF) >>> 0 })
    const conn = await granted(ask(pool))
    expect(conn.deprecateEof).toBe(false)
    expect(await one(conn, "SELECT @@character_set_client")).toBe("latin1")
    expect(await one(conn, "SELECT @@collation_connection")).toBe("latin1_swedish_ci")
  })

  it("TLS after an SSLRequest when the route's metadata.tls asks, the certificate checked", async () => {
    const { pool } = makePool(loginOf(db.tlsUser, db.tlsPassword), { metadata: { tls: { ca: db.certs!.ca.cert } } })
    const conn = await granted(ask(pool))
    expect(await one(conn, "SELECT CURRENT_USER()")).toBe("app_tls@%")
    const ssl = await run(conn, "SHOW SESSION STATUS LIKE 'Ssl_version'")
    expect(ssl.rows[0]![1]).toMatch(/^TLSv1\.[23]$/)
    // The same user over plain TCP: the server's own refusal (REQUIRE SSL).
    const plain = await refused(ask(makePool(loginOf(db.tlsUser, db.tlsPassword)).pool))
    expect(errOf(plain).code).toBe(1045)
    // A CA that did not sign the server's certificate: refused before a byte of the login.
    const other = makePool(loginOf(db.tlsUser, db.tlsPassword), { metadata: { tls: { ca: db.certs!.rogueCa.cert } } })
    const error = await refused(ask(other.pool))
    expect(error.reason).toBe("CONNECT_FAILED")
    expect(error.cause).not.toBeInstanceOf(Buffer)
  })

  it("a stage1 the server does not take: its 1045 reaches the waiter whole, as the ERR a client reads", async () => {
    const { pool } = makePool(loginOf("plain", "not-the-password"))
    const error = await refused(ask(pool))
    expect(error.reason).toBe("FORBIDDEN")
    expect(error.source).toBe("backend")
    const e = errOf(error)
    expect(e.code).toBe(1045)
    expect(e.sqlState).toBe("28000")
    expect(e.message).toMatch(/^Access denied for user 'plain'@'[^']+' \(using password: YES\)$/)
    expect(error.clientMessage).toBe(e.message)
    expect(poolErrPayload(error)).toBe(error.cause)
    expect(pool.counts()).toEqual({ open: 0, idle: 0, waiting: 0 })
    expect(pool.tally.openFailures).toBe(1)
  })

  it("a database the user may not use: the server's 1044, carried", async () => {
    const { pool } = makePool(loginOf("plain", USERS.plain, { database: "mysql" }))
    const e = errOf(await refused(ask(pool)))
    expect(e.code).toBe(1044)
    expect(e.message).toBe("Access denied for user 'plain'@'%' to database 'mysql'")
  })
})

describe("MysqlPool: reset before reuse", () => {
  it("session mode: COM_RESET_CONNECTION clears a user variable, a temporary table, USE and SET NAMES", async () => {
    const { pool } = makePool(loginOf("plain", USERS.plain), { settings: { mode: "session", size: 1 } })
    const conn = await granted(ask(pool))
    for (const sql of ["SET @kept = 42", "CREATE TEMPORARY TABLE scratch (a INT)", "USE other", "SET NAMES latin1"]) {
      expect((await run(conn, sql)).error).toBeUndefined()
    }
    expect(await one(conn, "SELECT @kept")).toBe("42")
    expect(await one(conn, "SELECT DATABASE()")).toBe("other")
    const next = ask(pool)
    giveBack(pool, conn)
    const again = await granted(next)
    expect(again.connectionId).toBe(conn.connectionId)
    expect(await one(again, "SELECT @kept")).toBeNull()
    expect((await run(again, "SELECT * FROM other.scratch")).error?.code).toBe(1146)
    expect(await one(again, "SELECT DATABASE()")).toBe("appdb")
    expect(await one(again, "SELECT @@character_set_client")).toBe("utf8mb4")
    expect(again.dirty).toBe(false)
  })

  it("transaction mode: reset only when the holder says it is dirty, or left a transaction open", async () => {
    const { pool } = makePool(loginOf("plain", USERS.plain), { settings: { size: 1 } })
    const conn = await granted(ask(pool))
    await run(conn, "SET @x = 1")
    giveBack(pool, conn)
    // Not dirty: given as it is (the session pins a client that made session state, and says so).
    let again = await granted(ask(pool))
    expect(await one(again, "SELECT @x")).toBe("1")
    again.dirty = true
    giveBack(pool, again)
    again = await granted(ask(pool))
    expect(await one(again, "SELECT @x")).toBeNull()
    await run(again, "CREATE TABLE IF NOT EXISTS t (a INT) ENGINE=InnoDB")
    await run(again, "BEGIN")
    await run(again, "INSERT INTO t VALUES (1)")
    expect(again.status & Status.IN_TRANS).toBe(Status.IN_TRANS)
    giveBack(pool, again)
    const last = await granted(ask(pool))
    expect(last.connectionId).toBe(conn.connectionId)
    expect(last.status & Status.IN_TRANS).toBe(0)
    expect(await one(last, "SELECT COUNT(*) FROM t")).toBe("0")
  })

  it("a reset the server refuses (its database dropped meanwhile): the connection is closed, never reused", async () => {
    const { pool } = makePool(loginOf("plain", USERS.plain, { database: "doomed" }), { settings: { size: 1 } })
    const conn = await granted(ask(pool))
    expect((await run(conn, "DROP DATABASE doomed")).error).toBeUndefined()
    conn.dirty = true
    giveBack(pool, conn)
    await eventually(() => pool.counts().open === 0)
    expect(conn.resetError).toBe("1049 Unknown database 'doomed'")
    // A new login to it gets the server's own words.
    expect(errOf(await refused(ask(pool))).code).toBe(1049)
  })
})

describe("MysqlPool", () => {
  it("opens at most `size` server connections and hands them to waiters in arrival order", async () => {
    const { pool } = makePool(loginOf("counted", USERS.counted), { settings: { size: 3 } })
    const order: Array<number> = []
    const asks = Array.from({ length: 8 }, (_, i) => ask(pool, order, i))
    const first = await Promise.all(asks.slice(0, 3).map(granted))
    expect(pool.counts()).toEqual({ open: 3, idle: 0, waiting: 5 })
    expect(await serverCount("counted")).toBe(3)
    expect(asks.slice(3).some((a) => a.settled())).toBe(false)
    const ids = new Set(first.map((c) => c.connectionId))
    for (const conn of first) giveBack(pool, conn)
    const second = await Promise.all(asks.slice(3, 6).map(granted))
    giveBack(pool, second[0]!)
    giveBack(pool, second[1]!)
    const third = await Promise.all(asks.slice(6).map(granted))
    expect(order).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
    for (const conn of [...second, ...third]) expect(ids.has(conn.connectionId)).toBe(true)
    for (const conn of [second[2]!, ...third]) {
      expect(await one(conn, "SELECT CURRENT_USER()")).toBe("counted@%")
      giveBack(pool, conn)
    }
    expect(pool.counts()).toEqual({ open: 3, idle: 3, waiting: 0 })
    expect(await serverCount("counted")).toBe(3)
  })

  it("size 0 (session mode's default): no cap, one server connection per waiter", async () => {
    expect(mysqlSessionDefaults.size).toBe(0)
    const { pool } = makePool(loginOf("plain", USERS.plain), { settings: mysqlSessionDefaults })
    const conns = await Promise.all(Array.from({ length: 5 }, () => granted(ask(pool))))
    expect(new Set(conns.map((c) => c.connectionId)).size).toBe(5)
    expect(pool.counts()).toEqual({ open: 5, idle: 0, waiting: 0 })
  })

  it("maxWaiting: one more waiter is refused at once with 1040; a cancelled waiter leaves the queue", async () => {
    const { pool } = makePool(loginOf("plain", USERS.plain), { settings: { size: 1, maxWaiting: 2 } })
    const conn = await granted(ask(pool))
    const second = ask(pool)
    const third = ask(pool)
    const error = await refused(ask(pool))
    expect(error.reason).toBe("UNAVAILABLE")
    expect(error.cause).toBeInstanceOf(MysqlPoolRefusal)
    expect((error.cause as MysqlPoolRefusal).kind).toBe("queue-full")
    const e = parseErrPacket(poolErrPayload(error))
    expect(e._tag === "ErrPacket" && [e.code, e.sqlState, e.message]).toEqual([
      1040,
      "08004",
      "polyproxy: Too many connections: 2 clients already wait for a server connection"
    ])
    second.cancel()
    expect(pool.counts().waiting).toBe(1)
    const fourth = ask(pool)
    giveBack(pool, conn)
    expect((await granted(third)).connectionId).toBe(conn.connectionId)
    expect(second.settled()).toBe(false)
    expect(fourth.settled()).toBe(false)
  })

  it("maxWait: the sweep fails waiters queued longer, with 1040", async () => {
    const { pool } = makePool(loginOf("plain", USERS.plain), { settings: { size: 1, maxWait: 2 } })
    await granted(ask(pool))
    const early = ask(pool)
    const queuedAt = performance.now()
    pool.sweep(queuedAt + 1_000)
    expect(early.settled()).toBe(false)
    pool.sweep(queuedAt + 2_500)
    const error = await refused(early)
    expect(error.reason).toBe("UNAVAILABLE")
    expect((error.cause as MysqlPoolRefusal).kind).toBe("wait-timeout")
    const e = parseErrPacket(poolErrPayload(error))
    expect(e._tag === "ErrPacket" && [e.code, e.message]).toEqual([
      1040,
      "polyproxy: Too many connections: no server connection was free within 2 s"
    ])
    expect(pool.counts().waiting).toBe(0)
  })

  it("idleTimeout closes idle connections down to minIdle", async () => {
    const { pool } = makePool(loginOf("counted", USERS.counted), {
      settings: { size: 2, minIdle: 1, idleTimeout: 1 }
    })
    await eventually(async () => (await serverCount("counted")) === 0)
    const conns = await Promise.all([granted(ask(pool)), granted(ask(pool))])
    for (const conn of conns) giveBack(pool, conn)
    const now = performance.now()
    pool.sweep(now)
    expect(pool.counts()).toEqual({ open: 2, idle: 2, waiting: 0 })
    pool.sweep(now + 1_500)
    expect(pool.counts()).toEqual({ open: 1, idle: 1, waiting: 0 })
    await eventually(async () => (await serverCount("counted")) === 1)
  })

  it("lifetime: an idle connection past it is closed and minIdle opens a new one; 0 closes each after one use", async () => {
    const { pool } = makePool(loginOf("plain", USERS.plain), {
      settings: { size: 1, minIdle: 1, lifetime: 1, idleTimeout: 0 }
    })
    const first = await granted(ask(pool))
    giveBack(pool, first)
    pool.sweep(performance.now() + 1_500)
    await eventually(() => pool.counts().idle === 1)
    const second = await granted(ask(pool))
    expect(second.connectionId).not.toBe(first.connectionId)

    const once = makePool(loginOf("plain", USERS.plain), { settings: { lifetime: 0 } })
    giveBack(once.pool, await granted(ask(once.pool)))
    expect(once.pool.counts()).toEqual({ open: 0, idle: 0, waiting: 0 })
  })

  it("a server connection killed while idle is dropped, and the next client gets a new one", async () => {
    const { pool } = makePool(loginOf("plain", USERS.plain), { settings: { size: 1 } })
    const conn = await granted(ask(pool))
    giveBack(pool, conn)
    expect(pool.counts().idle).toBe(1)
    const killer = await granted(ask(makePool(loginOf("plain", USERS.plain)).pool))
    expect((await run(killer, `KILL ${conn.connectionId}`)).error).toBeUndefined()
    await eventually(() => pool.counts().open === 0)
    const next = await granted(ask(pool))
    expect(next.connectionId).not.toBe(conn.connectionId)
    expect(await one(next, "SELECT 1")).toBe("1")
  })

  it("the backend's breaker: a backend that refuses opens it, and the pool stops dialing", async () => {
    const breaker = makeCircuitBreaker({ failureThreshold: 1, cooldown: 30 })
    const { pool } = makePool(loginOf("plain", USERS.plain), { port: await closedPort(), breaker })
    const first = await refused(ask(pool))
    expect(first.reason).toBe("CONNECT_FAILED")
    const second = await refused(ask(pool))
    expect(second.reason).toBe("UNAVAILABLE")
    expect(second.message).toMatch(/circuit breaker is open/)
    expect(second.retryAfter).toBeGreaterThan(0)
    expect(pool.counts()).toEqual({ open: 0, idle: 0, waiting: 0 })
  })

  it("a user with MAX_USER_CONNECTIONS 2 behind a pool of size 2: 40 clients served, never refused (1226)", async () => {
    const { pool } = makePool(loginOf("capped", USERS.capped), { settings: { size: 2 } })
    const served = await Promise.all(
      Array.from({ length: 40 }, async () => {
        const conn = await granted(ask(pool))
        const seen = await one(conn, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'capped'")
        giveBack(pool, conn)
        return Number(seen)
      })
    )
    expect(served).toHaveLength(40)
    expect(Math.max(...served)).toBeLessThanOrEqual(2)
    expect(pool.tally.openFailures).toBe(0)
    expect(pool.tally.transactions).toBe(40)
    // One more than the server allows (a second pool of that user): the server's own 1226, carried.
    const extra = await refused(ask(makePool(loginOf("capped", USERS.capped), { settings: { size: 1 } }).pool))
    expect(extra.reason).toBe("UNAVAILABLE")
    const e = errOf(extra)
    expect(e.code).toBe(1226)
    expect(e.message).toMatch(/max_user_connections/)
  })

  it("closed by its owner: idle connections close now, a busy one when given back", async () => {
    const { pool, pools } = makePool(loginOf("plain", USERS.plain), { settings: { size: 2 } })
    const [busy, idle] = await Promise.all([granted(ask(pool)), granted(ask(pool))])
    giveBack(pool, idle!)
    pools.close()
    expect(pool.counts()).toEqual({ open: 1, idle: 0, waiting: 0 })
    expect(await one(busy!, "SELECT 1")).toBe("1")
    giveBack(pool, busy!)
    expect(pool.counts().open).toBe(0)
  })
})

describe("MysqlPools: one pool per what a server connection shares with its client", () => {
  it("keys by user, database, session flags, character set and TLS; a new stage1 is taken for the next logins", () => {
    const backendPool = makeBackendPool({ sweepMs: 0 })
    const pools = mysqlPools(backendPool, "keys", {
      connectTimeoutMs: 1000,
      loginTimeoutMs: 1000,
      upstreamTls: undefined
    })
    opened.push(pools)
    const route: Route = { resourceId: "appdb", endpoint: { host: "127.0.0.1", port: 3999 }, metadata: {} }
    const at = endpoint(3999)
    const base = loginOf("plain", USERS.plain)
    const get = (login: ProxyLogin, r: Route = route) => pools.get(at, r, login, settings())
    const first = get(base)
    expect(get({ ...base, flags: (base.flags | Capability.IGNORE_SIGPIPE) >>> 0 })).toBe(first)
    expect(get({ ...base, stage1: nativeStage1("changed") })).toBe(first)
    expect(first.login.stage1).toEqual(nativeStage1("changed"))
    for (const other of [
      { ...base, user: "counted" },
      { ...base, database: "other" },
      { ...base, characterSet: 8 },
      { ...base, flags: (base.flags & ~Capability.DEPRECATE_EOF) >>> 0 },
      { ...base, flags: (base.flags | Capability.MULTI_STATEMENTS) >>> 0 },
      { ...base, mariadbCapabilities: MariaDbCapability.EXTENDED_METADATA }
    ]) {
      expect(get(other)).not.toBe(first)
    }
    expect(get(base, { ...route, metadata: { tls: true } })).not.toBe(first)
    const row = backendPool.details().find((d) => d.detail.user === "plain" && d.detail.database === "appdb")!
    expect(row).toMatchObject({ owner: "keys", backend: "127.0.0.1:3999" })
    expect(row.detail).toMatchObject({ mode: "transaction", size: 2, open: 0, idle: 0, waiting: 0, transactions: 0 })
  })

  it("its pools' series in /metrics, as polyproxy_mysql_pool_…", async () => {
    const { pool, owner } = makePool(loginOf("plain", USERS.plain), { settings: { size: 1 } })
    const conn = await granted(ask(pool))
    giveBack(pool, conn)
    const lines = prometheusText()
      .split("\n")
      .filter((l) => l.startsWith("polyproxy_mysql_pool_") && l.includes(`listener="${owner}"`))
    const labels = `listener="${owner}",backend="127.0.0.1:${db.port}",database="appdb",user="plain"`
    expect(lines).toContain(`polyproxy_mysql_pool_transactions_total{${labels}} 1`)
    expect(lines).toContain(`polyproxy_mysql_pool_server_connections{${labels},state="idle"} 1`)
    expect(lines).toContain(`polyproxy_mysql_pool_clients_waiting{${labels}} 0`)
  })
})

describe("MysqlServerConn: servers that do what MariaDB does not", () => {
  let fake: SilentServer | undefined
  afterEach(() => fake?.close())

  const nonce = (fill: number) => Buffer.alloc(20, fill)
  const greeting = (extra: { plugin?: string } = {}) =>
    encodePacket(
      encodeHandshakeV10({
        serverVersion: "8.4.0-fake",
        connectionId: 4242,
        authPluginData: nonce(0x41),
        capabilities:
          (Capability.LONG_PASSWORD |
            Capability.FOUND_ROWS |
            Capability.SESSION_TRACK |
            Capability.PROTOCOL_41 |
            Capability.SECURE_CONNECTION |
            Capability.PLUGIN_AUTH |
            Capability.CONNECT_WITH_DB |
            Capability.TRANSACTIONS |
            Capability.MULTI_RESULTS |
            Capability.DEPRECATE_EOF) >>>
          0,
        characterSet: UTF8MB4_GENERAL_CI,
        statusFlags: Status.AUTOCOMMIT,
        authPlugin: extra.plugin ?? AuthPlugin.NATIVE
      }),
      0
    )

  /** Every payload the fake server got, as "command-byte rest". */
  let got: Array<string> = []

  /** A server that greets, then answers the proxy's packets with `answers` in turn (each gets the packet). */
  const scripted = (answers: Array<(payload: Buffer, seq: number) => Buffer>) =>
    silentServer((c) => {
      got = []
      c.write(greeting())
      let buf = Buffer.alloc(0)
      c.on("data", (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk])
        for (;;) {
          const d = decodePacket(buf)
          if (d._tag !== "Frame") return
          buf = buf.subarray(d.size)
          got.push(`${d.value.payload[0]} ${d.value.payload.subarray(1).toString()}`)
          const answer = answers.shift()
          if (answer !== undefined) c.write(answer(d.value.payload, d.value.sequenceId))
        }
      })
    })

  it("an AuthSwitchRequest to mysql_native_password: answered from stage1 and the new nonce", async () => {
    const stage1 = nativeStage1("secret")
    let first: Buffer | undefined
    let second: Buffer | undefined
    fake = await scripted([
      (p, seq) => {
        const r = parseHandshakeResponse41(p)
        first = r._tag === "HandshakeResponse41" ? r.authResponse : undefined
        return encodePacket(
          encodeAuthSwitchRequest(AuthPlugin.NATIVE, Buffer.concat([nonce(0x42), Buffer.from([0])])),
          seq + 1
        )
      },
      (p, seq) => {
        second = p
        return encodePacket(encodeOkPacket({ statusFlags: Status.AUTOCOMMIT }), seq + 1)
      }
    ])
    const { pool } = makePool(loginOf("u", "secret"), { port: fake.port })
    const conn = await granted(ask(pool))
    expect(first).toEqual(nativeAnswer(stage1, nonce(0x41)))
    expect(second).toEqual(nativeAnswer(stage1, nonce(0x42)))
    expect(conn.connectionId).toBe(4242)
    expect(conn.mariadb).toBe(false)
  })

  it("an AuthSwitchRequest to another plugin: refused, in words that say why", async () => {
    fake = await scripted([
      (_p, seq) => encodePacket(encodeAuthSwitchRequest(AuthPlugin.CACHING_SHA2, nonce(0x43)), seq + 1)
    ])
    const error = await refused(ask(makePool(loginOf("u", "secret"), { port: fake.port }).pool))
    expect(error.reason).toBe("CONNECT_FAILED")
    expect(error.message).toMatch(/asks for caching_sha2_password/)
    expect(error.clientMessage).toMatch(/does not use mysql_native_password/)
  })

  it("an ERR instead of a greeting (1040): carried with a SQLSTATE added, as clients read it after a handshake", async () => {
    fake = await silentServer((c) => {
      const err = Buffer.concat([Buffer.from([0xff, 0x10, 0x04]), Buffer.from("Too many connections")])
      c.end(encodePacket(err, 0))
    })
    const error = await refused(ask(makePool(loginOf("u", "secret"), { port: fake.port }).pool))
    expect(error.reason).toBe("UNAVAILABLE")
    expect(error.cause).toEqual(encodeErrPacket({ code: 1040, sqlState: "08004", message: "Too many connections" }))
  })

  it("MySQL's reset: COM_RESET_CONNECTION, COM_INIT_DB and the login's collation again, pipelined; COM_QUIT at close", async () => {
    const ok = (_p: Buffer, seq: number) => encodePacket(encodeOkPacket({ statusFlags: Status.AUTOCOMMIT }), seq + 1)
    fake = await scripted(Array.from({ length: 7 }, () => ok))
    const { pool, pools } = makePool(loginOf("u", "secret"), {
      port: fake.port,
      settings: { mode: "session", size: 1 }
    })
    const conn = await granted(ask(pool))
    const next = ask(pool)
    giveBack(pool, conn)
    expect(await granted(next)).toBe(conn)
    giveBack(pool, conn)
    // Idle once its reset is answered.
    await eventually(() => pool.counts().idle === 1)
    pools.close()
    await eventually(() => fake!.fins() === 1)
    const reset = [
      "31 ",
      "2 appdb",
      "3 SET character_set_client = 45, character_set_results = 45, collation_connection = 45"
    ]
    expect(got.slice(1)).toEqual([...reset, ...reset, "1 "])
  })

  it("a server that never finishes the login: refused at the login deadline, nothing left open", async () => {
    fake = await silentServer()
    const { pool } = makePool(loginOf("u", "secret"), { port: fake.port, loginTimeoutMs: 200 })
    const error = await refused(ask(pool))
    expect(error.message).toMatch(/did not complete the login within 200 ms/)
    expect(pool.counts()).toEqual({ open: 0, idle: 0, waiting: 0 })
    await eventually(() => fake!.fins() === 1)
  })
})
