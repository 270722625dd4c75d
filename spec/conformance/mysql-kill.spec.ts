// KILL by the connection id a client sees: real `mysql2` clients, the `mariadb` CLI and a hand-made client → the
// mysql listener → a real MariaDB 10.11. The id in the proxy's greeting is the proxy's own; a KILL naming it from
// another connection must end that session (and no bystander), be refused in MariaDB's own words (1094 unknown, 1095
// another user's), come back in order with the client's other commands, and leave the backend's own ids
// (CONNECTION_ID()) working as they do directly.
import { execFile, spawn } from "node:child_process"
import { createRequire } from "node:module"
import * as net from "node:net"
import * as path from "node:path"
import { Readable } from "node:stream"
import { promisify } from "node:util"
import mysql from "mysql2/promise"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { decodePacket, encodePacket, type Packet, parseErrPacket } from "../../src/codec/mysql/index.ts"
import { type MariaDbServer, startMariaDb } from "../support/backends/index.ts"
import { type Certs, makeCerts } from "../support/certs.ts"
import { ended, errorOf, type MysqlError, mariadbOptions, rawLogin } from "../support/mysql.ts"
import { eventually, startTestProxy, type TestProxy } from "../support/proxy.ts"

const run = promisify(execFile)

let db: MariaDbServer
let certs: Certs
let proxy: TestProxy
/** A plain TCP relay in front of the same server: to the proxy, another backend. */
let elsewhere: net.Server

beforeAll(async () => {
  ;[db, certs] = await Promise.all([startMariaDb({ tls: true, databases: ["appdb", "otherdb", "fardb"] }), makeCerts()])
  elsewhere = net.createServer((c) => {
    const b = net.connect(db.port, "127.0.0.1")
    for (const s of [c, b]) s.on("error", () => {})
    c.pipe(b).pipe(c)
  })
  await new Promise<void>((r) => elsewhere.listen(0, "127.0.0.1", r))
  // TLS to the backend, so that its REQUIRE SSL user (the other user below) can log in through the proxy.
  const tlsTo = (port: number) => ({ endpoint: `127.0.0.1:${port}`, metadata: { tls: { ca: db.certs!.ca.cert } } })
  proxy = await startTestProxy({
    listeners: {
      mysql: {
        host: "127.0.0.1",
        port: 0,
        tls: { cert: certs.server.certPath, key: certs.server.keyPath },
        // The mariadb CLI's Ctrl-C logs in without a database.
        defaultRoute: "otherdb"
      }
    },
    routes: {
      appdb: tlsTo(db.port),
      otherdb: tlsTo(db.port),
      fardb: tlsTo((elsewhere.address() as net.AddressInfo).port)
    },
    ssrf: { allow: ["127.0.0.0/8"] }
  })
  const c = await mysql.createConnection(direct())
  await c.query("CREATE TABLE loaded (t TEXT)")
  await c.end()
})

afterAll(async () => {
  await proxy?.stop()
  elsewhere?.close()
  await db?.stop()
})

const direct = (extra: mysql.ConnectionOptions = {}) => mariadbOptions(db, extra)

const quiet = (c: mysql.Connection) => {
  // A session the server ends emits `error` when no command waits: expected here.
  c.on("error", () => {})
  return c
}

/** A session through the proxy: its `threadId` is the proxy's id. */
const connect = async (extra: mysql.ConnectionOptions = {}) =>
  quiet(await mysql.createConnection(direct({ port: proxy.port("mysql"), ...extra })))

const connectDirect = async (extra: mysql.ConnectionOptions = {}) => quiet(await mysql.createConnection(direct(extra)))

/** MariaDB's REQUIRE SSL account: another user with the same rights on the same databases. */
const otherUser = () => ({ user: db.tlsUser, password: db.tlsPassword })

const backendIdOf = async (c: mysql.Connection) => {
  const [rows] = await c.query<mysql.RowDataPacket[]>("SELECT CONNECTION_ID() AS id")
  return Number(rows[0]!.id)
}

