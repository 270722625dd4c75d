// TLS session resumption on mTLS listeners: clients that cache sessions (mysql2 does by itself, pg when given one)
// must resume with their certificate and keep working. OpenSSL refuses to resume a session whose handshake verified a
// client certificate unless the server's context names its sessions (alert 80, "session id context uninitialized").
import type * as tls from "node:tls"
import mysql from "mysql2/promise"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type MariaDbServer, type PostgresServer, startMariaDb, startPostgres } from "../support/backends/index.ts"
import { type Certs, makeCerts } from "../support/certs.ts"
import { startMtlsProxy, type TestProxy } from "../support/proxy.ts"

let certs: Certs
let postgres: PostgresServer
let mariadb: MariaDbServer
let pgProxy: TestProxy
let mysqlProxy: TestProxy
const subjects: Array<string | undefined> = []

beforeAll(async () => {
  ;[certs, postgres, mariadb] = await Promise.all([makeCerts(), startPostgres(), startMariaDb()])
  ;[pgProxy, mysqlProxy] = await Promise.all([
    startMtlsProxy("postgres", certs, `127.0.0.1:${postgres.port}`, subjects),
    startMtlsProxy("mysql", certs, `127.0.0.1:${mariadb.port}`, subjects)
  ])
})

afterAll(async () => {
  await Promise.all([pgProxy?.stop(), mysqlProxy?.stop()])
  await Promise.all([postgres?.stop(), mariadb?.stop()])
})

interface PgRun {
  readonly rows: Array<unknown>
  readonly reused: boolean
  readonly protocol: string | null
  readonly session: Buffer | undefined
}

/** One pg session through the mTLS proxy: `select 1`, and the TLS session the proxy issued (for the next one). */
const pgSelect = async (tlsOptions: tls.ConnectionOptions): Promise<PgRun> => {
  const client = new pg.Client({
    host: "127.0.0.1",
    port: pgProxy.port("postgres"),
    user: postgres.user,
    password: postgres.userPassword,
    database: "appdb",
    ssl: { ca: certs.ca.cert, cert: certs.client.cert, key: certs.client.key, servername: "localhost", ...tlsOptions }
  })
  const connection = (client as unknown as { connection: NodeJS.EventEmitter & { stream: tls.TLSSocket } }).connection
  let session: Buffer | undefined
  // TLS 1.3 tickets arrive after the handshake: listen from the moment pg has its TLS socket.
  connection.once("sslconnect", () => connection.stream.on("session", (s: Buffer) => (session = s)))
  await client.connect()
  try {
    const r = await client.query("select 1 as ok")
    return {
      rows: r.rows,
      reused: connection.stream.isSessionReused(),
      protocol: connection.stream.getProtocol(),
      session
    }
  } finally {
    await client.end()
  }
}

describe("TLS session resumption with a client certificate", () => {
  for (const maxVersion of ["TLSv1.3", "TLSv1.2"] as const) {
    it(`postgres (${maxVersion}): pg resumes the session it was given and runs its query`, async () => {
      const first = await pgSelect({ maxVersion })
      expect(first).toMatchObject({ rows: [{ ok: 1 }], reused: false, protocol: maxVersion })
      expect(first.session).toBeInstanceOf(Buffer)
      const second = await pgSelect({ maxVersion, session: first.session! })
      expect(second).toMatchObject({ rows: [{ ok: 1 }], reused: true, protocol: maxVersion })
      // The resumed session still carries the client's certificate: the resolver saw who it was.
      expect(subjects.at(-1)).toBe("CN=tenant-client")
    })
  }

  it("mysql: mysql2 caches the session per `ssl` object and its next connection resumes it", async () => {
    const ssl = { ca: certs.ca.cert, cert: certs.client.cert, key: certs.client.key }
    const run = async () => {
      const c = await mysql.createConnection({
        host: "127.0.0.1",
        port: mysqlProxy.port("mysql"),
        user: mariadb.user,
        password: mariadb.password,
        database: "appdb",
        ssl
      })
      try {
        const [rows] = await c.query("select 1 as ok")
        const stream = (c as unknown as { connection: { stream: tls.TLSSocket } }).connection.stream
        return { rows, reused: stream.isSessionReused() }
      } finally {
        await c.end()
      }
    }
    expect(await run()).toEqual({ rows: [{ ok: 1 }], reused: false })
    expect(await run()).toEqual({ rows: [{ ok: 1 }], reused: true })
    expect(subjects.at(-1)).toBe("CN=tenant-client")
  })
})
