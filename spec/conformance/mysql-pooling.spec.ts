// Real mysql2 clients, the `mariadb` CLI and mariadb-slap → polyproxy's mysql listener checking logins itself (`auth`)
// → a real MariaDB 10.11, whose server connections the proxy pools per route (`metadata.pool`, README "MySQL
// transaction pooling"). The pooled user `capped` may hold at most 12 connections on the server (MAX_USER_CONNECTIONS),
// so a pool that opened more than its size, or a client that kept more than its share, makes the server refuse.
import { execFile } from "node:child_process"
import { randomBytes } from "node:crypto"
import { Readable } from "node:stream"
import { promisify } from "node:util"
import mysql from "mysql2/promise"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  AuthPlugin,
  Capability,
  Command,
  decodeAuthSwitchRequest,
  decodeHandshakeV10,
  decodeOkPacket,
  encodeHandshakeResponse41,
  encodePacket,
  frame,
  need,
  UTF8MB4_GENERAL_CI
} from "../../src/codec/mysql/index.ts"
import { ResponseEnd } from "../../src/codec/mysql/ResponseEnd.ts"
import { type MariaDbServer, startMariaDb } from "../support/backends/index.ts"
import { ended, errorOf, loginFlags, type MysqlError, nativeToken, RawClient } from "../support/mysql.ts"
import { eventually, startTestProxy, type TestProxy } from "../support/proxy.ts"

const run = promisify(execFile)

const SIZE = 10
const CAP = 12
const password = randomBytes(12).toString("hex")
const poolerPassword = randomBytes(12).toString("hex")
const monitorPassword = randomBytes(12).toString("hex")

let db: MariaDbServer
let proxy: TestProxy
/** A direct login with PROCESS: sees every session on the server. */
let monitor: mysql.Connection

const databases = ["appdb", "otherdb", "onedb", "waitdb", "sessdb"]

beforeAll(async () => {
  db = await startMariaDb({
    databases,
    setup: [
      `CREATE USER 'capped'@'%' IDENTIFIED BY '${password}' WITH MAX_USER_CONNECTIONS ${CAP}`,
      ...databases.map((d) => `GRANT ALL PRIVILEGES ON ${d}.* TO 'capped'@'%'`),
      `CREATE USER 'pooler'@'%' IDENTIFIED BY '${poolerPassword}'`,
      "GRANT SELECT ON mysql.* TO 'pooler'@'%'",
      `CREATE USER 'monitor'@'%' IDENTIFIED BY '${monitorPassword}'`,
      "GRANT PROCESS ON *.* TO 'monitor'@'%'"
    ]
  })
  const endpoint = `127.0.0.1:${db.port}`
  const pooled = (pool: Record<string, unknown>) => ({ endpoint, metadata: { pool: { mode: "transaction", ...pool } } })
  proxy = await startTestProxy({
    listeners: {
      mysql: {
        host: "127.0.0.1",
        port: 0,
        auth: { route: "users", user: "pooler", password: poolerPassword }
      }
    },
    routes: {
      users: { endpoint },
      // Idle server connections close after a second: mysql2's and libmariadb's clients negotiate different
      // sessions (collation, flags), so each has a pool of its own, and both must fit under the user's cap in turn.
      appdb: pooled({ size: SIZE, idleTimeout: 1 }),
      otherdb: pooled({ size: 3 }),
      // One server connection: whoever holds it stops everyone else.
      onedb: pooled({ size: 1 }),
      // One server connection, one client waiting at most, for one second at most.
      waitdb: pooled({ size: 1, maxWaiting: 1, maxWait: 1 }),
      // No pool block: session mode, one server connection per client for its life.
      sessdb: { endpoint }
    },
    ssrf: { allow: ["127.0.0.0/8"] }
  })
  monitor = await mysql.createConnection({
    host: "127.0.0.1",
    port: db.port,
    user: "monitor",
    password: monitorPassword
  })
  const admin = await mysql.createConnection({ ...viaDirect(), multipleStatements: true })
  await admin.query(
    [
      "CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, v INT)",
      "CREATE PROCEDURE two() BEGIN SELECT 1 AS a; SELECT 2 AS b; END"
    ].join(";")
  )
  await admin.end()
}, 120_000)

