// A pooled client's login, read message by message and packet by packet from a raw socket, against the same login
// to the real PostgreSQL 15 behind: the proxy sends what PostgreSQL sends, in the same order and in the same
// flushes — AuthenticationSASLFinal (SCRAM), AuthenticationOk, the ParameterStatus messages, BackendKeyData and
// ReadyForQuery in one, NegotiateProtocolVersion with the first authentication request, and AuthenticationOk ahead of
// a FATAL that ends the login after it. The client side is the load harness's login (load/pgLogin.ts).
import * as net from "node:net"
import type pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type LoginStep, PgLogin, type PgRole } from "../../load/pgLogin.ts"
import { encodeStartup } from "../../src/codec/pg/StartupPacket.ts"
import { type PostgresServer, startPostgres } from "../support/backends/index.ts"
import { superuserClient } from "../support/pgAdmin.ts"
import { pooledRoute, startPoolingProxy } from "../support/pgPooling.ts"
import type { TestProxy } from "../support/proxy.ts"

let db: PostgresServer
let admin: pg.Client
let proxy: TestProxy

const md5Role: PgRole = { user: "md5_role", password: "md5-pw" }

beforeAll(async () => {
  db = await startPostgres({ databases: ["appdb"], hba: ["host all md5_role 127.0.0.1/32 md5"] })
  admin = await superuserClient(db, "appdb", [
    "SET password_encryption = 'md5'",
    `CREATE ROLE ${md5Role.user} LOGIN PASSWORD '${md5Role.password}'`,
    "RESET password_encryption"
  ])
  proxy = await startPoolingProxy({
    appdb: pooledRoute(db, { size: 2 }),
    // Routed, but the server has no such database: the pool's login fails after the client's succeeded.
    nodb: pooledRoute(db, { size: 1 })
  })
})

afterAll(async () => {
  await proxy?.stop()
  await admin?.end()
  await db?.stop()
})

/** A message as the specs compare it: its type, an authentication request's code, an error's SQLSTATE. */
const labelOf = (frame: Buffer): string => {
  const type = String.fromCharCode(frame[0]!)
  if (type === "R") return `R${frame.readInt32BE(5)}`
  if (type === "E") return `E${/C([0-9A-Z]{5})\0/.exec(frame.toString("latin1", 5))?.[1] ?? "?"}`
  return type
}

const finished = (step: LoginStep): boolean => "error" in step || step.done

/**
 * Logs in to `port` as `role` and runs SELECT 1 (or stops at an error); resolves with the labels of the messages
 * each packet read completed, up to the login's ReadyForQuery (or its error), a run of ParameterStatus as one "S…".
 */
const loginPackets = (
  port: number,
  role: PgRole,
  database: string,
  startup: { readonly version?: number; readonly extra?: Readonly<Record<string, string>> } = {}
): Promise<{ readonly packets: ReadonlyArray<ReadonlyArray<string>>; readonly end: LoginStep }> =>
  new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1")
    const packets: Array<Array<string>> = []
    const login = new PgLogin(role, (bytes) => socket.write(bytes))
    let pending = Buffer.alloc(0)
    let loggedIn = false
    const done = (end: LoginStep) => {
      socket.destroy()
      resolve({ packets, end })
    }
    socket.on("connect", () =>
      socket.write(encodeStartup({ user: role.user, database, ...startup.extra }, startup.version))
    )
    socket.on("error", reject)
    socket.on("close", () => done({ error: "closed" }))
    socket.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk])
      const labels: Array<string> = []
      if (!loggedIn) packets.push(labels)
      while (pending.length >= 5 && pending.length >= 1 + pending.readInt32BE(1)) {
        const frame = pending.subarray(0, 1 + pending.readInt32BE(1))
        pending = pending.subarray(frame.length)
        const label = labelOf(frame)
        if (!loggedIn && !(label === "S" && labels.at(-1) === "S…")) labels.push(label === "S" ? "S…" : label)
        if (label === "Z") loggedIn = true
        // NegotiateProtocolVersion is no answer the harness's login expects.
        if (label === "v") continue
        const step = login.feed(Buffer.from(frame))
        if (finished(step)) return done(step)
      }
    })
  })

/** The same login through the proxy and straight to PostgreSQL. */
const both = (role: PgRole, database: string, startup?: Parameters<typeof loginPackets>[3]) =>
  Promise.all([
    loginPackets(proxy.port("postgres"), role, database, startup),
    loginPackets(db.port, role, database, startup)
  ])

describe("a pooled client's login, packet by packet", () => {
  it("SCRAM: SASLFinal, AuthenticationOk and the welcome arrive in one packet, as PostgreSQL flushes them", async () => {
    const role = { user: db.user, password: db.userPassword }
    const [mine, real] = await both(role, "appdb")
    expect(mine.end).toEqual({ done: true })
    expect(real.end).toEqual({ done: true })
    expect(mine.packets).toEqual([["R10"], ["R11"], ["R12", "R0", "S…", "K", "Z"]])
    expect(mine.packets).toEqual(real.packets)
  })

  it("md5: AuthenticationOk and the welcome in one packet", async () => {
    const [mine, real] = await both(md5Role, "appdb")
    expect(mine.end).toEqual({ done: true })
    expect(mine.packets).toEqual([["R5"], ["R0", "S…", "K", "Z"]])
    expect(mine.packets).toEqual(real.packets)
  })

  it("NegotiateProtocolVersion goes out with the first authentication request", async () => {
    // Protocol 3.2 and an option neither knows: both answer 3.0 and name the option.
    const startup = { version: (3 << 16) | 2, extra: { "_pq_.spec_option": "on" } }
    const [mine, real] = await both({ user: db.user, password: db.userPassword }, "appdb", startup)
    expect(mine.end).toEqual({ done: true })
    expect(mine.packets).toEqual([["v", "R10"], ["R11"], ["R12", "R0", "S…", "K", "Z"]])
    expect(mine.packets).toEqual(real.packets)
  })

  it("a login that fails after authentication: AuthenticationOk still comes first, then the server's FATAL", async () => {
    const [mine, real] = await both({ user: db.user, password: db.userPassword }, "nodb")
    expect(mine.end).toEqual({ error: "PG_3D000" })
    expect(real.end).toEqual({ error: "PG_3D000" })
    // The proxy writes its refusal apart (a rare path): the messages are PostgreSQL's, the packets may differ.
    expect(mine.packets.flat()).toEqual(["R10", "R11", "R12", "R0", "E3D000"])
    expect(mine.packets.flat()).toEqual(real.packets.flat())
  })
})