/** The backend's own view: its sessions of user app, and what each runs. */
const processlist = async () => {
  const admin = await connectDirect()
  try {
    const [rows] = await admin.query<mysql.RowDataPacket[]>("SELECT ID, INFO FROM information_schema.PROCESSLIST")
    return new Map(rows.map((r) => [Number(r.ID), (r.INFO as string | null) ?? ""]))
  } finally {
    await admin.end()
  }
}

/** Waits until the backend session `backendId` runs a statement containing `text`. */
const running = (backendId: number, text: string) =>
  eventually(async () => ((await processlist()).get(backendId) ?? "").includes(text), 10_000)

const alive = async (c: mysql.Connection) => {
  const [rows] = await c.query<mysql.RowDataPacket[]>("SELECT 1 AS ok")
  return rows[0]!.ok === 1
}

/** A session running SELECT SLEEP(30), once the backend shows it running; `done` settles when the SELECT does. */
const sleeper = async () => {
  const c = await connect()
  const backendId = await backendIdOf(c)
  const done = c.query("SELECT SLEEP(30) AS s").then(
    () => undefined,
    (e: unknown) => e as MysqlError
  )
  await running(backendId, "SLEEP(30)")
  return { c, backendId, done }
}

const require = createRequire(import.meta.url)
const mysql2Internal = (file: string) => require(path.resolve("node_modules/mysql2/lib", file))

/** mysql2 has no API for COM_PROCESS_KILL (libmysqlclient's mysql_kill()): a command of its own sends one. */
const processKill = (c: mysql.Connection, id: number): Promise<void> => {
  const Command = mysql2Internal("commands/command.js")
  const Packet = mysql2Internal("packets/packet.js")
  class ProcessKill extends Command {
    onResult: (e: Error | null) => void
    constructor(onResult: (e: Error | null) => void) {
      super()
      this.onResult = onResult
    }
    start(_: unknown, connection: { writePacket: (p: unknown) => void }) {
      const bytes = Buffer.alloc(9)
      bytes.writeUIntLE(5, 0, 3)
      bytes[4] = 0x0c
      bytes.writeUInt32LE(id, 5)
      connection.writePacket(new Packet(0, bytes, 0, 9))
      return ProcessKill.prototype.answered
    }
    answered() {
      this.onResult(null)
      return null
    }
  }
  return new Promise((resolve, reject) => {
    const core = (c as unknown as { connection: { addCommand: (cmd: unknown) => void } }).connection
    core.addCommand(new ProcessKill((e) => (e ? reject(e) : resolve())))
  })
}

const cliLogin = (port: number) => ["--no-defaults", "-h127.0.0.1", `-P${port}`, `-u${db.user}`, `-p${db.password}`]

const cli = async (...args: string[]) => {
  const { stdout } = await run("mariadb", [...cliLogin(proxy.port("mysql")), "--database=appdb", ...args], {
    timeout: 20_000
  })
  return stdout
}

describe("mysql listener: connection ids", () => {
  it("greets with large ids, one per connection, and leaves CONNECTION_ID() the backend's", async () => {
    const sessions = await Promise.all([connect(), connect(), connect()])
    const ids = sessions.map((c) => c.threadId)
    for (const id of ids) {
      expect(id).toBeGreaterThanOrEqual(2 ** 30)
      expect(id).toBeLessThan(2 ** 31)
    }
    expect(new Set(ids).size).toBe(3)
    for (const c of sessions) {
      const backendId = await backendIdOf(c)
      expect(backendId).toBeLessThan(2 ** 30)
      expect(backendId).not.toBe(c.threadId)
    }
    await Promise.all(sessions.map((c) => c.end()))
    // The CLI shows the greeting's id.
    const shown = Number(/Connection id:\s+(\d+)/.exec(await cli("-e", "status"))![1])
    expect(shown).toBeGreaterThanOrEqual(2 ** 30)
  })
})

