// ResponseEnd against real MariaDB 10.11 responses: a raw client records what the server sends for each command
// (text and binary result sets of several sizes, a row of exactly 0xFFFFFF bytes, multi-statements, CALL with
// several results and OUT parameters, cursors, LOCAL INFILE, errors, the one-packet commands), with EOF packets,
// with CLIENT_DEPRECATE_EOF, and with MariaDB's metadata cache; ResponseEnd must end each one exactly at its last
// byte, in whole packets and in raw chunks cut anywhere. Then mysql2 itself, through a tap: every command it sends
// must find the previous response ended.
import mysql from "mysql2/promise"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Capability, Command, MariaDbCapability, Status } from "../../../src/codec/mysql/index.ts"
import { ResponseEnd } from "../../../src/codec/mysql/ResponseEnd.ts"
import { type MariaDbServer, startMariaDb } from "../../support/backends/index.ts"
import { mariadbOptions, nativeToken } from "../../support/mysql.ts"
import { tapRelay } from "../../support/net.ts"
import { baseFlags, type Recorded, Recorder, wirePayloads } from "./recorder.ts"

let db: MariaDbServer
let localInfile = false

beforeAll(async () => {
  db = await startMariaDb()
  const setup = await mysql.createConnection(mariadbOptions(db, { multipleStatements: true }))
  try {
    await setup.query(`
      CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(100));
      INSERT INTO t (v) SELECT CONCAT('row ', seq) FROM seq_1_to_1000;
      CREATE PROCEDURE two_results() BEGIN SELECT 1 AS a; SELECT id, v FROM t ORDER BY id LIMIT 3; END;
      CREATE PROCEDURE no_result() BEGIN DO 1; END;
      CREATE PROCEDURE out_param(IN a INT, OUT b INT) BEGIN SET b = a * 2; SELECT a; END;
    `)
    const [rows] = await setup.query("SELECT @@local_infile AS on_")
    localInfile = (rows as Array<{ on_: number }>)[0]!.on_ === 1
  } finally {
    await setup.end()
  }
})

afterAll(async () => {
  await db?.stop()
})

const query = (sql: string) => Buffer.concat([Buffer.from([Command.QUERY]), Buffer.from(sql)])
const u32 = (n: number) => {
  const b = Buffer.alloc(4)
  b.writeUInt32LE(n >>> 0)
  return b
}

const prepare = (sql: string) => Buffer.concat([Buffer.from([Command.STMT_PREPARE]), Buffer.from(sql)])

/** COM_STMT_EXECUTE with INT parameters (MYSQL_TYPE_LONG), cursor flag `flags`. */
const execute = (id: number, params: readonly number[], flags = 0): Buffer => {
  const parts = [Buffer.from([Command.STMT_EXECUTE]), u32(id), Buffer.from([flags]), u32(1)]
  if (params.length > 0) {
    parts.push(Buffer.alloc((params.length + 7) >> 3), Buffer.from([1]))
    for (const _ of params) parts.push(Buffer.from([0x03, 0x00]))
    for (const p of params) parts.push(u32(p))
  }
  return Buffer.concat(parts)
}

/** The statement id of a COM_STMT_PREPARE response (its first packet's payload, bytes 1-4). */
const statementId = (r: Recorded): number => {
  expect(r.response[4]).toBe(0x00)
  return r.response.readUInt32LE(5)
}