afterAll(async () => {
  await monitor?.end()
  await proxy?.stop()
  await db?.stop()
})

/** The server's user `app`, with no limit on its connections; `capped` below. */
const viaDirect = (extra: mysql.ConnectionOptions = {}): mysql.ConnectionOptions => ({
  host: "127.0.0.1",
  port: db.port,
  user: db.user,
  password: db.password,
  database: "appdb",
  ...extra
})

const capped = { user: "capped", password }

const viaProxy = (extra: mysql.ConnectionOptions = {}): mysql.ConnectionOptions =>
  viaDirect({ port: proxy.port("mysql"), ...extra })

const connect = async (extra: mysql.ConnectionOptions = {}): Promise<mysql.Connection> => {
  const c = await mysql.createConnection(viaProxy(extra))
  c.on("error", () => {})
  return c
}

const one = async <A>(c: mysql.Connection, sql: string): Promise<A> => {
  const [rows] = await c.query<mysql.RowDataPacket[]>(sql)
  return rows[0]!.v as A
}

const backendId = (c: mysql.Connection): Promise<number> => one<number>(c, "SELECT CONNECTION_ID() AS v")

/** The server's sessions of `user` in `database`. */
const serverSessions = async (user: string, database: string): Promise<number> => {
  const [rows] = await monitor.query<mysql.RowDataPacket[]>(
    "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = ? AND DB = ?",
    [user, database]
  )
  return Number(rows[0]!.n)
}

/** A hand-made client logged in to `database` through the proxy with mysql_native_password (no auth switch). */
const rawLogin = async (database: string) => {
  const client = await RawClient.connect(proxy.port("mysql"))
  const greeting = (await client.read(decodeHandshakeV10)).message
  const response = encodeHandshakeResponse41({
    capabilities: (loginFlags | Capability.DEPRECATE_EOF) >>> 0,
    maxPacketSize: 1 << 24,
    characterSet: UTF8MB4_GENERAL_CI,
    user: db.user,
    authResponse: nativeToken(db.password, greeting.authPluginData.subarray(0, 20)),
    database,
    authPlugin: AuthPlugin.NATIVE
  })
  client.socket.write(encodePacket(response, 1))
  await client.read(decodeOkPacket)
  return { client, greeting }
}

/** A decoder of the whole response to one `command` (all its packets, headers included), cut where ResponseEnd says. */
const response = (command: number) => (buf: Buffer) => {
  const end = new ResponseEnd()
  end.begin(command, true)
  const at = end.serverBytes(buf)
  return at < 0 ? need(1) : frame(Buffer.from(buf.subarray(0, at)), at)
}

/** Runs `f` with `n` clients connected with `extra`, and ends them after. */
const withClients = async <A>(
  n: number,
  extra: mysql.ConnectionOptions,
  f: (clients: ReadonlyArray<mysql.Connection>) => Promise<A>
): Promise<A> => {
  const clients = await Promise.all(Array.from({ length: n }, () => connect(extra)))
  try {
    return await f(clients)
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => c.destroy())))
  }
}

/** Runs `f` while counting the server sessions of `user` in `database`; the highest count seen (one sample at least). */
const sampling = async (user: string, database: string, f: () => Promise<unknown>): Promise<number> => {
  let max = 0
  let running = true
  const sampler = (async () => {
    do {
      max = Math.max(max, await serverSessions(user, database))
      await new Promise((r) => setTimeout(r, 20))
    } while (running)
  })()
  try {
    await f()
  } finally {
    running = false
    await sampler
  }
  return max
}

/** Whether `p` is still pending once the event loop had `ms` to settle it. */
const pendingAfter = async (p: Promise<unknown>, ms: number): Promise<boolean> => {
  let settled = false
  p.then(
    () => (settled = true),
    () => (settled = true)
  )
  await new Promise((r) => setTimeout(r, ms))
  return !settled
}

