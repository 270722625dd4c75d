// PgPool and its ServerConns against real PostgreSQL 15: logins by SCRAM pass-through (keys derived from the role's
// secret, as a client's proof would give them), md5 (the secret alone), trust, over TLS when the route asks; the
// server's own refusal carried whole (28P01, 3D000); the pool's cap counted by the server itself (pg_stat_activity),
// its FIFO queue and its bounds, idle timeout, lifetime, minIdle, transactions never reused, a server connection
// terminated while idle, the backend's breaker, the session-mode reset. Time-based rules run through `sweep` with a
// clock moved by hand: no sleeping, no timed assertions.
import pg from "pg"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import {
  decodeSaslInitialResponse,
  encodeAuthenticationSasl,
  encodeAuthenticationSaslContinue,
  encodeAuthenticationSaslFinal
} from "../../../src/codec/pg/Authentication.ts"
import { decodeBackendMessage, decodeErrorResponse } from "../../../src/codec/pg/index.ts"
import { md5Secret } from "../../../src/codec/pg/md5.ts"
import { parseScramSecret, type ScramKeys, scramKeysFromPassword } from "../../../src/codec/pg/scram.ts"
import type { VettedEndpoint } from "../../../src/domain/Endpoint.ts"
import type { Route } from "../../../src/domain/Route.ts"
import { type PgPool, PoolRefusal } from "../../../src/listeners/postgres/pool/pgPool.ts"
import { type PgPools, pgPools } from "../../../src/listeners/postgres/pool/pgPools.ts"
import type { ServerConn, ServerLogin } from "../../../src/listeners/postgres/pool/serverConn.ts"
import { encodeQuery, ServerError } from "../../../src/listeners/postgres/pool/serverMessages.ts"
import { type PoolSettings, poolDefaults } from "../../../src/listeners/postgres/pool/settings.ts"
import { type BreakerHooks, makeBackendPool } from "../../../src/services/BackendPool.ts"
import { makeCircuitBreaker } from "../../../src/services/CircuitBreaker.ts"
import { type PostgresServer, startPostgres } from "../../support/backends/index.ts"
import { closedPort, type SilentServer, silentServer } from "../../support/net.ts"
import { poolWaiters } from "../../support/poolWaiters.ts"
import { eventually } from "../../support/proxy.ts"

let db: PostgresServer
let admin: pg.Client
let scramKeys: ScramKeys
let wrongKeys: ScramKeys
let md5: string
const opened: Array<PgPools> = []
const { ask, granted, refused, giveBack, cleanup } = poolWaiters<ServerConn>()
let tags = 0

const endpoint = (port: number): VettedEndpoint => ({ host: "127.0.0.1", port, ip: "127.0.0.1", family: 4 })

beforeAll(async () => {
  db = await startPostgres({
    tls: true,
    databases: ["appdb"],
    hba: [
      "host all trust_role 127.0.0.1/32 trust",
      "host all md5_role 127.0.0.1/32 md5",
      "host all clear_role 127.0.0.1/32 password"
    ]
  })
  admin = new pg.Client({
    host: "127.0.0.1",
    port: db.port,
    user: "postgres",
    password: db.password,
    database: "appdb"
  })
  await admin.connect()
  for (const sql of [
    "CREATE ROLE scram_role LOGIN PASSWORD 'scram-pw'",
    "CREATE ROLE trust_role LOGIN",
    "CREATE ROLE clear_role LOGIN PASSWORD 'clear-pw'",
    "SET password_encryption = 'md5'",
    "CREATE ROLE md5_role LOGIN PASSWORD 'md5-pw'",
    "RESET password_encryption"
  ]) {
    await admin.query(sql)
  }
  const secretOf = async (role: string): Promise<string> =>
    (await admin.query("SELECT rolpassword FROM pg_authid WHERE rolname = $1", [role])).rows[0].rolpassword
  // What the proxy recovers from a client's SCRAM proof, computed here from the password and the server's own salt.
  const secret = parseScramSecret(await secretOf("scram_role"))!
  scramKeys = scramKeysFromPassword("scram-pw", secret.salt, secret.iterations)
  wrongKeys = scramKeysFromPassword("not-the-password", secret.salt, secret.iterations)
  md5 = await secretOf("md5_role")
})