/** ResponseEnd must end `r` at its last byte, packet by packet and in chunks of every listed size. */
const expectEnds = (command: Buffer, r: Recorded, deprecateEof: boolean): ResponseEnd => {
  const code = command[0]!
  const packets = new ResponseEnd()
  if (packets.begin(code, deprecateEof) === "none") {
    expect(r.response.length).toBe(0)
    return packets
  }
  const payloads = wirePayloads(r.response)
  const verdicts = payloads.map((p) => {
    const v = packets.serverPacket(p)
    if (v === "infile") for (const f of wirePayloads(r.file!)) packets.clientPacket(f)
    return v
  })
  const expected: string[] = payloads.map((_, i) => (i === payloads.length - 1 ? "done" : "more"))
  if (r.infileAt !== undefined) expected[0] = "infile"
  expect(verdicts).toEqual(expected)
  // Raw bytes, followed by a stranger's OK the scan must not touch.
  const bytes = Buffer.concat([r.response, Buffer.from("0700000100000002000000", "hex")])
  // Byte by byte only where it stays quick: a 16 MiB response in 1-byte chunks is millions of calls.
  const sizes = bytes.length < 1 << 20 ? [1, 5, 4096, bytes.length] : [4093, 1 << 16, bytes.length]
  for (const size of sizes) {
    const end = new ResponseEnd()
    end.begin(code, deprecateEof)
    let found = -1
    for (let at = 0; at < bytes.length && found < 0; ) {
      const chunk = bytes.subarray(at, Math.min(bytes.length, at + size))
      const i = end.serverBytes(chunk)
      if (i < 0) {
        at += chunk.length
        continue
      }
      if (end.turn === "client") {
        expect(at + i).toBe(r.infileAt)
        expect(end.clientBytes(r.file!)).toBe(r.file!.length)
        at += i
        continue
      }
      found = at + i
    }
    expect(found, `chunks of ${size}`).toBe(r.response.length)
    expect(end).toMatchObject({ status: packets.status, failed: packets.failed })
  }
  return packets
}

const variants = [
  { name: "EOF packets", flags: baseFlags, mariadb: 0 },
  { name: "CLIENT_DEPRECATE_EOF", flags: baseFlags | Capability.DEPRECATE_EOF, mariadb: 0 },
  {
    name: "CLIENT_DEPRECATE_EOF, session tracking and MariaDB's metadata cache",
    flags: baseFlags | Capability.DEPRECATE_EOF | Capability.SESSION_TRACK,
    mariadb: MariaDbCapability.CACHE_METADATA | MariaDbCapability.EXTENDED_METADATA | MariaDbCapability.PROGRESS
  },
  { name: "EOF packets and MariaDB's metadata cache", flags: baseFlags, mariadb: MariaDbCapability.CACHE_METADATA }
]