describe("transaction pooling", () => {
  it("serves 200 mysql2 clients on 10 server connections of a user capped at 12, without an error", async () => {
    const max = await withClients(200, capped, (clients) =>
      sampling("capped", "appdb", async () => {
        const sums = await Promise.all(
          clients.map(async (c, i) => {
            let sum = 0
            for (let k = 0; k < 5; k++) sum += await one<number>(c, `SELECT ${i} + ${k} AS v`)
            return sum
          })
        )
        expect(sums).toEqual(clients.map((_, i) => 5 * i + 10))
      })
    )
    expect(max).toBeGreaterThan(0)
    expect(max).toBeLessThanOrEqual(SIZE)
    // Every client quit (COM_QUIT and FIN): none is left open on the proxy.
    await eventually(() => proxy.handle.listeners.find((l) => l.name === "mysql")!.open() === 0)
  }, 120_000)

  it("serves 200 mariadb-slap clients (libmariadb) on 10 server connections of that user, without an error", async () => {
    await eventually(async () => (await serverSessions("capped", "appdb")) === 0, 20_000)
    const slap = run(
      "mariadb-slap",
      [
        "--no-defaults",
        "-h127.0.0.1",
        `-P${proxy.port("mysql")}`,
        "-ucapped",
        `-p${password}`,
        "--create-schema=appdb",
        "--no-drop",
        "--concurrency=200",
        "--iterations=1",
        "--number-of-queries=2000",
        "--query=SELECT 1"
      ],
      { timeout: 120_000 }
    )
    const max = await sampling("capped", "appdb", () => slap)
    const { stdout, stderr } = await slap
    expect(stderr).toBe("")
    expect(stdout).toMatch(/Number of clients running queries: 200/)
    expect(max).toBeLessThanOrEqual(SIZE)
  }, 150_000)

  it("runs a transaction on one server connection and gives it back at COMMIT", () =>
    withClients(2, { database: "onedb" }, async ([a, b]) => {
      await a!.query("BEGIN")
      const id = await backendId(a!)
      await a!.query("INSERT INTO appdb.t (v) VALUES (1)")
      expect(await backendId(a!)).toBe(id)
      // The only server connection is in a's transaction: b waits for it.
      const waiting = one<number>(b!, "SELECT 2 AS v")
      expect(await pendingAfter(waiting, 300)).toBe(true)
      await a!.query("COMMIT")
      expect(await waiting).toBe(2)
      expect(await backendId(b!)).toBe(id)
    }))

  it("keeps a server connection while autocommit is off", () =>
    withClients(2, { database: "onedb" }, async ([a, b]) => {
      await a!.query("SET autocommit = 0")
      await a!.query("SELECT 1")
      const waiting = one<number>(b!, "SELECT 3 AS v")
      expect(await pendingAfter(waiting, 300)).toBe(true)
      await a!.query("SET autocommit = 1")
      expect(await waiting).toBe(3)
    }))

  it("rolls back what a client left open when it goes", async () => {
    await withClients(1, {}, async ([a]) => {
      await a!.query("BEGIN")
      await a!.query("INSERT INTO t (v) VALUES (4242)")
    })
    await withClients(1, {}, async ([b]) => {
      expect(await one<number>(b!, "SELECT COUNT(*) AS v FROM t WHERE v = 4242")).toBe(0)
    })
  })
})

