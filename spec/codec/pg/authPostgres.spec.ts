// SCRAM and md5 against the real things: real `pg` clients prove themselves to a ScramServer holding secrets read from
// a real PostgreSQL 15's pg_authid, ScramClient logs in to that PostgreSQL with the keys recovered from them (the
// proxy's pass-through), and both sides refuse what PostgreSQL refuses, in its words.
import { createHash, randomBytes } from "node:crypto"
import * as net from "node:net"
import * as tls from "node:tls"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  decodeAuthentication,
  decodeFrontendMessage,
  decodePasswordMessage,
  decodeSaslInitialResponse,
  decodeSaslMechanisms,
  decodeSaslResponse,
  encodeAuthenticationMd5,
  encodeAuthenticationOk,
  encodeAuthenticationSasl,
  encodeAuthenticationSaslContinue,
  encodeAuthenticationSaslFinal,
  encodeSaslInitialResponse,
  encodeSaslResponse,
  MAX_PASSWORD_MESSAGE_LENGTH,
  MAX_SASL_MESSAGE_LENGTH
} from "../../../src/codec/pg/Authentication.ts"
import {
  AuthenticationCode,
  type BackendMessage,
  type Decoded,
  decodeBackendMessage,
  decodeErrorFields,
  decodeStartup,
  encodeErrorResponse,
  encodeStartup,
  SSL_ACCEPTED
} from "../../../src/codec/pg/index.ts"
import { isMd5Secret, md5Check, md5Secret } from "../../../src/codec/pg/md5.ts"
import {
  encodeScramSecret,
  mockScramSecret,
  parseScramSecret,
  SCRAM_SHA_256,
  ScramClient,
  type ScramFailure,
  type ScramKeys,
  type ScramSecret,
  ScramServer,
  scramKeysFromPassword
} from "../../../src/codec/pg/scram.ts"
import { type Certs, makeCerts, type PostgresServer, startPostgres } from "../../support/backends/index.ts"
import { listen, message, readFrame, type TestServer } from "./support.ts"

const PREP_PASSWORD = "pä\u00a0ss\u2168" // a non-breaking space and a Roman numeral: SASLprep changes both
const MD5_PASSWORD = "md5-pass"

let db: PostgresServer
let certs: Certs
const secrets = new Map<string, string>()

beforeAll(async () => {
  ;[db, certs] = await Promise.all([startPostgres(), makeCerts()])
  const admin = new pg.Client({
    host: db.host,
    port: db.port,
    user: db.superuser,
    password: db.password,
    database: "postgres"
  })
  await admin.connect()
  try {
    await admin.query(`CREATE ROLE prep LOGIN PASSWORD '${PREP_PASSWORD}'`)
    await admin.query("SET password_encryption = 'md5'")
    await admin.query(`CREATE ROLE md5user LOGIN PASSWORD '${MD5_PASSWORD}'`)
    const rows = await admin.query<{ rolname: string; rolpassword: string }>(
      "SELECT rolname, rolpassword FROM pg_authid WHERE rolname IN ('app', 'prep', 'md5user')"
    )
    for (const row of rows.rows) secrets.set(row.rolname, row.rolpassword)
  } finally {
    await admin.end()
  }
})

afterAll(async () => {
  await db?.stop()
})

const scramSecretOf = (role: string): ScramSecret => {
  const secret = parseScramSecret(secrets.get(role) ?? "")
  if (!secret) throw new Error(`no SCRAM secret for ${role}: ${secrets.get(role)}`)
  return secret
}

/** Reads whole messages off a socket, one `next(decode)` at a time. */
const inbox = (socket: net.Socket) => {
  let buffered = Buffer.alloc(0)
  let closed = false
  let wake = () => {}
  socket.on("data", (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk])
    wake()
  })
  socket.on("close", () => {
    closed = true
    wake()
  })
  socket.resume()
  return async <A>(decode: (b: Buffer) => Decoded<A>): Promise<A> => {
    for (;;) {
      const result = decode(buffered)
      if (result._tag === "Frame") {
        buffered = buffered.subarray(result.size)
        return result.value
      }
      if (result._tag === "Invalid") throw new Error(result.reason)
      if (closed) throw new Error(`connection closed with ${buffered.length} bytes unread`)
      await new Promise<void>((resolve) => (wake = resolve))
    }
  }
}

