// SecretLookup against real PostgreSQL 15: a role's secret as pg_authid holds it, nothing for roles that cannot log in,
// errors that name no secret, one query per role per ttl (counted by the server: the counting auth query advances a
// sequence), concurrent lookups sharing it, one connection per backend and database, TLS by the route's settings.
import { createHash } from "node:crypto"
import type pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { VettedEndpoint } from "../../../src/domain/Endpoint.ts"
import { SecretLookup, SecretLookupError } from "../../../src/listeners/postgres/pool/secrets.ts"
import { type AuthSettings, authDefaults } from "../../../src/listeners/postgres/pool/settings.ts"
import { type PostgresServer, startPostgres } from "../../support/backends/index.ts"
import { closedPort } from "../../support/net.ts"
import { superuserClient } from "../../support/pgAdmin.ts"

let db: PostgresServer // appdb: the roles below, a lookup function and the counting sequence
let tlsDb: PostgresServer // only hostssl lines: a lookup in clear is refused
let admin: pg.Client
const lookups: Array<SecretLookup> = []

const endpoint = (port: number, host = "127.0.0.1"): VettedEndpoint => ({ host, port, ip: "127.0.0.1", family: 4 })

beforeAll(async () => {
  ;[db, tlsDb] = await Promise.all([startPostgres({ databases: ["appdb"] }), startPostgres({ requireTls: true })])
  admin = await superuserClient(db, "appdb", [
    "CREATE ROLE scram_role LOGIN PASSWORD 'scram-pw'",
    "CREATE ROLE nologin_role NOLOGIN PASSWORD 'nologin-pw'",
    "CREATE ROLE expired_role LOGIN PASSWORD 'expired-pw' VALID UNTIL '2001-01-01'",
    "CREATE ROLE forever_role LOGIN PASSWORD 'forever-pw' VALID UNTIL 'infinity'",
    "CREATE ROLE nopass_role LOGIN",
    "SET password_encryption = 'md5'",
    "CREATE ROLE md5_role LOGIN PASSWORD 'md5-pw'",
    "RESET password_encryption",
    "CREATE SEQUENCE lookups",
    // What hosted PostgreSQL services ship for PgBouncer: a non-superuser login that may only call a SECURITY DEFINER
    // function (search_path pinned) returning PgBouncer's (name, secret) row.
    "CREATE ROLE pooler LOGIN PASSWORD 'pooler-pw'",
    "CREATE SCHEMA pooler",
    `CREATE FUNCTION pooler.lookup(name text, OUT rolname text, OUT secret text) RETURNS record
       LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS
       $$ SELECT rolname::text, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END
          FROM pg_authid WHERE rolname = name AND rolcanlogin $$`,
    "REVOKE ALL ON FUNCTION pooler.lookup(text) FROM PUBLIC",
    "GRANT USAGE ON SCHEMA pooler TO pooler",
    "GRANT EXECUTE ON FUNCTION pooler.lookup(text) TO pooler"
  ])
})

afterAll(async () => {
  for (const l of lookups) l.close()
  await admin?.end()
  await Promise.all([db?.stop(), tlsDb?.stop()])
})

const newLookup = (options?: ConstructorParameters<typeof SecretLookup>[0]) => {
  const l = new SecretLookup(options)
  lookups.push(l)
  return l
}

const superuser = (extra: Partial<AuthSettings> = {}): AuthSettings => ({
  user: "postgres",
  password: db.password,
  query: authDefaults.query,
  database: undefined,
  ttl: 60,
  negativeTtl: 5,
  ...extra
})

/** PgBouncer's default query, plus a sequence step per run: the server counts the queries. */
const counting = (): AuthSettings =>
  superuser({
    query: `SELECT (SELECT nextval('lookups'))::text,
            (SELECT CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END
               FROM pg_authid WHERE rolname = $1 AND rolcanlogin)`
  })

const queriesRun = async (): Promise<number> => {
  const r = await admin.query<{ last_value: string; is_called: boolean }>("SELECT last_value, is_called FROM lookups")
  return r.rows[0]!.is_called ? Number(r.rows[0]!.last_value) : 0
}

const storedSecret = async (role: string): Promise<string> => {
  const r = await admin.query<{ rolpassword: string }>("SELECT rolpassword FROM pg_authid WHERE rolname = $1", [role])
  return r.rows[0]!.rolpassword
}

