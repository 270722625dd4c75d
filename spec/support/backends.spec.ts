// Proves the backend provider with each protocol's real client, so conformance specs can trust what it hands them.
import { Redis } from "ioredis"
import { MongoClient } from "mongodb"
import mysql from "mysql2/promise"
import nodemailer from "nodemailer"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  backendProvider,
  type MariaDbServer,
  type MongoServer,
  type PostgresServer,
  type RedisServer,
  type SmtpSink,
  startMariaDb,
  startMongo,
  startPostgres,
  startRedis,
  startSmtpSink
} from "./backends/index.ts"

const SMTP_AUTH = { user: "mailer", pass: "mail-pass" }
const REDIS_PASSWORD = "redis pass:with/odd@chars"

interface Servers {
  readonly pg: PostgresServer
  readonly pgStrict: PostgresServer
  readonly maria: MariaDbServer
  readonly redis: RedisServer
  readonly smtp: SmtpSink
  readonly mongo: MongoServer
}

let servers: Servers
const stops: Array<() => Promise<void>> = []

/** Starts everything at once; if one start fails, those that did start are still in `stops` for afterAll. */
const startAll = async <T extends Record<string, Promise<{ stop: () => Promise<void> }>>>(
  starting: T
): Promise<{ [K in keyof T]: Awaited<T[K]> }> => {
  const keys = Object.keys(starting)
  const settled = await Promise.allSettled(Object.values(starting))
  for (const result of settled) if (result.status === "fulfilled") stops.push(result.value.stop)
  const failure = settled.find((result) => result.status === "rejected")
  if (failure) throw failure.reason
  return Object.fromEntries(keys.map((key, i) => [key, (settled[i] as PromiseFulfilledResult<unknown>).value])) as {
    [K in keyof T]: Awaited<T[K]>
  }
}

beforeAll(async () => {
  servers = await startAll({
    pg: startPostgres({ tls: true, databases: ["appdb", "otherdb"] }),
    pgStrict: startPostgres({ requireTls: true }),
    maria: startMariaDb({ tls: true }),
    redis: startRedis({ password: REDIS_PASSWORD }),
    smtp: startSmtpSink({ tls: true, auth: SMTP_AUTH }),
    mongo: startMongo()
  })
})

afterAll(async () => {
  await Promise.all(stops.map((stop) => stop()))
})

it("picks one provider for the whole process", async () => {
  const provider = await backendProvider()
  expect(["local", "containers"]).toContain(provider)
  expect(await backendProvider()).toBe(provider)
})

describe("postgres", () => {
  const connect = async (server: PostgresServer, config: pg.ClientConfig): Promise<pg.Client> => {
    const client = new pg.Client({ host: server.host, port: server.port, ...config })
    await client.connect()
    return client
  }
  const tlsTo = (server: PostgresServer, ca = server.certs!.ca.cert) => ({ ca, servername: "localhost" })

  it("logs the app user in with SCRAM-SHA-256 over cleartext TCP", async () => {
    const { pg: server } = servers
    const client = await connect(server, { user: server.user, password: server.userPassword, database: "appdb" })
    try {
      const { rows } = await client.query("select 1 as one, current_user as who, current_database() as db")
      expect(rows).toEqual([{ one: 1, who: "app", db: "appdb" }])
      const ssl = await client.query("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
      expect(ssl.rows[0].ssl).toBe(false)
    } finally {
      await client.end()
    }

    const admin = await connect(server, { user: server.superuser, password: server.password, database: "postgres" })
    try {
      const { rows } = await admin.query(
        "select rolname, rolpassword like 'SCRAM-SHA-256$%' as scram from pg_authid where rolname = 'app'"
      )
      expect(rows).toEqual([{ rolname: "app", scram: true }])
      const dbs = await admin.query(
        "select datname, pg_get_userbyid(datdba) as owner from pg_database where datname = any($1) order by datname",
        [server.databases]
      )
      expect(dbs.rows).toEqual([
        { datname: "appdb", owner: "app" },
        { datname: "otherdb", owner: "app" }
      ])
    } finally {
      await admin.end()
    }
  })

  it("refuses a wrong password", async () => {
    const { pg: server } = servers
    await expect(connect(server, { user: "app", password: "wrong", database: "appdb" })).rejects.toMatchObject({
      code: "28P01"
    })
  })

  it("speaks TLS verified against the test CA", async () => {
    const { pg: server } = servers
    const client = await connect(server, {
      user: server.user,
      password: server.userPassword,
      database: "otherdb",
      ssl: tlsTo(server)
    })
    try {
      const { rows } = await client.query("select ssl, version from pg_stat_ssl where pid = pg_backend_pid()")
      expect(rows[0].ssl).toBe(true)
      expect(rows[0].version).toMatch(/^TLSv1\.[23]$/)
    } finally {
      await client.end()
    }
  })

  it("with requireTls, refuses cleartext and accepts TLS", async () => {
    const { pgStrict: server } = servers
    const login = { user: server.user, password: server.userPassword, database: "appdb" }
    await expect(connect(server, login)).rejects.toThrow(/no encryption/)
    const client = await connect(server, { ...login, ssl: tlsTo(server) })
    try {
      expect((await client.query("select 1 as one")).rows).toEqual([{ one: 1 }])
    } finally {
      await client.end()
    }
  })

  it("is rejected by a client that trusts only the rogue CA", async () => {
    const { pgStrict: server } = servers
    const login = { user: server.user, password: server.userPassword, database: "appdb" }
    await expect(connect(server, { ...login, ssl: tlsTo(server, server.certs!.rogueCa.cert) })).rejects.toThrow(
      /self[- ]signed|unable to (get|verify)/i
    )
  })
})

describe("mariadb", () => {
  it("logs the app user in with mysql_native_password", async () => {
    const { maria: server } = servers
    const conn = await mysql.createConnection({
      host: server.host,
      port: server.port,
      user: server.user,
      password: server.password,
      database: server.databases[0]!
    })
    try {
      const [rows] = await conn.query("select 1 as one, current_user() as who, database() as db")
      expect(rows).toEqual([{ one: 1, who: "app@%", db: "appdb" }])
    } finally {
      await conn.end()
    }
  })

  it("lets the REQUIRE SSL user in over TLS only", async () => {
    const { maria: server } = servers
    const login = { host: server.host, port: server.port, user: server.tlsUser, password: server.tlsPassword }
    await expect(mysql.createConnection(login)).rejects.toMatchObject({ code: "ER_ACCESS_DENIED_ERROR" })
    // mysql2 checks the certificate against the host it dialled, which the server cert names as IP:127.0.0.1.
    const conn = await mysql.createConnection({
      ...login,
      ssl: { ca: server.certs!.ca.cert, rejectUnauthorized: true }
    })
    try {
      const [rows] = await conn.query<mysql.RowDataPacket[]>("show session status like 'Ssl_version'")
      expect(rows[0]?.Value).toMatch(/^TLSv1\.[23]$/)
      const [one] = await conn.query("select 1 as one")
      expect(one).toEqual([{ one: 1 }])
    } finally {
      await conn.end()
    }
  })
})

describe("redis", () => {
  it("answers PING/SET/GET once authenticated", async () => {
    const { redis: server } = servers
    const client = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 0 })
    try {
      await client.connect()
      expect(await client.ping()).toBe("PONG")
      expect(await client.set("polyproxy:key", "value-1")).toBe("OK")
      expect(await client.get("polyproxy:key")).toBe("value-1")
    } finally {
      client.disconnect()
    }
  })

  it("refuses commands without the password", async () => {
    const { redis: server } = servers
    const client = new Redis({
      host: server.host,
      port: server.port,
      lazyConnect: true,
      // RESP2 skips the HELLO handshake, so the refusal comes back as the reply to our own command.
      protocol: 2,
      enableReadyCheck: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null
    })
    try {
      await client.connect()
      await expect(client.ping()).rejects.toThrow(/NOAUTH/)
    } finally {
      client.disconnect()
    }
  })
})