type Next = ReturnType<typeof inbox>

// ---- The proxy's side toward a real client: a tiny server that speaks only the login. ----

interface Login {
  readonly user: string
  readonly clientFirst: string
  readonly serverFirst: string
  readonly result: { readonly ok: true; readonly keys: ScramKeys } | ScramFailure
}

type Authenticate = (socket: net.Socket, next: Next, user: string) => Promise<void>

const fakeServer = (authenticate: Authenticate): Promise<TestServer> =>
  listen((raw) => {
    void (async () => {
      const opening = await readFrame(raw, (b) => decodeStartup(b))
      let socket = raw
      let startup = opening.result
      let next: Next
      if (startup._tag === "Frame" && startup.value._tag === "SSLRequest") {
        raw.write(SSL_ACCEPTED)
        socket = new tls.TLSSocket(raw, { isServer: true, key: certs.server.key, cert: certs.server.cert })
        next = inbox(socket)
        startup = { _tag: "Frame", value: await next((b) => decodeStartup(b)), size: 0 }
      } else {
        next = inbox(raw)
      }
      if (startup._tag !== "Frame" || startup.value._tag !== "StartupMessage") throw new Error("no StartupMessage")
      await authenticate(socket, next, startup.value.parameters.get("user") ?? "")
    })().catch(() => raw.destroy())
  })

const readyForQuery = message("Z", Buffer.from("I"))

/** What PostgreSQL answers a failed login with (a wrong password and an unknown role look the same). */
const refuse = (socket: net.Socket, user: string, failure: ScramFailure): void => {
  socket.end(
    encodeErrorResponse({
      severity: "FATAL",
      code: failure.code,
      message: failure.code === "28P01" ? `password authentication failed for user "${user}"` : failure.error,
      ...(failure.detail === undefined ? {} : { detail: failure.detail })
    })
  )
}

/** A SCRAM login the way the proxy will run it; each attempt lands in `logins`. */
const scramLogin =
  (secretOf: (user: string) => ScramSecret, logins: Login[]): Authenticate =>
  async (socket, next, user) => {
    socket.write(encodeAuthenticationSasl([SCRAM_SHA_256]))
    const sasl = () => next((b) => decodeFrontendMessage(b, MAX_SASL_MESSAGE_LENGTH))
    const initial = decodeSaslInitialResponse((await sasl()).body)
    if (initial._tag !== "Frame" || initial.value.mechanism !== SCRAM_SHA_256 || !initial.value.data) {
      throw new Error(`unexpected SASLInitialResponse ${JSON.stringify(initial)}`)
    }
    const scram = new ScramServer(secretOf(user))
    const first = scram.first(initial.value.data)
    if (!first.ok) throw new Error(first.error)
    socket.write(encodeAuthenticationSaslContinue(first.serverFirst))
    const result = scram.final(decodeSaslResponse((await sasl()).body))
    logins.push({
      user,
      clientFirst: initial.value.data.toString("latin1"),
      serverFirst: first.serverFirst.toString("latin1"),
      result: result.ok ? { ok: true, keys: result.keys } : result
    })
    if (!result.ok) return refuse(socket, user, result)
    socket.write(
      Buffer.concat([encodeAuthenticationSaslFinal(result.serverFinal), encodeAuthenticationOk(), readyForQuery])
    )
  }