const rejection = async (p: Promise<unknown>): Promise<SecretLookupError> => {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err
  )
  if (!(e instanceof SecretLookupError)) throw new Error(`expected a SecretLookupError, got ${String(e)}`)
  return e
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe("SecretLookup", () => {
  it("returns a SCRAM role's secret as pg_authid holds it", async () => {
    const secret = await newLookup().lookup(endpoint(db.port), "appdb", "scram_role", superuser())
    expect(secret).toMatch(/^SCRAM-SHA-256\$4096:/)
    expect(secret).toBe(await storedSecret("scram_role"))
  })

  it("returns an md5 role's secret: md5 + md5(password + role)", async () => {
    const secret = await newLookup().lookup(endpoint(db.port), "appdb", "md5_role", superuser())
    expect(secret).toBe(`md5${createHash("md5").update("md5-pwmd5_role").digest("hex")}`)
  })

  it.each([
    ["an unknown role", "no_such_role"],
    ["a NOLOGIN role", "nologin_role"],
    ["an expired role (VALID UNTIL past)", "expired_role"],
    ["a role without a password", "nopass_role"]
  ])("has nothing for %s", async (_, role) => {
    expect(await newLookup().lookup(endpoint(db.port), "appdb", role, superuser())).toBeUndefined()
  })

  it("finds a role valid until infinity", async () => {
    const secret = await newLookup().lookup(endpoint(db.port), "appdb", "forever_role", superuser())
    expect(secret).toBe(await storedSecret("forever_role"))
  })

  it("works through a SECURITY DEFINER function with a login that cannot read pg_authid", async () => {
    const viaFunction = superuser({ user: "pooler", password: "pooler-pw", query: "SELECT * FROM pooler.lookup($1)" })
    const l = newLookup()
    expect(await l.lookup(endpoint(db.port), "appdb", "scram_role", viaFunction)).toBe(await storedSecret("scram_role"))
    expect(await l.lookup(endpoint(db.port), "appdb", "expired_role", viaFunction)).toBeUndefined()
    expect(await l.lookup(endpoint(db.port), "appdb", "no_such_role", viaFunction)).toBeUndefined()
    // The same login with PgBouncer's default query: the server refuses, the lookup rejects.
    const direct = await rejection(
      l.lookup(endpoint(db.port), "appdb", "scram_role", { ...viaFunction, query: authDefaults.query })
    )
    expect(direct.code).toBe("42501")
    expect(direct.message).not.toContain("SCRAM-SHA-256$")
  })

  it("rejects when the lookup login's password is wrong, naming no secret", async () => {
    const e = await rejection(
      newLookup().lookup(endpoint(db.port), "appdb", "scram_role", superuser({ password: "wrong-lookup-pw" }))
    )
    expect(e.code).toBe("28P01")
    expect(e.message).toContain(`on 127.0.0.1:${db.port}/appdb as postgres`)
    for (const secret of ["wrong-lookup-pw", db.password, "scram-pw", "SCRAM-SHA-256$"]) {
      expect(e.message).not.toContain(secret)
    }
  })

  it("rejects when the backend is down, and retries on the next lookup (failures are not cached)", async () => {
    const port = await closedPort()
    const l = newLookup({ timeoutMs: 2000 })
    expect((await rejection(l.lookup(endpoint(port), "appdb", "scram_role", superuser()))).code).toBe("ECONNREFUSED")
    expect((await rejection(l.lookup(endpoint(port), "appdb", "scram_role", superuser()))).code).toBe("ECONNREFUSED")
    expect(l.stats()).toMatchObject({ queries: 2, failures: 2, cached: 0 })
  })

  it("looks up in the client's database unless auth.database names another", async () => {
    const l = newLookup()
    expect((await rejection(l.lookup(endpoint(db.port), "nodb", "scram_role", superuser()))).code).toBe("3D000")
    const secret = await l.lookup(endpoint(db.port), "nodb", "scram_role", superuser({ database: "appdb" }))
    expect(secret).toBe(await storedSecret("scram_role"))
  })

  it("asks the server once per role while the answer is fresh", async () => {
    const l = newLookup()
    const before = await queriesRun()
    const first = await l.lookup(endpoint(db.port), "appdb", "scram_role", counting())
    expect(first).toBe(await storedSecret("scram_role"))
    expect(await l.lookup(endpoint(db.port), "appdb", "scram_role", counting())).toBe(first)
    expect(await queriesRun()).toBe(before + 1)
    // Another role, another database or another backend is another key.
    await l.lookup(endpoint(db.port), "appdb", "md5_role", counting())
    expect(await queriesRun()).toBe(before + 2)
    expect(l.stats()).toMatchObject({ queries: 2, hits: 1, failures: 0, cached: 2 })
  })

  it("sends one query for ten concurrent lookups of a role", async () => {
    const l = newLookup()
    const before = await queriesRun()
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => l.lookup(endpoint(db.port), "appdb", "forever_role", counting()))
    )
    expect(new Set(answers)).toEqual(new Set([await storedSecret("forever_role")]))
    expect(await queriesRun()).toBe(before + 1)
  })

  it("remembers a miss for negativeTtl, then looks again", async () => {
    const l = newLookup()
    const auth = { ...counting(), negativeTtl: 0.5 }
    const before = await queriesRun()
    expect(await l.lookup(endpoint(db.port), "appdb", "late_role", auth)).toBeUndefined()
    await admin.query("CREATE ROLE late_role LOGIN PASSWORD 'late-pw'")
    expect(await l.lookup(endpoint(db.port), "appdb", "late_role", auth)).toBeUndefined()
    expect(await queriesRun()).toBe(before + 1)
    await sleep(700)
    expect(await l.lookup(endpoint(db.port), "appdb", "late_role", auth)).toBe(await storedSecret("late_role"))
    expect(await queriesRun()).toBe(before + 2)
  })

  it("with ttl 0 asks every time, yet still once for concurrent lookups", async () => {
    const l = newLookup()
    const auth = { ...counting(), ttl: 0 }
    const before = await queriesRun()
    await l.lookup(endpoint(db.port), "appdb", "scram_role", auth)
    await l.lookup(endpoint(db.port), "appdb", "scram_role", auth)
    expect(await queriesRun()).toBe(before + 2)
    await Promise.all(Array.from({ length: 5 }, () => l.lookup(endpoint(db.port), "appdb", "scram_role", auth)))
    expect(await queriesRun()).toBe(before + 3)
  })

  it("uses one connection per backend and database, however many roles, and closes it with close()", async () => {
    const l = newLookup()
    // The "secret" this query answers is the server process that ran it.
    const pidQuery = superuser({ query: "SELECT $1::text, pg_backend_pid()::text", ttl: 0 })
    const roles = ["scram_role", "md5_role", "forever_role", "nologin_role", "no_such_role"]
    const pids = await Promise.all(roles.map((role) => l.lookup(endpoint(db.port), "appdb", role, pidQuery)))
    expect(new Set(pids).size).toBe(1)
    const other = await l.lookup(endpoint(db.port), "postgres", "scram_role", pidQuery)
    expect(other).not.toBe(pids[0])
    const open = async () => {
      const r = await admin.query("SELECT pid FROM pg_stat_activity WHERE pid IN ($1, $2)", [pids[0], other])
      return r.rows.length
    }
    expect(await open()).toBe(2)
    l.close()
    await expect(rejection(l.lookup(endpoint(db.port), "appdb", "scram_role", pidQuery))).resolves.toBeInstanceOf(
      SecretLookupError
    )
    for (let i = 0; i < 50 && (await open()) > 0; i++) await sleep(100)
    expect(await open()).toBe(0)
  })

  it("speaks TLS to the backend when the route asks, checking the certificate against the route's host name", async () => {
    const auth: AuthSettings = { ...superuser(), password: tlsDb.password }
    const ca = tlsDb.certs!.ca.cert
    const l = newLookup()
    // The server only has hostssl lines: in clear it refuses the login (28000, no pg_hba.conf entry).
    expect((await rejection(l.lookup(endpoint(tlsDb.port), "appdb", "app", auth))).code).toBe("28000")
    const secret = await l.lookup(endpoint(tlsDb.port, "localhost"), "appdb", "app", auth, {
      ca,
      rejectUnauthorized: true
    })
    expect(secret).toMatch(/^SCRAM-SHA-256\$/)
    // Dialed at the same IP, but named as a host the certificate does not cover: refused (and not answered from the
    // cache filled over the verified connection: TLS settings are part of the key).
    const wrongName = await rejection(
      l.lookup(endpoint(tlsDb.port, "db.example.net"), "appdb", "app", auth, { ca, rejectUnauthorized: true })
    )
    expect(wrongName.code).toBe("ERR_TLS_CERT_ALTNAME_INVALID")
  })
})