describe("session state pins the server connection until it is released", () => {
  const pinned = (pin: string, release: (c: mysql.Connection) => Promise<unknown>, check: string) =>
    withClients(2, { database: "onedb" }, async ([a, b]) => {
      await a!.query(pin)
      const id = await backendId(a!)
      const waiting = one<number>(b!, "SELECT 5 AS v")
      expect(await pendingAfter(waiting, 300)).toBe(true)
      expect(await backendId(a!)).toBe(id)
      await a!.query(check)
      await release(a!)
      expect(await waiting).toBe(5)
    })

  it("a user variable: until COM_RESET_CONNECTION", () => pinned("SET @x = 42", (c) => c.reset(), "SELECT @x AS v"))

  it("a temporary table: until COM_RESET_CONNECTION", () =>
    pinned("CREATE TEMPORARY TABLE tmp (a INT)", (c) => c.reset(), "SELECT COUNT(*) AS v FROM tmp"))

  it("LOCK TABLES: until UNLOCK TABLES", () =>
    pinned("LOCK TABLES appdb.t READ", (c) => c.query("UNLOCK TABLES"), "SELECT COUNT(*) AS v FROM appdb.t"))

  it("LOCK TABLES and a user variable in one text: UNLOCK TABLES leaves the user variable pinning", () =>
    withClients(21, { multipleStatements: true }, async ([a, ...others]) => {
      await a!.query("LOCK TABLES appdb.t READ; SET @kept = 'a'")
      const id = await backendId(a!)
      await a!.query("UNLOCK TABLES")
      // Others take and give back every other server connection of the pool meanwhile, and make their own @kept.
      await Promise.all(others.map((c, i) => c.query(`SET @kept = 'other ${i}'`).then(() => c.reset())))
      expect(await backendId(a!)).toBe(id)
      expect(await one<string>(a!, "SELECT @kept AS v")).toBe("a")
      // The lock went with UNLOCK TABLES: another client writes the table.
      await others[0]!.query("INSERT INTO t (v) VALUES (0)")
    }))

  it("a user variable's value stays the client's while others run", () =>
    withClients(21, {}, async ([a, ...others]) => {
      await a!.query("SET @mine = 'a'")
      const id = await backendId(a!)
      await Promise.all(others.map((c, i) => c.query(`SET @mine = 'other ${i}'`).then(() => c.reset())))
      expect(await one<string>(a!, "SELECT @mine AS v")).toBe("a")
      expect(await backendId(a!)).toBe(id)
    }))

  it("COM_RESET_CONNECTION answers without a server connection when the client holds none", () =>
    withClients(2, { database: "onedb" }, async ([a, b]) => {
      await b!.query("BEGIN")
      // b holds the only server connection; a holds none, and its reset needs none.
      await a!.reset()
      await b!.query("COMMIT")
      expect(await one<number>(a!, "SELECT 6 AS v")).toBe(6)
    }))
})

describe("statements", () => {
  it("prepared statements (mysql2 execute) run on the client's own server connection", () =>
    withClients(1, {}, async ([a]) => {
      const id = await backendId(a!)
      for (let i = 0; i < 3; i++) {
        const [rows] = await a!.execute<mysql.RowDataPacket[]>("SELECT ? + ? AS v, CONNECTION_ID() AS id", [i, 1])
        expect(rows[0]!.v).toBe(i + 1)
        expect(Number(rows[0]!.id)).toBe(id)
      }
    }))

  it("multi-statement texts and stored procedures' result sets", () =>
    withClients(1, { multipleStatements: true }, async ([a]) => {
      const [sets] = await a!.query<mysql.RowDataPacket[][]>("SELECT 1 AS a; SELECT 2 AS b; SELECT 3 AS c")
      expect(sets.map((rows) => Object.values(rows[0]!)[0])).toEqual([1, 2, 3])
      const [called] = await a!.query<mysql.RowDataPacket[][]>("CALL two()")
      expect(called[0]![0]!.a).toBe(1)
      expect(called[1]![0]!.b).toBe(2)
      expect(await one<number>(a!, "SELECT 7 AS v")).toBe(7)
    }))

  it("a statement over the 1 MiB the proxy reads of it, and LOAD DATA LOCAL INFILE", () => {
    const rows = () => Readable.from([Buffer.from("1\t100\n2\t200\n"), Buffer.from("3\t300\n")])
    return withClients(1, { flags: ["+LOCAL_FILES"], infileStreamFactory: rows }, async ([a]) => {
      const big = "y".repeat(2_000_000)
      expect(await one<number>(a!, `SELECT LENGTH('${big}') AS v`)).toBe(2_000_000)
      await a!.query("CREATE TEMPORARY TABLE loaded (id INT, v INT)")
      const [result] = await a!.query<mysql.ResultSetHeader>("LOAD DATA LOCAL INFILE 'rows.tsv' INTO TABLE loaded")
      expect(result.affectedRows).toBe(3)
      expect(await one<string>(a!, "SELECT SUM(v) AS v FROM loaded")).toBe("600")
    })
  })

  it("pipelined commands are answered in order, across a USE that moves the client", async () => {
    const { client } = await rawLogin("appdb")
    try {
      const query = (sql: string) => encodePacket(Buffer.concat([Buffer.from([Command.QUERY]), Buffer.from(sql)]), 0)
      client.socket.write(
        Buffer.concat([
          query("SELECT 'first'"),
          query("USE otherdb"),
          query("SELECT DATABASE()"),
          encodePacket(Buffer.from([Command.PING]), 0),
          query("SELECT 'last'")
        ])
      )
      const answers: Buffer[] = []
      for (const command of [Command.QUERY, Command.QUERY, Command.QUERY, Command.PING, Command.QUERY]) {
        answers.push(await client.read(response(command)))
      }
      expect(answers[0]!.includes("first")).toBe(true)
      expect(answers[1]![4]).toBe(0x00) // OK
      expect(answers[2]!.includes("otherdb")).toBe(true)
      expect(answers[3]![4]).toBe(0x00)
      expect(answers[4]!.includes("last")).toBe(true)
    } finally {
      client.socket.destroy()
    }
  })

  it("large results stream through", () =>
    withClients(1, {}, async ([a]) => {
      const [rows] = await a!.query<mysql.RowDataPacket[]>("SELECT REPEAT('x', 1000000) AS v, seq FROM seq_1_to_50")
      expect(rows).toHaveLength(50)
      expect(rows.every((r) => (r.v as string).length === 1_000_000)).toBe(true)
    }))
})