/** Connects a real pg client; resolves with its error, or undefined when it logged in. */
const pgConnect = async (port: number, user: string, password: string, ssl = false, host = "127.0.0.1") => {
  const client = new pg.Client({
    host,
    port,
    user,
    password,
    database: "appdb",
    // Over TLS, pg tells a server that offers no SCRAM-SHA-256-PLUS that it could have bound the channel ("y").
    ...(ssl ? { ssl: { rejectUnauthorized: false }, enableChannelBinding: true } : { ssl: false }),
    connectionTimeoutMillis: 10_000
  })
  client.on("error", () => {})
  try {
    await client.connect()
    return undefined
  } catch (error) {
    return error as Error & { code?: string }
  } finally {
    await client.end().catch(() => {})
  }
}

// ---- The proxy's side toward the real server. ----

const authOf = (m: BackendMessage) => {
  if (m.type !== "R") throw new Error(`expected an authentication request, got '${m.type}'`)
  const result = decodeAuthentication(m.body)
  if (result._tag !== "Frame") throw new Error(result.reason)
  return result.value
}

const errorOf = (m: BackendMessage) => {
  const fields = decodeErrorFields(m.body)
  if (m.type !== "E" || fields._tag !== "Frame") throw new Error(`expected an ErrorResponse, got '${m.type}'`)
  const { C: code, M: error, D: detail } = Object.fromEntries(fields.value.fields)
  return { code, error, ...(detail === undefined ? {} : { detail }) }
}

/** A raw connection to the real server, past the startup: its SASL offer read. */
const openSasl = async (user: string) => {
  const socket = net.connect(db.port, db.host)
  socket.on("error", () => {})
  const next = inbox(socket)
  const backend = () => next((b) => decodeBackendMessage(b))
  socket.write(encodeStartup({ user, database: "appdb" }))
  const offer = authOf(await backend())
  expect(offer.code).toBe(AuthenticationCode.SASL)
  const mechanisms = decodeSaslMechanisms(offer.data)
  if (mechanisms._tag !== "Frame") throw new Error(mechanisms.reason)
  return { socket, backend, mechanisms: mechanisms.value }
}

/** Logs in to the real server with keys alone, as pass-through does, then asks it who we are. */
const loginWithKeys = async (keys: ScramKeys, user: string) => {
  const { socket, backend, mechanisms } = await openSasl(user)
  try {
    const client = new ScramClient(keys)
    socket.write(encodeSaslInitialResponse(SCRAM_SHA_256, client.first()))
    const challenge = authOf(await backend())
    expect(challenge.code).toBe(AuthenticationCode.SASLContinue)
    const answer = client.final(challenge.data)
    if (!answer.ok) throw new Error(answer.error)
    socket.write(encodeSaslResponse(answer.clientFinal))
    const outcome = await backend()
    if (outcome.type === "E") return { mechanisms, error: errorOf(outcome) }
    const final = authOf(outcome)
    expect(final.code).toBe(AuthenticationCode.SASLFinal)
    const verified = client.verify(final.data)
    const ok = authOf(await backend()).code
    // ParameterStatus and BackendKeyData until ReadyForQuery.
    for (let m = await backend(); m.type !== "Z"; m = await backend()) expect(m.type).toMatch(/^[SK]$/)
    socket.write(message("Q", Buffer.from("SELECT current_user\0")))
    let currentUser: string | undefined
    for (let m = await backend(); m.type !== "Z"; m = await backend()) {
      if (m.type === "D") currentUser = m.body.toString("utf8", 6, 6 + m.body.readInt32BE(2))
    }
    socket.end(message("X"))
    return { mechanisms, verified, ok, currentUser }
  } finally {
    socket.destroy()
  }
}

/** pg logs in as app with the right password to a fake server holding app's secret; the login it made. */
const appLogin = async (ssl = false): Promise<{ readonly clientFirst: string; readonly keys: ScramKeys }> => {
  const logins: Login[] = []
  const server = await fakeServer(scramLogin(scramSecretOf, logins))
  try {
    expect(await pgConnect(server.port, "app", db.userPassword, ssl)).toBeUndefined()
  } finally {
    await server.close()
  }
  const [login] = logins
  if (!login?.result.ok) throw new Error(`login failed: ${JSON.stringify(login)}`)
  return { clientFirst: login.clientFirst, keys: login.result.keys }
}

