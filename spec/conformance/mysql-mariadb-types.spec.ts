// MariaDB's extended column metadata through the mysql listener: real `mysql2` clients and the `mariadb` CLI, straight
// to a real MariaDB 10.11 and through the proxy, must see the same column types — JSON (a LONGTEXT with format
// "json"), UUID, INET4 and INET6 — and so the same values (mysql2 parses a JSON column into an object).
import { execFile } from "node:child_process"
import * as net from "node:net"
import { promisify } from "node:util"
import mysql from "mysql2/promise"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  decodeClientHandshake,
  decodeHandshakeV10,
  type HandshakeResponse41,
  MariaDbCapability
} from "../../src/codec/mysql/index.ts"
import { type MariaDbServer, startMariaDb } from "../support/backends/index.ts"
import { type Certs, makeCerts } from "../support/certs.ts"
import { mariadbOptions } from "../support/mysql.ts"
import { tapRelay } from "../support/net.ts"
import { startTestProxy, type TestProxy } from "../support/proxy.ts"

const run = promisify(execFile)

let db: MariaDbServer
let certs: Certs
let fixed: TestProxy // serverFlavor: mariadb
let auto: TestProxy // serverFlavor: auto (the default)
let tap: LoginTap

interface LoginTap {
  readonly port: number
  /** The login each connection sent the server (the packet after its greeting), decoded. */
  readonly logins: HandshakeResponse41[]
  readonly close: () => void
}

/** A relay in front of the server that keeps what the proxy asks of it in each login. */
const loginTap = async (port: number): Promise<LoginTap> => {
  const logins: HandshakeResponse41[] = []
  const relay = await tapRelay(port, (client, backend) => {
    let first = Buffer.alloc(0)
    const watch = (chunk: Buffer) => {
      first = Buffer.concat([first, chunk])
      const d = decodeClientHandshake(first)
      if (d._tag === "Need") return
      client.off("data", watch)
      if (d._tag === "Frame" && d.value.message._tag === "HandshakeResponse41") logins.push(d.value.message)
    }
    client.on("data", watch)
    client.pipe(backend)
    backend.pipe(client)
  })
  return { ...relay, logins }
}

beforeAll(async () => {
  ;[db, certs] = await Promise.all([startMariaDb({ tls: true, databases: ["appdb", "tlsdb", "tapdb"] }), makeCerts()])
  tap = await loginTap(db.port)
  const routes = {
    appdb: `127.0.0.1:${db.port}`,
    // The same server over TLS to the backend: the extras ride in the proxy's SSLRequest too.
    tlsdb: { endpoint: `127.0.0.1:${db.port}`, metadata: { tls: { ca: db.certs!.ca.cert } } },
    tapdb: `127.0.0.1:${tap.port}`
  }
  const listener = { host: "127.0.0.1", port: 0, tls: { cert: certs.server.certPath, key: certs.server.keyPath } }
  ;[fixed, auto] = await Promise.all([
    startTestProxy({
      listeners: { mysql: { ...listener, serverFlavor: "mariadb" } },
      routes,
      ssrf: { allow: ["127.0.0.0/8"] }
    }),
    startTestProxy({ listeners: { mysql: listener }, routes, ssrf: { allow: ["127.0.0.0/8"] } })
  ])
  for (const database of ["appdb", "tlsdb", "tapdb"]) {
    const c = await mysql.createConnection(direct({ database }))
    try {
      await c.query("CREATE TABLE typed (id INT PRIMARY KEY, j JSON, u UUID, i4 INET4, i6 INET6, t LONGTEXT)")
      await c.query(
        `INSERT INTO typed VALUES (1, '{"a": [1, 2], "b": null}', '2f1d5d4e-9b1a-11ee-8c90-0242ac120002', '10.0.0.1', '2001:db8::1', '{"not": "json"}')`
      )
    } finally {
      await c.end()
    }
  }
})

afterAll(async () => {
  await Promise.all([fixed?.stop(), auto?.stop()])
  tap?.close()
  await db?.stop()
})

const direct = (extra: mysql.ConnectionOptions = {}) => mariadbOptions(db, extra)

const via = (proxy: TestProxy, database = "appdb", extra: mysql.ConnectionOptions = {}) =>
  direct({ port: proxy.port("mysql"), database, ...extra })

/** What mysql2 tells its user about each column, MariaDB's extended type name and format included. */
const describeFields = (fields: mysql.FieldPacket[]) =>
  fields.map((f) => {
    const field = f as mysql.FieldPacket & { extendedTypeName?: string; extendedFormat?: string }
    return {
      name: field.name,
      type: field.type,
      columnType: field.columnType,
      characterSet: field.characterSet,
      columnLength: field.columnLength,
      flags: field.flags,
      extendedTypeName: field.extendedTypeName,
      extendedFormat: field.extendedFormat
    }
  })

type Query = (c: mysql.Connection) => Promise<[unknown, mysql.FieldPacket[]]>

const queries: Array<[string, Query]> = [
  ["JSON_EXTRACT", (c) => c.query(`SELECT JSON_EXTRACT('{"test": true}', '$') AS j`)],
  ["a table with JSON, UUID, INET4 and INET6 columns", (c) => c.query("SELECT * FROM typed ORDER BY id")],
  ["the same, prepared (binary rows)", (c) => c.execute("SELECT * FROM typed WHERE id = ?", [1])]
]