describe("USE", () => {
  it("USE of a database of another route moves the client to that route's pool", () =>
    withClients(1, {}, async ([a]) => {
      await a!.query("USE otherdb")
      expect(await one<string>(a!, "SELECT DATABASE() AS v")).toBe("otherdb")
      await a!.query("USE appdb")
      expect(await one<string>(a!, "SELECT DATABASE() AS v")).toBe("appdb")
    }))

  it("a client that logged in without a database is served from its first USE's pool", () =>
    withClients(1, { database: undefined }, async ([a]) => {
      await a!.query("USE onedb")
      expect(await one<string>(a!, "SELECT DATABASE() AS v")).toBe("onedb")
      await a!.query("USE appdb")
      expect(await one<string>(a!, "SELECT DATABASE() AS v")).toBe("appdb")
    }))

  it("the mariadb CLI's use (COM_INIT_DB) moves it too", async () => {
    const { stdout } = await run("mariadb", [
      "--no-defaults",
      "-h127.0.0.1",
      `-P${proxy.port("mysql")}`,
      `-u${db.user}`,
      `-p${db.password}`,
      "-N",
      "appdb",
      "-e",
      "use otherdb; SELECT DATABASE()"
    ])
    expect(stdout.trim()).toBe("otherdb")
  })

  it("is refused with 1192 inside a transaction and while pinned", () =>
    withClients(1, {}, async ([a]) => {
      await a!.query("BEGIN")
      expect((await errorOf(a!.query("USE otherdb"))).errno).toBe(1192)
      await a!.query("ROLLBACK")
      await a!.query("SET @v = 1")
      expect((await errorOf(a!.query("USE otherdb"))).errno).toBe(1192)
      await a!.reset()
      await a!.query("USE otherdb")
      expect(await one<string>(a!, "SELECT DATABASE() AS v")).toBe("otherdb")
    }))

  it("USE of a database no route serves: 1049, the session goes on", () =>
    withClients(1, {}, async ([a]) => {
      expect((await errorOf(a!.query("USE nosuchdb"))).errno).toBe(1049)
      expect(await one<string>(a!, "SELECT DATABASE() AS v")).toBe("appdb")
    }))
})

describe("KILL", () => {
  it("KILL QUERY <the client's id> from another client cancels its query on its server connection", () =>
    withClients(2, {}, async ([a, b]) => {
      const sleeping = a!.query("SELECT SLEEP(30) AS v").then(
        (r) => r,
        (e: unknown) => e as MysqlError
      )
      await eventually(async () => {
        const [rows] = await monitor.query<mysql.RowDataPacket[]>(
          "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(30)%'"
        )
        return Number(rows[0]!.n) === 1
      }, 10_000)
      await b!.query(`KILL QUERY ${a!.threadId}`)
      const result = await sleeping
      // MariaDB answers a killed SLEEP with its result 1 (interrupted), or ER_QUERY_INTERRUPTED.
      if (result instanceof Error) expect(result.errno).toBe(1317)
      else expect((result as unknown as [mysql.RowDataPacket[]])[0][0]!.v).toBe(1)
      expect(await one<number>(a!, "SELECT 8 AS v")).toBe(8)
    }))

  it("KILL of a pooled client that holds no server connection closes it", () =>
    withClients(2, {}, async ([a, b]) => {
      const closed = ended(a!)
      await b!.query(`KILL ${a!.threadId}`)
      await closed
    }))

  it("KILL of an unknown proxy id: MariaDB's 1094", () =>
    withClients(1, {}, async ([b]) => {
      expect((await errorOf(b!.query("KILL 1073741824"))).errno).toBe(1094)
    }))
})

