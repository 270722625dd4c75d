// The Node agent's client side of mode postgres-pooled (load/native/pglogin.h in C): a login to a PostgreSQL server
// answering whichever request it sends (SCRAM-SHA-256 without channel binding, md5, cleartext), then `SELECT 1` read
// to its ReadyForQuery. Self-contained on node:crypto, because a Kubernetes agent pod holds only load/agent.ts and
// what it imports (load/k8s/agents-job.yaml). PBKDF2 runs once per role, salt and iteration count (every client of a
// role gets the same ones), so each login costs two HMACs; the state lives only while the login is pending.
import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto"

export interface PgRole {
  readonly user: string
  readonly password: string
}

/** SCRAM keys of a role for one salt and iteration count. */
interface RoleKeys {
  readonly salt: string
  readonly iterations: number
  readonly clientKey: Buffer
  readonly storedKey: Buffer
  readonly serverKey: Buffer
}

const keyCache = new Map<string, RoleKeys>()

const hmac = (key: Buffer, data: string | Buffer): Buffer => createHmac("sha256", key).update(data).digest()

const roleKeys = (role: PgRole, salt: string, iterations: number): RoleKeys => {
  const known = keyCache.get(role.user)
  if (known !== undefined && known.salt === salt && known.iterations === iterations) return known
  const salted = pbkdf2Sync(role.password, Buffer.from(salt, "base64"), iterations, 32, "sha256")
  const clientKey = hmac(salted, "Client Key")
  const keys = {
    salt,
    iterations,
    clientKey,
    storedKey: createHash("sha256").update(clientKey).digest(),
    serverKey: hmac(salted, "Server Key")
  }
  keyCache.set(role.user, keys)
  return keys
}

const frame = (type: string, body: Buffer): Buffer => {
  const head = Buffer.alloc(5)
  head.write(type, 0, "latin1")
  head.writeInt32BE(body.length + 4, 1)
  return Buffer.concat([head, body])
}

const cstring = (text: string): Buffer => Buffer.from(`${text}\0`, "utf8")

const attributes = (text: string): Map<string, string> =>
  new Map(text.split(",").map((part) => [part.slice(0, 1), part.slice(2)] as const))

/** What the login needs from the server's next bytes: nothing yet, done (confirmed), or a failure reason. */
export type LoginStep = { readonly done: boolean } | { readonly error: string }

const MORE: LoginStep = { done: false }
const DONE: LoginStep = { done: true }
const BAD: LoginStep = { error: "BAD_ANSWER" }

export const PG_QUERY = "SELECT 1"

/** One pending login: feed it the server's bytes; it writes its answers through `send`. */
export class PgLogin {
  private readonly role: PgRole
  private readonly send: (bytes: Buffer) => void
  private pending: Buffer = Buffer.alloc(0)
  private clientFirstBare = ""
  private serverSignature: Buffer | undefined
  private verified = false
  private queried = false
  private rows = 0
  private complete = false

  constructor(role: PgRole, send: (bytes: Buffer) => void) {
    this.role = role
    this.send = send
  }

  feed(chunk: Buffer): LoginStep {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk])
    while (this.pending.length >= 5) {
      const length = this.pending.readInt32BE(1)
      if (length < 4 || length > 1 << 20) return BAD
      if (this.pending.length < 1 + length) break
      const type = String.fromCharCode(this.pending[0]!)
      const body = this.pending.subarray(5, 1 + length)
      this.pending = this.pending.subarray(1 + length)
      const step = this.message(type, body)
      if (step !== MORE) return step
    }
    return MORE
  }

  private message(type: string, body: Buffer): LoginStep {
    switch (type) {
      case "R":
        return this.authentication(body)
      case "S":
      case "K":
      case "N":
        return MORE
      case "E": {
        // Fields of a type byte and a NUL-terminated value; the SQLSTATE is field C.
        for (let i = 0; i < body.length && body[i] !== 0; ) {
          const end = body.indexOf(0, i + 1)
          if (end < 0) break
          if (body[i] === 0x43) return { error: `PG_${body.toString("latin1", i + 1, end)}` }
          i = end + 1
        }
        return BAD
      }
      case "Z":
        if (body.length !== 1) return BAD
        if (!this.queried) {
          if (this.serverSignature !== undefined && !this.verified) return BAD
          this.queried = true
          this.send(frame("Q", cstring(PG_QUERY)))
          return MORE
        }
        return body[0] === 0x49 && this.rows === 1 && this.complete ? DONE : BAD
      case "T":
        return this.queried ? MORE : BAD
      case "D":
        if (!this.queried || body.length !== 7 || body.readInt16BE(0) !== 1 || body.readInt32BE(2) !== 1) return BAD
        if (body[6] !== 0x31) return BAD
        this.rows++
        return MORE
      case "C":
        if (!this.queried || body.toString("latin1") !== `${PG_QUERY}\0`) return BAD
        this.complete = true
        return MORE
      default:
        return BAD
    }
  }

  private authentication(body: Buffer): LoginStep {
    if (body.length < 4) return BAD
    const { user, password } = this.role
    switch (body.readInt32BE(0)) {
      case 0:
        return this.serverSignature !== undefined && !this.verified ? BAD : MORE
      case 3:
        this.send(frame("p", cstring(password)))
        return MORE
      case 5: {
        const md5 = (data: Buffer | string) => createHash("md5").update(data).digest("hex")
        const inner = md5(Buffer.from(password + user, "utf8"))
        this.send(frame("p", cstring(`md5${md5(Buffer.concat([Buffer.from(inner), body.subarray(4, 8)]))}`)))
        return MORE
      }
      case 10: {
        if (!body.toString("latin1", 4).split("\0").includes("SCRAM-SHA-256")) return { error: "NO_SCRAM_SHA_256" }
        this.clientFirstBare = `n=,r=${randomBytes(18).toString("base64")}`
        const first = Buffer.from(`n,,${this.clientFirstBare}`)
        const length = Buffer.alloc(4)
        length.writeInt32BE(first.length)
        this.send(frame("p", Buffer.concat([cstring("SCRAM-SHA-256"), length, first])))
        return MORE
      }
      case 11: {
        const serverFirst = body.toString("latin1", 4)
        const a = attributes(serverFirst)
        const nonce = a.get("r") ?? ""
        const iterations = Number(a.get("i"))
        const salt = a.get("s") ?? ""
        if (!nonce.startsWith(this.clientFirstBare.slice(5)) || !Number.isInteger(iterations) || salt === "") {
          return { error: "BAD_SCRAM_CHALLENGE" }
        }
        const keys = roleKeys(this.role, salt, iterations)
        const withoutProof = `c=biws,r=${nonce}`
        const auth = `${this.clientFirstBare},${serverFirst},${withoutProof}`
        const signature = hmac(keys.storedKey, auth)
        const proof = Buffer.from(keys.clientKey.map((b, i) => b ^ signature[i]!))
        this.serverSignature = hmac(keys.serverKey, auth)
        this.send(frame("p", Buffer.from(`${withoutProof},p=${proof.toString("base64")}`)))
        return MORE
      }
      case 12: {
        const v = /^v=([A-Za-z0-9+/=]+)/.exec(body.toString("latin1", 4))
        if (v === null || this.serverSignature === undefined) return BAD
        if (!Buffer.from(v[1]!, "base64").equals(this.serverSignature)) return { error: "BAD_SERVER_SIGNATURE" }
        this.verified = true
        return MORE
      }
      default:
        return { error: "UNSUPPORTED_AUTHENTICATION" }
    }
  }
}