describe.each(variants)("ResponseEnd on MariaDB's responses: $name", ({ flags, mariadb }) => {
  const deprecateEof = (flags & Capability.DEPRECATE_EOF) !== 0
  let rec: Recorder
  const run = async (command: Buffer, none = false) => {
    const r = await rec.record(command, none)
    return { recorded: r, end: expectEnds(command, r, deprecateEof) }
  }

  beforeAll(async () => {
    rec = await Recorder.open({
      port: db.port,
      user: db.user,
      password: db.password,
      database: "appdb",
      capabilities: flags,
      mariadbCapabilities: mariadb
    })
  })
  afterAll(() => rec?.close())

  it.each([
    "SELECT 1",
    "SELECT id, v FROM t WHERE id < 0",
    "SELECT id, v FROM t ORDER BY id LIMIT 1",
    "SELECT id, v FROM t ORDER BY id LIMIT 10",
    "SELECT id, v, NULL AS n FROM t ORDER BY id LIMIT 300",
    "SELECT * FROM t",
    "SELECT REPEAT('x', 70000) AS long_value",
    "SELECT 1; SELECT id FROM t ORDER BY id LIMIT 3; UPDATE t SET v = v WHERE id = 1; SELECT 2",
    "CALL two_results()",
    "CALL no_result()",
    "CALL out_param(2, @b); SELECT @b",
    "INSERT INTO t (v) VALUES ('new')",
    "BEGIN",
    "COMMIT",
    "SHOW VARIABLES LIKE 'max_allowed%'",
    "USE appdb",
    "SET sql_mode = 'ANSI_QUOTES'"
  ])("%s", async (sql) => {
    await run(query(sql))
  })

  it("a row of exactly 0xFFFFFF bytes: a full packet then an empty one", async () => {
    // A lenenc string of 16777211 bytes takes 4 + 16777211 = 0xFFFFFF bytes.
    const { recorded } = await run(query("SELECT REPEAT('y', 16777211) AS big"))
    expect(wirePayloads(recorded.response).some((p) => p.length === 0xffffff)).toBe(true)
  })

  it("keeps the status of the last OK: a transaction, its end, and the last insert id", async () => {
    expect((await run(query("START TRANSACTION"))).end.status & Status.IN_TRANS).not.toBe(0)
    const insert = (await run(query("INSERT INTO t (v) VALUES ('in a transaction')"))).end
    expect(insert.lastInsertId).toBeGreaterThan(1000)
    expect((await run(query("ROLLBACK"))).end.status & Status.IN_TRANS).toBe(0)
  })

  it.each([
    "SELEC 1",
    "SELECT * FROM missing",
    "SELECT 1; SELECT nope FROM nowhere; SELECT 2",
    "SELECT id FROM t ORDER BY id LIMIT 2; SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'stop'"
  ])("the error of %s", async (sql) => {
    expect((await run(query(sql))).end.failed).toBe(true)
  })

  it("LOCAL INFILE, alone and inside a multi-statement", async (ctx) => {
    if (!localInfile) return ctx.skip("the server runs with local_infile = OFF: no LOCAL INFILE to record")
    for (const sql of [
      "LOAD DATA LOCAL INFILE 'rows.csv' INTO TABLE t (v)",
      "LOAD DATA LOCAL INFILE 'rows.csv' INTO TABLE t (v); SELECT COUNT(*) FROM t"
    ]) {
      const r = await rec.recordInfile(query(sql), Buffer.from("a\nb\nc\n"))
      expect(r.infileAt).toBeGreaterThan(0)
      expectEnds(query(sql), r, deprecateEof)
    }
  })

  it("COM_INIT_DB, COM_PING, COM_STATISTICS, COM_FIELD_LIST, COM_SET_OPTION, COM_RESET_CONNECTION", async () => {
    await run(Buffer.concat([Buffer.from([Command.INIT_DB]), Buffer.from("appdb")]))
    await run(Buffer.from([Command.PING]))
    await run(Buffer.from([Command.STATISTICS]))
    await run(Buffer.concat([Buffer.from([Command.FIELD_LIST]), Buffer.from("t\0")]))
    await run(Buffer.from([Command.SET_OPTION, 0, 0]))
    await run(Buffer.from([Command.RESET_CONNECTION]))
    expect((await run(Buffer.concat([Buffer.from([Command.INIT_DB]), Buffer.from("nope")]))).end.failed).toBe(true)
    expect((await run(Buffer.from([0x40]))).end.failed).toBe(true)
  })

  it("prepared statements: prepare, execute (twice: the metadata cache may skip it), reset, close", async () => {
    for (const [sql, params] of [
      ["SELECT id, v FROM t WHERE id > ? ORDER BY id LIMIT 20", [990]],
      ["SELECT 1", []],
      ["DO ?", [1]],
      ["INSERT INTO t (v) VALUES (CONCAT('p', ?))", [7]],
      ["CALL two_results()", []],
      ["CALL out_param(?, ?)", [3, 0]]
    ] as const) {
      const id = statementId((await run(prepare(sql))).recorded)
      const first = (await run(execute(id, params))).recorded.response
      const again = (await run(execute(id, params))).recorded.response
      if (sql.startsWith("SELECT id")) {
        // The column count (2), and with the metadata cache a "metadata follows" byte: 0, as the prepare response
        // already gave the columns, so no column definitions come.
        const cached = (mariadb & MariaDbCapability.CACHE_METADATA) !== 0
        const head = cached ? Buffer.from([2, 0]) : Buffer.from([2])
        expect([first, again].map((r) => r.subarray(4, 4 + r.readUIntLE(0, 3)))).toEqual([head, head])
      }
      await run(Buffer.concat([Buffer.from([Command.STMT_RESET]), u32(id)]))
      await run(Buffer.concat([Buffer.from([Command.STMT_SEND_LONG_DATA]), u32(id), Buffer.from([0, 0, 0x61])]), true)
      await run(Buffer.concat([Buffer.from([Command.STMT_CLOSE]), u32(id)]), true)
    }
    expect((await run(prepare("SELECT nope FROM nowhere"))).end.failed).toBe(true)
    expect((await run(execute(123_456, []))).end.failed).toBe(true)
  })

  it("a cursor: COM_STMT_EXECUTE ends after the column definitions, COM_STMT_FETCH brings the rows", async () => {
    const id = statementId((await run(prepare("SELECT id, v FROM t WHERE id > ? ORDER BY id LIMIT 7"))).recorded)
    const opened = (await run(execute(id, [10], 1))).end
    expect(opened.status & Status.CURSOR_EXISTS).not.toBe(0)
    const fetch = Buffer.concat([Buffer.from([Command.STMT_FETCH]), u32(id), u32(3)])
    let last = 0
    for (let i = 0; i < 3 && !(last & Status.LAST_ROW_SENT); i++) last = (await run(fetch)).end.status
    expect(last & Status.LAST_ROW_SENT).not.toBe(0)
    await run(Buffer.concat([Buffer.from([Command.STMT_CLOSE]), u32(id)]), true)
  })

  it("COM_CHANGE_USER to the same user (an auth exchange: the client answers the server's switch)", async () => {
    const answer = nativeToken(db.password, rec.nonce)
    const payload = Buffer.concat([
      Buffer.from([Command.CHANGE_USER]),
      Buffer.from(`${db.user}\0`),
      Buffer.from([answer.length]),
      answer,
      Buffer.from("appdb\0"),
      Buffer.from([45, 0]),
      Buffer.from("mysql_native_password\0")
    ])
    const r = await rec.recordChangeUser(payload, db.password)
    expect(expectEnds(payload, r, deprecateEof).failed).toBe(false)
  })
})