describe("COM_CHANGE_USER", () => {
  it("switches to another user checked by the proxy, and refuses a wrong password with 1045", () =>
    withClients(1, {}, async ([a]) => {
      await a!.query("SET @x = 1")
      await a!.changeUser({ ...capped, database: "appdb" })
      expect(await one<string>(a!, "SELECT CURRENT_USER() AS v")).toBe("capped@%")
      expect(await one<unknown>(a!, "SELECT @x AS v")).toBeNull()
      const e = await errorOf(a!.changeUser({ user: db.user, password: "wrong", database: "appdb" }))
      expect(e.errno).toBe(1045)
    }))
})

describe("COM_CHANGE_USER answered to another nonce", () => {
  it("is asked again with an AuthSwitchRequest, as MariaDB asks, and the new answer logs the user in", async () => {
    const { client } = await rawLogin("appdb")
    try {
      const changeUser = Buffer.concat([
        Buffer.from([Command.CHANGE_USER]),
        Buffer.from("capped\0"),
        Buffer.from([20]),
        Buffer.alloc(20, 7), // hashed with a nonce the proxy never sent
        Buffer.from("appdb\0"),
        Buffer.from([UTF8MB4_GENERAL_CI, 0]),
        Buffer.from(`${AuthPlugin.NATIVE}\0`)
      ])
      client.socket.write(encodePacket(changeUser, 0))
      const change = await client.read(decodeAuthSwitchRequest)
      expect(change).toMatchObject({ sequenceId: 1, message: { plugin: AuthPlugin.NATIVE } })
      client.socket.write(encodePacket(nativeToken(password, change.message.data.subarray(0, 20)), 2))
      expect((await client.read(decodeOkPacket)).sequenceId).toBe(3)
      const query = Buffer.concat([Buffer.from([Command.QUERY]), Buffer.from("SELECT CURRENT_USER()")])
      client.socket.write(encodePacket(query, 0))
      expect((await client.read(response(Command.QUERY))).includes("capped@%")).toBe(true)
    } finally {
      client.socket.destroy()
    }
  })
})

describe("limits", () => {
  it("a client that waited maxWait gets 1040 for that command and keeps its session", () =>
    // One after the other: each login takes the pool's one connection for a moment, and one may wait at most.
    withClients(1, { database: "waitdb" }, ([a]) =>
      withClients(1, { database: "waitdb" }, async ([b]) => {
        await a!.query("BEGIN")
        expect((await errorOf(b!.query("SELECT 1"))).errno).toBe(1040)
        await a!.query("COMMIT")
        expect(await one<number>(b!, "SELECT 9 AS v")).toBe(9)
      })
    ))

  it("session mode (no pool block): one server connection per client for its life, reset for the next", async () => {
    await withClients(1, { database: "sessdb" }, async ([a]) => {
      const id = await backendId(a!)
      await a!.query("SET @s = 1")
      expect(await backendId(a!)).toBe(id)
      expect(await serverSessions(db.user, "sessdb")).toBe(1)
    })
    await withClients(1, { database: "sessdb" }, async ([b]) => {
      expect(await one<unknown>(b!, "SELECT @s AS v")).toBeNull()
    })
  })

  it("a server connection that dies mid-transaction closes its client, as the server would", () =>
    withClients(1, {}, async ([a]) => {
      await a!.query("BEGIN")
      const id = await backendId(a!)
      const closed = ended(a!)
      const direct = await mysql.createConnection(viaDirect())
      await direct.query(`KILL ${id}`)
      await direct.end()
      await closed
      expect((await errorOf(a!.query("SELECT 1"))).message).toMatch(/closed state/)
    }))
})