describe("mysql listener: KILL <the id the client sees>", () => {
  it("KILL <threadId> from a second connection ends that session and no bystander on the same backend", async () => {
    const target = await connect()
    const bystanders = await Promise.all([connect(), connect({ database: "otherdb" }), connectDirect()])
    const killer = await connect()
    const [targetBackend, ...bystanderBackends] = await Promise.all([target, ...bystanders].map(backendIdOf))
    const gone = ended(target)
    const [ok] = await killer.query<mysql.ResultSetHeader>(`KILL ${target.threadId}`)
    expect(ok.affectedRows).toBe(0)
    await gone
    for (const c of bystanders) expect(await alive(c)).toBe(true)
    expect(await alive(killer)).toBe(true)
    const live = await processlist()
    expect(live.has(targetBackend!)).toBe(false)
    for (const id of bystanderBackends) expect(live.has(id)).toBe(true)
    await Promise.all([...bystanders, killer].map((c) => c.end()))
  })

  it("KILL QUERY <threadId> interrupts its SELECT SLEEP(30) as directly, and the session goes on", async () => {
    const target = await sleeper()
    const killer = await connect({ database: "otherdb" })
    await killer.query(`/* from the pool */ kill  query\n${target.c.threadId};`)
    const e = await target.done
    expect(e?.errno).toBe(1317)
    expect(e?.message).toBe("Query execution was interrupted")
    expect(await alive(target.c)).toBe(true)
    await Promise.all([target.c.end(), killer.end()])
  })

  it("COM_PROCESS_KILL with the proxy's id ends that session; an unknown id is 1094", async () => {
    const target = await connect()
    const killer = await connect()
    const gone = ended(target)
    await processKill(killer, target.threadId)
    await gone
    const e = await errorOf(processKill(killer, target.threadId))
    expect([e.errno, e.message]).toEqual([1094, `Unknown thread id: ${target.threadId}`])
    expect(await alive(killer)).toBe(true)
    await killer.end()
  })

  it("translates a KILL that came over TLS, and the mariadb CLI's KILL", async () => {
    const target = await connect()
    const killer = await connect({ ssl: { ca: certs.ca.cert } })
    const gone = ended(target)
    await killer.query(`KILL CONNECTION ${target.threadId}`)
    await gone
    await killer.end()

    const second = await connect()
    const secondGone = ended(second)
    await cli("-e", `KILL ${second.threadId}`)
    await secondGone
  })

  it("the mariadb CLI's Ctrl-C interrupts its query (its KILL QUERY comes on a login without a database)", async () => {
    const child = spawn("mariadb", [...cliLogin(proxy.port("mysql")), "--database=appdb", "-e", "SELECT SLEEP(30)"])
    let output = ""
    child.stdout.on("data", (d) => (output += d))
    child.stderr.on("data", (d) => (output += d))
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)))
    await eventually(async () => [...(await processlist()).values()].some((q) => q.includes("SLEEP(30)")), 10_000)
    child.kill("SIGINT")
    expect(await exited).toBe(1)
    expect(output).toContain("Ctrl-C -- query killed")
    expect(output).toContain("Query execution was interrupted")
    expect([...(await processlist()).values()].some((q) => q.includes("SLEEP(30)"))).toBe(false)
  })
})

describe("mysql listener: KILL refused in MariaDB's words", () => {
  it("another user's session: 1095, as MariaDB answers that user directly", async () => {
    const target = await connect()
    const targetBackend = await backendIdOf(target)
    const viaProxy = await connect(otherUser())
    const directly = await connectDirect({ ...otherUser(), ssl: { ca: db.certs!.ca.cert } })
    const theirs = await errorOf(directly.query(`KILL ${targetBackend}`))
    const ours = await errorOf(viaProxy.query(`KILL ${target.threadId}`))
    expect([theirs.errno, theirs.sqlState, theirs.message]).toEqual([
      1095,
      "HY000",
      `You are not owner of thread ${targetBackend}`
    ])
    expect([ours.errno, ours.sqlState, ours.message]).toEqual([
      1095,
      "HY000",
      `You are not owner of thread ${target.threadId}`
    ])
    const q = await errorOf(viaProxy.query(`KILL QUERY ${target.threadId}`))
    expect(q.errno).toBe(1095)
    expect(await alive(target)).toBe(true)
    expect(await alive(viaProxy)).toBe(true)
    await Promise.all([target.end(), viaProxy.end(), directly.end()])
  })

  it("an id that names no live session: 1094, as MariaDB answers for a closed one", async () => {
    const closed = await connect()
    const closedId = closed.threadId
    const closedBackend = await backendIdOf(closed)
    await closed.end()
    await eventually(async () => !(await processlist()).has(closedBackend))
    const killer = await connect()
    const directly = await connectDirect()
    const theirs = await errorOf(directly.query(`KILL ${closedBackend}`))
    const ours = await errorOf(killer.query(`KILL ${closedId}`))
    expect([theirs.errno, theirs.sqlState, theirs.message]).toEqual([
      1094,
      "HY000",
      `Unknown thread id: ${closedBackend}`
    ])
    expect([ours.errno, ours.sqlState, ours.message]).toEqual([1094, "HY000", `Unknown thread id: ${closedId}`])
    await Promise.all([killer.end(), directly.end()])
  })

  it("a session on another backend server: 1094, and it goes on", async () => {
    const target = await connect()
    const far = await connect({ database: "fardb" })
    const e = await errorOf(far.query(`KILL ${target.threadId}`))
    expect([e.errno, e.message]).toEqual([1094, `Unknown thread id: ${target.threadId}`])
    expect(await alive(target)).toBe(true)
    await Promise.all([target.end(), far.end()])
  })
})