const outcome = async (options: mysql.ConnectionOptions, query: Query) => {
  const c = await mysql.createConnection(options)
  try {
    const [rows, fields] = await query(c)
    return { rows, fields: describeFields(fields) }
  } finally {
    await c.end()
  }
}

describe("mysql listener, serverFlavor: mariadb — mysql2 sees MariaDB's column types as it does directly", () => {
  it.each(queries)("%s", async (_, query) => {
    const expected = await outcome(direct(), query)
    // The point of the exercise: a JSON column is an object, not its text (a plain LONGTEXT stays text).
    expect(typeof (expected.rows as Array<Record<string, unknown>>)[0]!.j).toBe("object")
    expect(await outcome(via(fixed), query)).toEqual(expected)
    expect(await outcome(via(fixed, "tlsdb"), query)).toEqual(await outcome(direct({ database: "tlsdb" }), query))
    expect(await outcome(via(fixed, "appdb", { ssl: { ca: certs.ca.cert } }), query)).toEqual(expected)
  })

  it("inserts a JSON parameter and reads it back typed, through the proxy", async () => {
    const c = await mysql.createConnection(via(fixed))
    try {
      await c.execute("INSERT INTO typed (id, j) VALUES (?, ?)", [2, { inserted: [true] }])
      const [rows] = await c.execute<mysql.RowDataPacket[]>("SELECT j FROM typed WHERE id = ?", [2])
      expect(rows).toEqual([{ j: { inserted: [true] } }])
    } finally {
      await c.query("DELETE FROM typed WHERE id = 2")
      await c.end()
    }
  })

  it("asks the server for the extras mysql2 negotiated with the proxy's greeting", async () => {
    const seen = await outcome(via(fixed, "tapdb"), queries[1]![1])
    expect(seen.fields.find((f) => f.name === "u")?.extendedTypeName).toBe("uuid")
    expect(tap.logins.at(-1)!.mariadbCapabilities).toBe(MariaDbCapability.EXTENDED_METADATA)
  })

  it("greets with MariaDB's extended capabilities and CLIENT_MYSQL unset", async () => {
    const greeting = await new Promise<Buffer>((resolve, reject) => {
      const s = net.connect(fixed.port("mysql"), "127.0.0.1")
      s.once("data", (d) => {
        resolve(d)
        s.destroy()
      })
      s.once("error", reject)
    })
    const d = decodeHandshakeV10(greeting)
    if (d._tag !== "Frame") throw new Error("no greeting")
    expect(d.value.message.mariadbCapabilities).toBe(0x1d)
    expect(d.value.message.serverVersion).toMatch(/^5\.5\.5-10\.11\.\d+-MariaDB/)
  })
})

describe("mysql listener, serverFlavor: auto — learns MariaDB from the backend's greeting", () => {
  it("greets the first client on common ground, and the next ones as the backend greets", async () => {
    const query = queries[0]![1]
    const expected = await outcome(direct(), query)
    // Nothing seen yet in this process: no extras offered, so JSON arrives as its text, as before this option.
    const first = await outcome(via(auto), query)
    expect(first.rows).toEqual([{ j: '{"test": true}' }])
    expect(first.fields[0]!.extendedFormat).toBeUndefined()
    // The first login taught the listener its backend's greeting.
    for (const [, q] of queries) expect(await outcome(via(auto), q)).toEqual(await outcome(direct(), q))
    expect(await outcome(via(auto), query)).toEqual(expected)
  })
})

describe("the mariadb CLI through the proxy", () => {
  const cli = async (port: number, ...args: string[]) => {
    const login = ["--no-defaults", "-h127.0.0.1", `-P${port}`, `-u${db.user}`, `-p${db.password}`, "--batch"]
    const { stdout } = await run("mariadb", [...login, "--database=appdb", ...args], { timeout: 20_000 })
    return stdout
  }

  it("prints the same rows and column types as directly", async () => {
    const sql = ["-e", "SELECT j, u, i4, i6, JSON_EXTRACT(j, '$.a') AS a FROM typed ORDER BY id"]
    const expected = await cli(db.port, "--column-type-info", ...sql)
    expect(expected).toContain("2001:db8::1")
    expect(await cli(fixed.port("mysql"), "--column-type-info", ...sql)).toBe(expected)
    // What the CLI's library asked for reached the server: progress reports, bulk execution and metadata caching.
    await cli(fixed.port("mysql"), "--database=tapdb", ...sql)
    expect(tap.logins.at(-1)!.mariadbCapabilities).toBe(0x1d)
    expect(await cli(fixed.port("mysql"), "--ssl", "--ssl-verify-server-cert=0", "--column-type-info", ...sql)).toBe(
      expected
    )
  })

  it("runs a multi-statement script and reports the server's errors in its words", async () => {
    const script = ["-e", "SET @x = 41; SELECT @x + 1 AS answer; SELECT * FROM no_such_table"]
    const failure = (port: number) =>
      cli(port, ...script).then(
        () => "succeeded",
        (e: { stdout: string; stderr: string }) => `${e.stdout}|${e.stderr}`
      )
    const expected = await failure(db.port)
    expect(expected).toContain("42")
    expect(expected).toContain("doesn't exist")
    expect(await failure(fixed.port("mysql"))).toBe(expected)
  })
})