describe("smtp sink", () => {
  const transport = (sink: SmtpSink, auth = SMTP_AUTH) =>
    nodemailer.createTransport({
      host: sink.host,
      port: sink.port,
      secure: false,
      requireTLS: true,
      name: "client.polyproxy.test",
      auth,
      tls: { ca: sink.certs!.ca.cert, servername: "localhost" }
    })

  it("receives a mail sent with STARTTLS and AUTH, with every envelope recipient", async () => {
    const { smtp: sink } = servers
    const before = sink.messages.length
    const info = await transport(sink).sendMail({
      from: "sender@tenant.test",
      to: "to@example.test",
      cc: "cc@example.test",
      bcc: "hidden@example.test",
      subject: "conformance",
      text: "hello through the sink"
    })
    expect(info.accepted).toEqual(["to@example.test", "cc@example.test", "hidden@example.test"])
    expect(sink.messages).toHaveLength(before + 1)
    const message = sink.messages.at(-1)!
    expect(message.from).toBe("sender@tenant.test")
    expect(message.to).toEqual(["to@example.test", "cc@example.test", "hidden@example.test"])
    expect(message.secure).toBe(true)
    expect(message.user).toBe(SMTP_AUTH.user)
    expect(message.ehloName).toBe("client.polyproxy.test")
    const raw = message.data.toString("utf8")
    expect(raw).toMatch(/^Subject: conformance\r$/m)
    expect(raw).toContain("hello through the sink")
    expect(raw).not.toMatch(/^Bcc:/im)
  })

  it("rejects bad credentials", async () => {
    const { smtp: sink } = servers
    await expect(
      transport(sink, { user: SMTP_AUTH.user, pass: "wrong" }).sendMail({
        from: "sender@tenant.test",
        to: "to@example.test",
        text: "x"
      })
    ).rejects.toMatchObject({ code: "EAUTH", responseCode: 535 })
  })

  it("replays a scripted failure reply once", async () => {
    const { smtp: sink } = servers
    const before = sink.messages.length
    sink.rejectNext("rcpt", 550, "No such user here")
    const mail = { from: "sender@tenant.test", to: "nobody@example.test", text: "x" }
    await expect(transport(sink).sendMail(mail)).rejects.toMatchObject({ responseCode: 550 })
    expect(sink.messages).toHaveLength(before)
    await transport(sink).sendMail(mail)
    expect(sink.messages).toHaveLength(before + 1)
  })
})

describe("mongo", () => {
  it("stores and finds a document", async () => {
    const { mongo: server } = servers
    const client = new MongoClient(server.uri, { serverSelectionTimeoutMS: 5_000 })
    try {
      await client.connect()
      const things = client.db("polyproxy").collection<{ name: string; n: number }>("things")
      const inserted = await things.insertOne({ name: "widget", n: 42 })
      expect(inserted.acknowledged).toBe(true)
      const found = await things.findOne({ name: "widget" })
      expect(found).toMatchObject({ _id: inserted.insertedId, name: "widget", n: 42 })
      expect(await things.findOne({ name: "absent" })).toBeNull()
    } finally {
      await client.close()
    }
  })
})
