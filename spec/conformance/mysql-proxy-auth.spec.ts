// Logins checked by the proxy (a mysql listener with `auth`, README "MySQL: logins checked by the proxy"): real
// clients (the `mariadb` CLI, batch and interactive, mariadb-slap, mysql2) → polyproxy → two real MariaDB 10.11
// servers: t1 and the users' table on one, t2 on the other. The user `shop` has the same password on both; the proxy
// knows it on neither (it reads the hash from the users' server and recovers SHA1(password) from each login).
import { execFile } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import { promisify } from "node:util"
import mysql from "mysql2/promise"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type MariaDbServer, startMariaDb } from "../support/backends/index.ts"
import { type Certs, makeCerts } from "../support/certs.ts"
import { errorOf } from "../support/mysql.ts"
import { eventually, startTestProxy, type TestProxy } from "../support/proxy.ts"

const run = promisify(execFile)

const secret = () => randomBytes(12).toString("hex")
const shopPassword = secret()
const poolerPassword = secret()
/** Another password for `drift` on t2's server than on the users' one: that server refuses the proxy's login. */
const driftPassword = secret()

let a: MariaDbServer // t1, and the users' table (route "users")
let b: MariaDbServer // t2
let certs: Certs
let proxy: TestProxy

const sha1 = (data: Buffer | string) => createHash("sha1").update(data).digest()

beforeAll(async () => {
  const users = (database: string, drift: string) => [
    `CREATE USER 'shop'@'%' IDENTIFIED BY '${shopPassword}'`,
    `GRANT ALL PRIVILEGES ON ${database}.* TO 'shop'@'%'`,
    `CREATE USER 'drift'@'%' IDENTIFIED BY '${drift}'`,
    `GRANT ALL PRIVILEGES ON ${database}.* TO 'drift'@'%'`
  ]
  ;[a, b, certs] = await Promise.all([
    startMariaDb({
      databases: ["t1"],
      setup: [
        ...users("t1", shopPassword),
        `CREATE USER 'narrow'@'%' IDENTIFIED BY '${shopPassword}'`,
        "GRANT ALL PRIVILEGES ON t1.* TO 'narrow'@'%'",
        "CREATE USER 'nopass'@'%'",
        `CREATE USER 'pooler'@'%' IDENTIFIED BY '${poolerPassword}'`,
        "GRANT SELECT ON mysql.user TO 'pooler'@'%'"
      ]
    }),
    startMariaDb({
      databases: ["t2"],
      setup: [
        ...users("t2", driftPassword),
        // No grant on t2 here: this server refuses the database in its own words (1044, 'narrow'@'%').
        `CREATE USER 'narrow'@'%' IDENTIFIED BY '${shopPassword}'`
      ]
    }),
    makeCerts()
  ])
  const auth = { route: "users", user: "pooler", password: poolerPassword }
  const listener = { host: "127.0.0.1", port: 0, auth }
  proxy = await startTestProxy({
    listeners: {
      mysql: { ...listener, tls: { cert: certs.server.certPath, key: certs.server.keyPath } },
      // Commands before any USE go to t1 there.
      withdefault: { ...listener, type: "mysql", defaultRoute: "t1" },
      // Its lookup login is wrong: no login can be checked.
      nolookup: { ...listener, type: "mysql", auth: { ...auth, password: "not-the-password" } }
    },
    routes: {
      users: { endpoint: `127.0.0.1:${a.port}` },
      t1: { endpoint: `127.0.0.1:${a.port}` },
      t2: { endpoint: `127.0.0.1:${b.port}` }
    },
    ssrf: { allow: ["127.0.0.0/8"] },
    // A client that logged in without a database may idle past the handshake deadline: timeouts.idle bounds it.
    timeouts: { handshake: 2, idle: 30 }
  })
}, 120_000)

afterAll(async () => {
  await proxy?.stop()
  await Promise.all([a?.stop(), b?.stop()])
})

const options = (extra: mysql.ConnectionOptions = {}, listener = "mysql"): mysql.ConnectionOptions => ({
  host: "127.0.0.1",
  port: proxy.port(listener),
  user: "shop",
  password: shopPassword,
  ...extra
})

const connect = async (extra: mysql.ConnectionOptions = {}, listener = "mysql") => {
  const c = await mysql.createConnection(options(extra, listener))
  c.on("error", () => {})
  return c
}

const row = async (c: mysql.Connection, sql: string) => {
  const [rows] = await c.query<mysql.RowDataPacket[]>(sql)
  return rows[0]!
}