describe("ScramServer with a secret from pg_authid, against a real pg client", () => {
  it("accepts pg's proof and recovers the ClientKey the password gives", async () => {
    const login = await appLogin()
    expect(login.clientFirst).toMatch(/^n,,n=[^,]*,r=/)
    const secret = scramSecretOf("app")
    const expected = scramKeysFromPassword(db.userPassword, secret.salt, secret.iterations)
    expect(login.keys.clientKey.equals(expected.clientKey)).toBe(true)
    expect(login.keys.serverKey.equals(secret.serverKey)).toBe(true)
    expect(createHash("sha256").update(login.keys.clientKey).digest().equals(secret.storedKey)).toBe(true)
  })

  it("accepts pg over TLS, which announces channel-binding support ('y') that we do not offer", async () => {
    expect((await appLogin(true)).clientFirst).toMatch(/^y,,/)
  })

  it("refuses a wrong password and an unknown role exactly as the real server does", async () => {
    const logins: Login[] = []
    const serverSecret = randomBytes(32)
    const server = await fakeServer(
      scramLogin((user) => (secrets.has(user) ? scramSecretOf(user) : mockScramSecret(user, serverSecret)), logins)
    )
    try {
      for (const [user, password] of [
        ["app", "wrong"],
        ["ghost", "anything"]
      ] as const) {
        const ours = await pgConnect(server.port, user, password)
        const real = await pgConnect(db.port, user, password, false, db.host)
        expect(ours?.message).toBe(`password authentication failed for user "${user}"`)
        expect({ message: ours?.message, code: ours?.code }).toEqual({ message: real?.message, code: real?.code })
      }
      // A second attempt for the unknown role is offered the same salt: nothing tells it apart from a real role.
      await pgConnect(server.port, "ghost", "again")
    } finally {
      await server.close()
    }
    const ghosts = logins.filter((l) => l.user === "ghost").map((l) => /,s=([^,]+),/.exec(l.serverFirst)?.[1])
    expect(ghosts).toHaveLength(2)
    expect(ghosts[0]).toBe(ghosts[1])
    expect(logins.map((l) => l.result.ok)).toEqual([false, false, false])
  })
})

describe("ScramClient against the real server", () => {
  it("logs in with the keys recovered from a real client's proof (pass-through), and verifies the server", async () => {
    const login = await appLogin()
    expect(await loginWithKeys(login.keys, "app")).toEqual({
      mechanisms: [SCRAM_SHA_256],
      verified: true,
      ok: AuthenticationCode.Ok,
      currentUser: "app"
    })
  })

  it("is refused with 28P01 when the key is wrong", async () => {
    const secret = scramSecretOf("app")
    const keys = scramKeysFromPassword("not the password", secret.salt, secret.iterations)
    expect(await loginWithKeys(keys, "app")).toMatchObject({
      error: { code: "28P01", error: 'password authentication failed for user "app"' }
    })
  })

  it("derives the same keys as PostgreSQL from a non-ASCII password (SASLprep), and logs in with them", async () => {
    const secret = scramSecretOf("prep")
    expect(encodeScramSecret(secret)).toBe(secrets.get("prep"))
    const keys = scramKeysFromPassword(PREP_PASSWORD, secret.salt, secret.iterations)
    expect(keys.serverKey.equals(secret.serverKey)).toBe(true)
    expect(await loginWithKeys(keys, "prep")).toMatchObject({ verified: true, currentUser: "prep" })
  })
})