describe("mysql listener: what the KILL tap leaves alone", () => {
  it("the backend's own ids: KILL CONNECTION_ID() and KILL QUERY <backend id> work as directly", async () => {
    const self = await connect()
    const directSelf = await connectDirect()
    const ours = await errorOf(self.query("KILL CONNECTION_ID()"))
    const theirs = await errorOf(directSelf.query("KILL CONNECTION_ID()"))
    expect([ours.errno, ours.message]).toEqual([theirs.errno, theirs.message])
    expect(ours.errno).toBe(1927)

    const target = await sleeper()
    const killer = await connect()
    await killer.query(`KILL QUERY ${target.backendId}`)
    expect((await target.done)?.errno).toBe(1317)
    await Promise.all([target.c.end(), killer.end()])
  })

  it("LOAD DATA LOCAL contents that look like a KILL of a live session reach the table as sent", async () => {
    const target = await connect()
    const loader = await connect()
    // The file's first packet reads as a COM_QUERY "KILL <id>", but its sequence id says it is no command.
    const contents = `\x03KILL ${target.threadId}`
    await loader.query({
      sql: "LOAD DATA LOCAL INFILE 'k.txt' INTO TABLE loaded FIELDS ESCAPED BY ''",
      infileStreamFactory: () => Readable.from([Buffer.from(contents)])
    })
    const [rows] = await loader.query<mysql.RowDataPacket[]>("SELECT t FROM loaded")
    expect(rows.map((r) => r.t)).toEqual([contents])
    expect(await alive(target)).toBe(true)
    await Promise.all([target.end(), loader.end()])
  })
})

describe("mysql listener: KILL framing and order (a hand-made client)", () => {
  const login = () => rawLogin(proxy.port("mysql"), { user: db.user, password: db.password, database: "appdb" })
  const query = (sql: string) => encodePacket(Buffer.from(`\x03${sql}`), 0)

  it("translates a KILL sent one byte per write", async () => {
    const target = await sleeper()
    const { client } = await login()
    for (const byte of query(`KILL QUERY ${target.c.threadId}`)) {
      client.socket.write(Buffer.from([byte]))
      await new Promise((r) => setTimeout(r, 2))
    }
    const ok: Packet = await client.read(decodePacket)
    expect([ok.sequenceId, ok.payload[0]]).toEqual([1, 0x00])
    expect((await target.done)?.errno).toBe(1317)
    client.socket.destroy()
    await target.c.end()
  })

  it("answers a KILL pipelined behind other commands in its place, each numbered from 1", async () => {
    const { client } = await login()
    const unknown = 2 ** 31 - 1
    client.socket.write(Buffer.concat([query("DO SLEEP(0.3)"), query(`KILL ${unknown}`), query("DO 1")]))
    const answers = [await client.read(decodePacket), await client.read(decodePacket), await client.read(decodePacket)]
    expect(answers.map((p) => [p.sequenceId, p.payload[0]])).toEqual([
      [1, 0x00],
      [1, 0xff],
      [1, 0x00]
    ])
    expect(parseErrPacket(answers[1]!.payload)).toMatchObject({ code: 1094, message: `Unknown thread id: ${unknown}` })
    client.socket.destroy()
  })
})