afterEach(() => {
  cleanup()
  for (const pools of opened.splice(0)) pools.close()
})

afterAll(async () => {
  await admin?.end()
  await db?.stop()
})

const settings = (extra: Partial<PoolSettings> = {}): PoolSettings => ({
  ...poolDefaults,
  mode: "transaction",
  size: 2,
  ...extra
})

interface Made {
  readonly pool: PgPool
  readonly pools: PgPools
  /** The application_name of this pool's connections: pg_stat_activity counts them by it. */
  readonly tag: string
}

const makePool = (
  user: string,
  o: {
    readonly settings?: Partial<PoolSettings>
    readonly login?: Partial<ServerLogin>
    readonly metadata?: Record<string, unknown>
    readonly port?: number
    readonly breaker?: BreakerHooks
    readonly loginTimeoutMs?: number
  } = {}
): Made => {
  const tag = `pool-spec-${++tags}`
  const port = o.port ?? db.port
  const pools = pgPools(makeBackendPool({ sweepMs: 0, breaker: o.breaker }), tag, {
    connectTimeoutMs: 2_000,
    loginTimeoutMs: o.loginTimeoutMs ?? 5_000,
    upstreamTls: undefined
  })
  opened.push(pools)
  const route: Route = { resourceId: "appdb", endpoint: { host: "127.0.0.1", port }, metadata: o.metadata ?? {} }
  const login: ServerLogin = {
    user,
    database: "appdb",
    params: new Map([["application_name", tag]]),
    ...o.login
  }
  return { pool: pools.get(endpoint(port), route, login, settings(o.settings)), pools, tag }
}

/** Runs `sql` on a held connection as a session would (its own data listener, status kept): rows as text. */
const run = (conn: ServerConn, sql: string): Promise<{ rows: Array<Array<string | null>>; error?: string }> =>
  new Promise((resolve, reject) => {
    const s = conn.socket
    let buf = Buffer.alloc(0)
    const rows: Array<Array<string | null>> = []
    let error: string | undefined
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk])
      for (;;) {
        const d = decodeBackendMessage(buf)
        if (d._tag === "Invalid") return reject(new Error(d.reason))
        if (d._tag === "Need") return
        buf = buf.subarray(d.size)
        const { type, body } = d.value
        if (type === "D") rows.push(dataRow(body))
        if (type === "E") error = errorCode(body)
        if (type === "Z") {
          conn.status = String.fromCharCode(body[0]!) as "I" | "T" | "E"
          s.off("data", onData)
          s.pause()
          resolve(error === undefined ? { rows } : { rows, error })
          return
        }
      }
    }
    s.on("data", onData)
    s.resume()
    s.write(encodeQuery(sql))
  })

const dataRow = (body: Buffer): Array<string | null> => {
  const out: Array<string | null> = []
  let at = 2
  for (let i = 0; i < body.readInt16BE(0); i++) {
    const n = body.readInt32BE(at)
    at += 4
    out.push(n < 0 ? null : body.toString("utf8", at, at + n))
    if (n > 0) at += n
  }
  return out
}

const errorCode = (body: Buffer): string => {
  const whole = Buffer.concat([Buffer.from([0x45]), Buffer.alloc(4), body])
  whole.writeInt32BE(4 + body.length, 1)
  const e = decodeErrorResponse(whole)
  return e._tag === "Frame" ? (e.value.fields.get("C") ?? "") : "?"
}

