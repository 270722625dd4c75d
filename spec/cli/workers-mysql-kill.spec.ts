// `workers: 2` and MySQL KILL: each worker hands out its own share of connection ids (never one the other hands out),
// and a KILL that lands on the other worker than its target still ends that session, through the primary's table.
import mysql from "mysql2/promise"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type MariaDbServer, startMariaDb } from "../support/backends/index.ts"
import { type CliProxy, startCliProxy } from "../support/cliProxy.ts"
import { mariadbOptions, workerOf } from "../support/mysql.ts"
import { eventually } from "../support/proxy.ts"

let db: MariaDbServer
let proxy: CliProxy

beforeAll(async () => {
  db = await startMariaDb({ databases: ["appdb"] })
  proxy = await startCliProxy(`workers: 2
admin: { host: 127.0.0.1, port: 0 }
listeners:
  mysql: { host: 127.0.0.1, port: 0 }
routes:
  appdb: "127.0.0.1:${db.port}"
ssrf: { allow: ["127.0.0.0/8"] }
log: { format: json }
`)
  // Both workers listen before the spec counts on connections reaching both.
  await eventually(() => proxy.output().split('"event":"listening"').length > 2, 20_000)
})

afterAll(async () => {
  proxy?.stop()
  await db?.stop()
})

const connect = async () => {
  const c = await mysql.createConnection(mariadbOptions(db, { port: proxy.port("mysql") }))
  c.on("error", () => {})
  return c
}

describe("workers: 2, MySQL KILL", () => {
  it("ends a session from a connection the other worker accepted", async () => {
    const sessions: mysql.Connection[] = []
    // The kernel spreads connections over the workers (SO_REUSEPORT): open until both have greeted some.
    await eventually(async () => {
      sessions.push(await connect())
      return new Set(sessions.map(workerOf)).size === 2
    }, 20_000)
    const ids = sessions.map((c) => c.threadId)
    expect(new Set(ids).size).toBe(ids.length)
    const target = sessions[0]!
    const killer = sessions.find((c) => workerOf(c) !== workerOf(target))!
    const gone = new Promise<void>((resolve) =>
      (target as unknown as { connection: { stream: NodeJS.EventEmitter } }).connection.stream.once("close", resolve)
    )
    await killer.query(`KILL ${target.threadId}`)
    await gone
    // Once the other worker has told the primary that session is gone, its id is unknown, in MariaDB's words.
    const killAgain = () =>
      killer.query(`KILL QUERY ${target.threadId}`).then(
        () => undefined,
        (x: unknown) => x as Error & { errno?: number }
      )
    const unknown = `Unknown thread id: ${target.threadId}`
    await eventually(async () => (await killAgain())?.message === unknown)
    expect((await killAgain())?.errno).toBe(1094)
    await Promise.all(sessions.filter((c) => c !== target).map((c) => c.end()))
  })
})