/** The `mariadb` CLI through the proxy; its exit code, output and errors. */
const cli = async (args: ReadonlyArray<string>, listener = "mysql") => {
  const base = ["--no-defaults", "-h", "127.0.0.1", "-P", String(proxy.port(listener)), "--protocol=tcp", "--skip-ssl"]
  return run("mariadb", [...base, ...args], { timeout: 20_000 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (e: { code?: number; stdout?: string; stderr?: string }) => ({
      code: e.code ?? 1,
      stdout: e.stdout ?? "",
      stderr: e.stderr ?? ""
    })
  )
}

const denied = (user: string, withPassword: boolean) =>
  `Access denied for user '${user}'@'127.0.0.1' (using password: ${withPassword ? "YES" : "NO"})`

describe("mysql with auth: routing by USE", () => {
  it('`mariadb -e "USE t2; SELECT @@port"` with no database at login reaches t2\'s server', async () => {
    const out = await cli(["-u", "shop", `-p${shopPassword}`, "--batch", "-e", "USE t2; SELECT @@port"])
    expect(out).toMatchObject({ code: 0, stderr: "" })
    expect(out.stdout.trim().split("\n")).toEqual(["@@port", String(b.port)])
  })

  it("the interactive `mariadb`: its banner query before USE, then USE", async () => {
    const input = "USE t1;\nSELECT DATABASE(), @@port;\nquit\n"
    const command = [
      "mariadb --no-defaults -h 127.0.0.1 --protocol=tcp --skip-ssl",
      `-P ${proxy.port("mysql")} -u shop -p${shopPassword}`
    ].join(" ")
    // A pty (`script`) makes the CLI interactive: it asks `select @@version_comment limit 1` for its banner.
    const { stdout } = await run("sh", ["-c", `(sleep 1; printf '${input}') | script -qec "${command}" /dev/null`], {
      timeout: 20_000
    })
    expect(stdout).toMatch(/Server version: \S+ polyproxy/)
    expect(stdout).toContain("Database changed")
    expect(stdout).toMatch(new RegExp(`\\| t1 +\\| +${a.port} \\|`))
  })

  it("`mariadb-slap --create-schema=t1` works with no defaultRoute", async () => {
    const args = [
      "--no-defaults",
      "-h",
      "127.0.0.1",
      "-P",
      String(proxy.port("mysql")),
      "--protocol=tcp",
      "--skip-ssl",
      "-u",
      "shop",
      `-p${shopPassword}`,
      "--create-schema=t1",
      "--concurrency=10",
      "--iterations=3",
      "--query=SELECT 1"
    ]
    const { stdout, stderr } = await run("mariadb-slap", args, { timeout: 60_000 })
    expect(stderr).toBe("")
    expect(stdout).toContain("Number of clients running queries: 10")
  })

  it("mysql2 with no database: USE as a query, then queries on that server; with a database: routed at login", async () => {
    const c = await connect()
    expect(await row(c, "SELECT DATABASE() AS db")).toEqual({ db: null })
    await c.query("USE t2")
    expect(await row(c, "SELECT DATABASE() AS db, @@port AS port")).toEqual({ db: "t2", port: b.port })
    await c.end()
    const d = await connect({ database: "t1" })
    expect(await row(d, "SELECT DATABASE() AS db, @@port AS port")).toEqual({ db: "t1", port: a.port })
    await d.end()
  })

  it("a multi-statement text that starts with USE: routed by it, the server runs it whole", async () => {
    const c = await connect({ multipleStatements: true })
    const [results] = await c.query<mysql.RowDataPacket[][]>("USE t2; SELECT @@port AS port")
    expect(results[1]).toEqual([{ port: b.port }])
    expect(await row(c, "SELECT DATABASE() AS db")).toEqual({ db: "t2" })
    await c.end()
  })

  it("a mysql2 pool without a database, then USE", async () => {
    const pool = mysql.createPool({ ...options(), connectionLimit: 2 })
    const conn = await pool.getConnection()
    await conn.query("USE t1")
    expect(await row(conn, "SELECT @@port AS port")).toEqual({ port: a.port })
    conn.release()
    await pool.end()
  })

  it("an unknown database is MariaDB's 1049 and the client stays; a query before USE is 1046", async () => {
    const c = await connect()
    const unknown = await errorOf(c.query("USE nosuch"))
    expect(unknown).toMatchObject({ errno: 1049, sqlState: "42000", sqlMessage: "Unknown database 'nosuch'" })
    const noDb = await errorOf(c.query("SELECT 1"))
    expect(noDb).toMatchObject({ errno: 1046, sqlState: "3D000", sqlMessage: "No database selected" })
    await c.ping()
    await c.query("USE `t1`")
    expect(await row(c, "SELECT @@port AS port")).toEqual({ port: a.port })
    await c.end()
  })

  it("the wait for USE is bounded by timeouts.idle, not timeouts.handshake (2 s here)", async () => {
    const c = await connect()
    await new Promise((r) => setTimeout(r, 2500))
    await c.query("USE t2")
    expect(await row(c, "SELECT @@port AS port")).toEqual({ port: b.port })
    await c.end()
  })

  it("SET NAMES before USE is remembered for the server login", async () => {
    const c = await connect()
    await c.query("SET NAMES latin1")
    await c.query("USE t1")
    expect(await row(c, "SELECT @@character_set_client AS cs, @@collation_connection AS co")).toEqual({
      cs: "latin1",
      co: "latin1_swedish_ci"
    })
    await c.end()
  })

  it("with defaultRoute, a command before any USE goes to that route's server, without a database", async () => {
    const c = await connect({}, "withdefault")
    expect(await row(c, "SELECT DATABASE() AS db, @@port AS port")).toEqual({ db: null, port: a.port })
    await c.end()
  })

  it("a client that quits (COM_QUIT, then its FIN) leaves nothing open on the proxy", async () => {
    const open = () => proxy.handle.listeners.find((l) => l.name === "withdefault")!.open()
    const c = await connect({ database: "t1" }, "withdefault")
    await c.query("SELECT 1")
    await c.end()
    const d = await connect({}, "withdefault")
    await d.query("USE t1")
    await d.end()
    await eventually(() => open() === 0)
  })

  it("TLS clients (mysql2 with ssl)", async () => {
    const c = await connect({ database: "t2", ssl: { ca: certs.ca.cert } })
    expect(await row(c, "SELECT @@port AS port")).toEqual({ port: b.port })
    await c.end()
  })
})

describe("mysql with auth: the proxy's login check", () => {
  it("a wrong password and an unknown user: 1045 in MariaDB's words", async () => {
    const wrong = await errorOf(mysql.createConnection(options({ password: "wrong" })))
    expect(wrong).toMatchObject({ errno: 1045, sqlState: "28000", sqlMessage: denied("shop", true) })
    const ghost = await errorOf(mysql.createConnection(options({ user: "ghost", password: "anything" })))
    expect(ghost).toMatchObject({ errno: 1045, sqlState: "28000", sqlMessage: denied("ghost", true) })
    const out = await cli(["-u", "shop", "-pwrong", "-e", "SELECT 1"])
    expect(out.code).not.toBe(0)
    expect(out.stderr.trim()).toBe(`ERROR 1045 (28000): ${denied("shop", true)}`)
  })

  it("no password: `using password: NO`; an account without a password is refused too", async () => {
    const none = await errorOf(mysql.createConnection(options({ password: "" })))
    expect(none).toMatchObject({ errno: 1045, sqlMessage: denied("shop", false) })
    const nopass = await errorOf(mysql.createConnection(options({ user: "nopass", password: "" })))
    expect(nopass).toMatchObject({ errno: 1045, sqlMessage: denied("nopass", false) })
  })

  it("clients that answer with another plugin are switched to mysql_native_password", async () => {
    for (const plugin of ["caching_sha2_password", "client_ed25519"]) {
      const out = await cli(["-u", "shop", `-p${shopPassword}`, `--default-auth=${plugin}`, "-e", "USE t2; SELECT 7"])
      expect(out).toMatchObject({ code: 0, stderr: "" })
      expect(out.stdout).toContain("7")
    }
  })

  it("a server that refuses the proxy's login for the user: the client reads that server's words", async () => {
    const n = await errorOf(connect({ user: "narrow", password: shopPassword, database: "t2" }))
    expect(n).toMatchObject({
      errno: 1044,
      sqlState: "42000",
      sqlMessage: "Access denied for user 'narrow'@'%' to database 't2'"
    })
    // `drift` has another password on t2's server than on the users' one: that server says no.
    const d = await errorOf(connect({ user: "drift", password: shopPassword, database: "t2" }))
    expect(d).toMatchObject({ errno: 1045, sqlState: "28000" })
    const ok = await connect({ user: "drift", password: shopPassword, database: "t1" })
    await ok.end()
  })

  it("a lookup that cannot be made: 2003 in the proxy's words, the detail in the log only", async () => {
    const e = await errorOf(mysql.createConnection(options({}, "nolookup")))
    expect(e).toMatchObject({ errno: 2003, sqlState: "HY000" })
    expect(e.sqlMessage).toContain("the login could not be checked")
    expect(e.sqlMessage).not.toContain("pooler")
    const line = proxy.logs.find((l) => l.event === "connection refused" && l.listener === "nolookup")
    expect(String(line?.message)).toContain("as pooler failed")
  })

  it("no password, hash or stage1 appears in the proxy's log", async () => {
    const stage1 = sha1(shopPassword)
    const hash = sha1(stage1)
    const text = JSON.stringify(proxy.logs)
    expect(proxy.logs.length).toBeGreaterThan(0)
    for (const needle of [
      shopPassword,
      poolerPassword,
      driftPassword,
      "not-the-password",
      stage1.toString("hex"),
      hash.toString("hex"),
      hash.toString("hex").toUpperCase(),
      stage1.toString("base64"),
      hash.toString("base64")
    ]) {
      expect(text).not.toContain(needle)
    }
  })
})