/** Server connections of one pool, as the server counts them. */
const serverCount = async (tag: string): Promise<number> =>
  (await admin.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1", [tag])).rows[0].n

const whoAmI = async (conn: ServerConn) => (await run(conn, "SELECT current_user, pg_backend_pid()")).rows[0]!

describe("ServerConn: the proxy's login to the server", () => {
  it("SCRAM-SHA-256 pass-through: the role's keys log in, and the connection reports its key and parameters", async () => {
    const { pool, tag } = makePool("scram_role", { login: { keys: scramKeys } })
    const conn = await granted(ask(pool))
    expect(await whoAmI(conn)).toEqual(["scram_role", String(conn.processId)])
    expect(conn.secretKey.length).toBe(4)
    expect(conn.parameters.get("application_name")).toBe(tag)
    expect(conn.parameters.get("session_authorization")).toBe("scram_role")
    expect(conn.parameters.get("server_version")).toMatch(/^\d+/)
    expect(conn.status).toBe("I")
    const ssl = await admin.query("SELECT ssl FROM pg_stat_ssl WHERE pid = $1", [conn.processId])
    expect(ssl.rows[0].ssl).toBe(false)
  })

  it("md5: the role's md5 secret answers the server's challenge", async () => {
    expect(md5).toBe(md5Secret("md5_role", "md5-pw"))
    const { pool } = makePool("md5_role", { login: { secret: md5 } })
    const conn = await granted(ask(pool))
    expect((await whoAmI(conn))[0]).toBe("md5_role")
  })

  it("trust: no keys needed", async () => {
    const { pool } = makePool("trust_role")
    const conn = await granted(ask(pool))
    expect((await whoAmI(conn))[0]).toBe("trust_role")
  })

  it("TLS to the server after an SSLRequest when the route's metadata.tls asks, the certificate checked", async () => {
    const { pool } = makePool("scram_role", {
      login: { keys: scramKeys },
      metadata: { tls: { ca: db.certs!.ca.cert } }
    })
    const conn = await granted(ask(pool))
    expect((await whoAmI(conn))[0]).toBe("scram_role")
    const ssl = await admin.query("SELECT ssl FROM pg_stat_ssl WHERE pid = $1", [conn.processId])
    expect(ssl.rows[0].ssl).toBe(true)
    // A CA that did not sign the server's certificate: refused before a byte of the login.
    const other = makePool("scram_role", {
      login: { keys: scramKeys },
      metadata: { tls: { ca: db.certs!.rogueCa.cert } }
    })
    const error = await refused(ask(other.pool))
    expect(error.reason).toBe("CONNECT_FAILED")
    expect(await serverCount(other.tag)).toBe(0)
  })

  it("wrong keys: the server's 28P01 reaches the waiter whole, in the server's words", async () => {
    const { pool } = makePool("scram_role", { login: { keys: wrongKeys } })
    const error = await refused(ask(pool))
    expect(error.reason).toBe("FORBIDDEN")
    expect(error.source).toBe("backend")
    expect(error.cause).toBeInstanceOf(ServerError)
    const server = error.cause as ServerError
    expect(server.sqlstate).toBe("28P01")
    expect(server.message).toBe('password authentication failed for user "scram_role"')
    expect(error.clientMessage).toBe(server.message)
    const e = decodeErrorResponse(server.encode())
    expect(e._tag === "Frame" && e.value.fields.get("C")).toBe("28P01")
    expect(pool.counts()).toEqual({ open: 0, idle: 0, waiting: 0 })
  })

  it("a database the server does not have: its 3D000, carried", async () => {
    const pools = pgPools(makeBackendPool({ sweepMs: 0 }), "spec-3d000", {
      connectTimeoutMs: 2_000,
      loginTimeoutMs: 5_000,
      upstreamTls: undefined
    })
    opened.push(pools)
    const route: Route = { resourceId: "nosuchdb", endpoint: { host: "127.0.0.1", port: db.port }, metadata: {} }
    const login: ServerLogin = { user: "trust_role", database: "nosuchdb", params: new Map() }
    const error = await refused(ask(pools.get(endpoint(db.port), route, login, settings())))
    expect(error.reason).toBe("NOT_FOUND")
    expect((error.cause as ServerError).sqlstate).toBe("3D000")
  })

  it("never a password: no SCRAM keys yet, or a server asking for a clear-text one, is refused by the proxy", async () => {
    const noKeys = await refused(ask(makePool("scram_role").pool))
    expect(noKeys.reason).toBe("CONNECT_FAILED")
    expect(noKeys.message).toMatch(/no client of this role has logged in with SCRAM/)
    const clear = await refused(ask(makePool("clear_role", { login: { keys: scramKeys, secret: md5 } }).pool))
    expect(clear.message).toMatch(/clear-text password/)
  })
})

describe("PgPool", () => {
  it("opens at most `size` server connections and hands them to waiters in arrival order", async () => {
    const { pool, tag } = makePool("scram_role", { login: { keys: scramKeys }, settings: { size: 3 } })
    const order: Array<number> = []
    const asks = Array.from({ length: 8 }, (_, i) => ask(pool, order, i))
    const first = await Promise.all(asks.slice(0, 3).map(granted))
    expect(pool.counts()).toEqual({ open: 3, idle: 0, waiting: 5 })
    expect(await serverCount(tag)).toBe(3)
    expect(asks.slice(3).some((a) => a.settled())).toBe(false)
    const pids = new Set(first.map((c) => c.processId))
    // Each connection given back goes to the longest waiter at once.
    for (const conn of first) giveBack(pool, conn)
    const second = await Promise.all(asks.slice(3, 6).map(granted))
    giveBack(pool, second[0]!)
    giveBack(pool, second[1]!)
    const third = await Promise.all(asks.slice(6).map(granted))
    expect(order).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
    for (const conn of [...second, ...third]) expect(pids.has(conn.processId)).toBe(true)
    for (const conn of [second[2]!, ...third]) {
      expect((await whoAmI(conn))[0]).toBe("scram_role")
      giveBack(pool, conn)
    }
    expect(pool.counts()).toEqual({ open: 3, idle: 3, waiting: 0 })
    expect(await serverCount(tag)).toBe(3)
  })

  it("maxWaiting: one more waiter is refused at once with 53300; a cancelled waiter leaves the queue", async () => {
    const { pool } = makePool("trust_role", { settings: { size: 1, maxWaiting: 2 } })
    const conn = await granted(ask(pool))
    const second = ask(pool)
    const third = ask(pool)
    const error = await refused(ask(pool))
    expect(error.reason).toBe("UNAVAILABLE")
    expect(error.clientMessage).toBe("sorry, too many clients already")
    expect(error.cause).toBeInstanceOf(PoolRefusal)
    expect((error.cause as PoolRefusal).sqlstate).toBe("53300")
    second.cancel()
    expect(pool.counts().waiting).toBe(1)
    const fourth = ask(pool)
    giveBack(pool, conn)
    expect((await granted(third)).processId).toBe(conn.processId)
    expect(second.settled()).toBe(false)
    expect(fourth.settled()).toBe(false)
  })

  it("maxWait: the sweep fails waiters queued longer, with 57P03; the rest keep waiting", async () => {
    const { pool } = makePool("trust_role", { settings: { size: 1, maxWait: 2 } })
    await granted(ask(pool))
    const early = ask(pool)
    const queuedAt = performance.now()
    pool.sweep(queuedAt + 1_000)
    expect(early.settled()).toBe(false)
    pool.sweep(queuedAt + 2_500)
    const error = await refused(early)
    expect(error.reason).toBe("UNAVAILABLE")
    expect((error.cause as PoolRefusal).kind).toBe("wait-timeout")
    expect((error.cause as PoolRefusal).sqlstate).toBe("57P03")
    expect(error.clientMessage).toMatch(/query_wait_timeout/)
    expect(pool.counts().waiting).toBe(0)
  })

  it("idleTimeout closes idle connections down to minIdle", async () => {
    const { pool, tag } = makePool("trust_role", { settings: { size: 2, minIdle: 1, idleTimeout: 1 } })
    const conns = await Promise.all([granted(ask(pool)), granted(ask(pool))])
    for (const conn of conns) giveBack(pool, conn)
    const now = performance.now()
    pool.sweep(now)
    expect(pool.counts()).toEqual({ open: 2, idle: 2, waiting: 0 })
    pool.sweep(now + 1_500)
    expect(pool.counts()).toEqual({ open: 1, idle: 1, waiting: 0 })
    await eventually(async () => (await serverCount(tag)) === 1)
  })

  it("lifetime: an idle connection past it is closed and minIdle opens a new one; 0 closes each after one use", async () => {
    const { pool, tag } = makePool("trust_role", { settings: { size: 1, minIdle: 1, lifetime: 1, idleTimeout: 0 } })
    const first = await granted(ask(pool))
    giveBack(pool, first)
    pool.sweep(performance.now() + 1_500)
    await eventually(() => pool.counts().idle === 1)
    const second = await granted(ask(pool))
    expect(second.processId).not.toBe(first.processId)
    await eventually(async () => (await serverCount(tag)) === 1)

    const once = makePool("trust_role", { settings: { lifetime: 0 } })
    giveBack(once.pool, await granted(ask(once.pool)))
    expect(once.pool.counts()).toEqual({ open: 0, idle: 0, waiting: 0 })
    await eventually(async () => (await serverCount(once.tag)) === 0)
  })

  it("minIdle opens connections only once a login has worked", async () => {
    const { pool, tag } = makePool("scram_role", { login: { keys: scramKeys }, settings: { size: 3, minIdle: 2 } })
    pool.sweep(performance.now())
    expect(pool.counts().open).toBe(0)
    giveBack(pool, await granted(ask(pool)))
    await eventually(() => pool.counts().idle === 2)
    expect(pool.counts().open).toBe(2)
    expect(await serverCount(tag)).toBe(2)
  })

  it("a connection given back inside a transaction is closed, never reused", async () => {
    const { pool, tag } = makePool("trust_role", { settings: { size: 1 } })
    const conn = await granted(ask(pool))
    await run(conn, "BEGIN")
    expect(conn.status).toBe("T")
    giveBack(pool, conn)
    expect(pool.counts()).toEqual({ open: 0, idle: 0, waiting: 0 })
    await eventually(async () => (await serverCount(tag)) === 0)
    const next = await granted(ask(pool))
    expect(next.processId).not.toBe(conn.processId)
    expect((await run(next, "SELECT 1")).rows).toEqual([["1"]])
  })

  it("a server connection terminated while idle is dropped, and the next client gets a new one", async () => {
    const { pool } = makePool("scram_role", { login: { keys: scramKeys }, settings: { size: 1 } })
    const conn = await granted(ask(pool))
    giveBack(pool, conn)
    expect(pool.counts().idle).toBe(1)
    await admin.query("SELECT pg_terminate_backend($1)", [conn.processId])
    await eventually(() => pool.counts().open === 0)
    const next = await granted(ask(pool))
    expect(next.processId).not.toBe(conn.processId)
    expect((await whoAmI(next))[0]).toBe("scram_role")
  })

  it("session mode: the reset query runs before the connection serves another client", async () => {
    const { pool } = makePool("trust_role", { settings: { mode: "session", size: 1, resetQuery: "DISCARD ALL" } })
    const conn = await granted(ask(pool))
    await run(conn, "SET search_path = nowhere")
    const next = ask(pool)
    giveBack(pool, conn)
    const again = await granted(next)
    expect(again.processId).toBe(conn.processId)
    expect((await run(again, "SHOW search_path")).rows).toEqual([['"$user", public']])
  })

  it("the backend's breaker: a backend that refuses opens it, and the pool stops dialing", async () => {
    const breaker = makeCircuitBreaker({ failureThreshold: 1, cooldown: 30 })
    const { pool } = makePool("trust_role", { port: await closedPort(), breaker })
    const first = await refused(ask(pool))
    expect(first.reason).toBe("CONNECT_FAILED")
    const second = await refused(ask(pool))
    expect(second.reason).toBe("UNAVAILABLE")
    expect(second.message).toMatch(/circuit breaker is open/)
    expect(second.retryAfter).toBeGreaterThan(0)
    expect(pool.counts()).toEqual({ open: 0, idle: 0, waiting: 0 })
  })

  it("closed by its owner: idle connections close now, a busy one when given back", async () => {
    const { pool, pools, tag } = makePool("trust_role", { settings: { size: 2 } })
    const [busy, idle] = await Promise.all([granted(ask(pool)), granted(ask(pool))])
    giveBack(pool, idle!)
    pools.close()
    expect(pool.counts()).toEqual({ open: 1, idle: 0, waiting: 0 })
    expect((await run(busy!, "SELECT 1")).rows).toEqual([["1"]])
    giveBack(pool, busy!)
    expect(pool.counts().open).toBe(0)
    await eventually(async () => (await serverCount(tag)) === 0)
  })
})

describe("ServerConn: servers that misbehave", () => {
  let fake: SilentServer | undefined
  afterEach(() => fake?.close())

  it("a server that never finishes the login: refused at the login deadline, nothing left open", async () => {
    fake = await silentServer()
    const { pool } = makePool("trust_role", { port: fake.port, loginTimeoutMs: 200 })
    const error = await refused(ask(pool))
    expect(error.reason).toBe("CONNECT_FAILED")
    expect(error.message).toMatch(/did not complete the login within 200 ms/)
    expect(pool.counts()).toEqual({ open: 0, idle: 0, waiting: 0 })
    // The proxy closed its side.
    await eventually(() => fake!.fins() === 1)
  })

  it("an impostor that runs SCRAM without the role's ServerKey: its signature is refused, no login", async () => {
    let step = 0
    fake = await silentServer((c) => {
      c.on("data", (chunk: Buffer) => {
        step++
        if (step === 1) c.write(encodeAuthenticationSasl(["SCRAM-SHA-256"]))
        else if (step === 2) {
          const first = decodeSaslInitialResponse(chunk.subarray(5))
          const nonce = first._tag === "Frame" ? /r=([^,]+)/.exec(first.value.data!.toString())![1] : ""
          const salt = Buffer.alloc(16, 1).toString("base64")
          c.write(encodeAuthenticationSaslContinue(Buffer.from(`r=${nonce}impostor,s=${salt},i=4096`)))
        } else c.write(encodeAuthenticationSaslFinal(Buffer.from(`v=${Buffer.alloc(32).toString("base64")}`)))
      })
    })
    const { pool } = makePool("scram_role", { port: fake.port, login: { keys: scramKeys } })
    const error = await refused(ask(pool))
    expect(error.reason).toBe("CONNECT_FAILED")
    expect(error.message).toMatch(/SCRAM signature is wrong/)
    expect(step).toBe(3)
  })

  it("bytes behind the server's 'S' to an SSLRequest (CVE-2021-23222): refused before any TLS", async () => {
    fake = await silentServer((c) => {
      c.once("data", () => c.write(Buffer.from("Sinjected")))
    })
    const { pool } = makePool("trust_role", { port: fake.port, metadata: { tls: { ca: db.certs!.ca.cert } } })
    const error = await refused(ask(pool))
    expect(error.reason).toBe("CONNECT_FAILED")
    expect(error.message).toMatch(/unencrypted bytes after the SSL response/)
  })
})