describe("ScramServer refuses malformed exchanges in the real server's words", () => {
  /** Sends `clientFirst`, then `clientFinal(serverFirst)` if given, to the real server; the error it ends with. */
  const realRefusal = async (clientFirst: string, clientFinal?: (serverFirst: string) => string) => {
    const { socket, backend } = await openSasl("app")
    try {
      socket.write(encodeSaslInitialResponse(SCRAM_SHA_256, Buffer.from(clientFirst, "latin1")))
      let m = await backend()
      if (m.type === "R" && clientFinal) {
        const serverFirst = authOf(m).data.toString("latin1")
        socket.write(encodeSaslResponse(Buffer.from(clientFinal(serverFirst), "latin1")))
        m = await backend()
      }
      return errorOf(m)
    } finally {
      socket.destroy()
    }
  }

  const ourRefusal = (clientFirst: string, clientFinal?: (serverFirst: string) => string) => {
    const server = new ScramServer(scramSecretOf("app"))
    const first = server.first(Buffer.from(clientFirst, "latin1"))
    if (!first.ok || !clientFinal) return first
    return server.final(Buffer.from(clientFinal(first.serverFirst.toString("latin1")), "latin1"))
  }

  const nonceOf = (serverFirst: string) => /^r=([^,]*)/.exec(serverFirst)?.[1] ?? ""
  const proof = Buffer.alloc(32, 7).toString("base64")
  const cases: Array<[string, string, ((serverFirst: string) => string)?]> = [
    ["empty", ""],
    ["NUL inside", "n,,n=\0,r=abc"],
    ["unknown flag", "x,,n=,r=abc"],
    ["no comma after the flag", "n;,n=,r=abc"],
    ["channel binding not offered", "p=tls-server-end-point,,n=,r=abc"],
    ["authzid", "n,a=admin,n=,r=abc"],
    ["mandatory extension", "n,,m=ext,n=,r=abc"],
    ["no user attribute", "n,,r=abc"],
    ["no '=' after r", "n,,n=,rabc"],
    ["non-printable nonce", "n,,n=,r=ab\u00e9"],
    ["bad extension name", "n,,n=,r=abc,1=x"],
    ["binding flag changed", "n,,n=,r=abc", (sf) => `c=eSws,r=${nonceOf(sf)},p=${proof}`],
    ["nonce not ours", "n,,n=,r=abc", () => `c=biws,r=abcdef,p=${proof}`],
    ["no proof", "n,,n=,r=abc", (sf) => `c=biws,r=${nonceOf(sf)}`],
    ["short proof", "n,,n=,r=abc", (sf) => `c=biws,r=${nonceOf(sf)},p=AAAA`],
    ["garbage after the proof", "n,,n=,r=abc", (sf) => `c=biws,r=${nonceOf(sf)},p=${proof},x`]
  ]

  it.each(cases)("%s", async (_, clientFirst, clientFinal) => {
    const real = await realRefusal(clientFirst, clientFinal)
    expect(ourRefusal(clientFirst, clientFinal)).toEqual({ ok: false, ...real })
  })
})

describe("md5 with a real PostgreSQL and a real pg client", () => {
  it("computes the secret PostgreSQL stores under password_encryption = md5", () => {
    expect(isMd5Secret(secrets.get("md5user") ?? "")).toBe(true)
    expect(md5Secret("md5user", MD5_PASSWORD)).toBe(secrets.get("md5user"))
  })

  it("checks pg's answer to our salt against the secret alone", async () => {
    const secret = md5Secret("md5user", MD5_PASSWORD)
    const answers: boolean[] = []
    const server = await fakeServer(async (socket, next, user) => {
      const salt = randomBytes(4)
      socket.write(encodeAuthenticationMd5(salt))
      const reply = await next((b) => decodeFrontendMessage(b, MAX_PASSWORD_MESSAGE_LENGTH))
      const password = decodePasswordMessage(reply.body)
      const ok = reply.type === "p" && password._tag === "Frame" && md5Check(secret, salt, password.value)
      answers.push(ok)
      if (ok) socket.write(Buffer.concat([encodeAuthenticationOk(), readyForQuery]))
      else refuse(socket, user, { ok: false, code: "28P01", error: "password authentication failed" })
    })
    try {
      expect(await pgConnect(server.port, "md5user", MD5_PASSWORD)).toBeUndefined()
      expect(await pgConnect(server.port, "md5user", "wrong")).toMatchObject({ code: "28P01" })
    } finally {
      await server.close()
    }
    expect(answers).toEqual([true, false])
  })
})