describe("ResponseEnd behind a real mysql2 client", () => {
  it("finds every response ended when mysql2 sends its next command", async () => {
    const tap = await responseTap(db.port)
    const conn = await mysql.createConnection(mariadbOptions(db, { port: tap.port, multipleStatements: true }))
    try {
      await conn.query("SELECT * FROM t ORDER BY id LIMIT 500")
      await conn.query("SELECT 1; SELECT 2; CALL two_results()")
      await conn.query("SELECT REPEAT('z', 100000) AS v")
      await conn.execute("SELECT id, v FROM t WHERE id > ? ORDER BY id LIMIT 50", [100])
      await conn.execute("SELECT id, v FROM t WHERE id > ? ORDER BY id LIMIT 50", [200])
      await conn.execute("INSERT INTO t (v) VALUES (?)", ["from mysql2"])
      await conn.execute("CALL out_param(?, @x)", [5])
      await expect(conn.query("SELECT nope FROM nowhere")).rejects.toThrow(/nowhere/)
      await expect(conn.execute("SELECT nope FROM nowhere WHERE a = ?", [1])).rejects.toThrow(/nowhere/)
      await conn.ping()
      await conn.changeUser({ database: "appdb" })
      await conn.query("SELECT 'after change user'")
    } finally {
      await conn.end()
      tap.close()
    }
    // Each command found the previous response ended exactly at the bytes received so far.
    expect(tap.commands.length).toBeGreaterThan(12)
    expect(tap.problems).toEqual([])
  })
})

interface ResponseTap {
  readonly port: number
  readonly commands: number[]
  readonly problems: string[]
  readonly close: () => void
}

/** A relay that runs ResponseEnd on what mysql2 and the server say to each other, after the login. */
const responseTap = async (port: number): Promise<ResponseTap> => {
  const commands: number[] = []
  const problems: string[] = []
  const relay = await tapRelay(port, (client, backend) => {
    const end = new ResponseEnd()
    let loggedIn = false
    let pending = Buffer.alloc(0) // server bytes not yet scanned
    let clientBuf = Buffer.alloc(0)
    backend.on("data", (d: Buffer) => {
      client.write(d)
      if (!loggedIn) return
      pending = Buffer.concat([pending, d])
      const i = end.turn === "server" ? end.serverBytes(pending) : -1
      if (i >= 0) pending = pending.subarray(i)
      else if (end.turn === "server") pending = Buffer.alloc(0)
    })
    client.on("data", (d: Buffer) => {
      backend.write(d)
      clientBuf = Buffer.concat([clientBuf, d])
      while (clientBuf.length >= 4) {
        const length = clientBuf.readUIntLE(0, 3)
        if (clientBuf.length < 4 + length) break
        const seq = clientBuf[3]!
        const payload = clientBuf.subarray(4, 4 + length)
        clientBuf = clientBuf.subarray(4 + length)
        if (seq !== 0) {
          // The login, or an answer within a command (COM_CHANGE_USER's auth switch).
          if (end.turn === "client") end.clientPacket(payload)
          continue
        }
        loggedIn = true
        if (end.turn !== "idle") problems.push(`command 0x${payload[0]!.toString(16)} while the response goes on`)
        if (pending.length > 0) problems.push(`${pending.length} bytes after the end of the response`)
        commands.push(payload[0]!)
        end.begin(payload[0]!, false)
      }
    })
  })
  return { ...relay, commands, problems }
}
