// The proxy authenticates a pooled client itself, as its PostgreSQL would: SCRAM-SHA-256 against the role's secret
// (looked up through the route's `auth` login), or md5 for a role whose secret is an md5 one. A role that does not
// exist (or cannot log in) goes through the same SCRAM exchange with a mock secret and fails with the same words as
// a wrong password, so a client cannot tell which roles exist. What the exchange recovers (SCRAM's ClientKey, or the
// md5 secret) is what the pool logs in to the server with: no password is stored or configured.
import { randomBytes } from "node:crypto"
import type * as net from "node:net"
import * as Effect from "effect/Effect"
import {
  decodeFrontendMessage,
  decodePasswordMessage,
  decodeSaslInitialResponse,
  encodeAuthenticationMd5,
  encodeAuthenticationOk,
  encodeAuthenticationSasl,
  encodeAuthenticationSaslContinue,
  encodeAuthenticationSaslFinal,
  FrontendType,
  MAX_PASSWORD_MESSAGE_LENGTH,
  MAX_SASL_MESSAGE_LENGTH
} from "../../../codec/pg/Authentication.ts"
import { isMd5Secret, md5Check } from "../../../codec/pg/md5.ts"
import {
  INVALID_MECHANISM,
  mockScramSecret,
  parseScramSecret,
  SCRAM_SHA_256,
  type ScramFailure,
  type ScramKeys,
  ScramServer
} from "../../../codec/pg/scram.ts"
import { type ProxyError, proxyError } from "../../../domain/ProxyError.ts"
import { readFrame } from "../../readFrame.ts"
import { fatal, passwordFailed, protocolViolation, refusedAs } from "./answers.ts"

/** What a client's login proved: the keys (SCRAM) or the secret (md5) the pool logs in to the server with. */
export interface ClientCredentials {
  readonly keys?: ScramKeys | undefined
  readonly secret?: string | undefined
}

/**
 * The login's messages to the client that PostgreSQL buffers instead of flushing (NegotiateProtocolVersion,
 * AuthenticationSASLFinal, AuthenticationOk: "need not be sent until we are ready for queries", auth.c): held here
 * and written with the next message — the next authentication request, the welcome (session.ts) or the FATAL that
 * ends the login — in one write, as one flush of PostgreSQL's: each write is a syscall and a wakeup of the client.
 */
export class LoginOutput {
  readonly client: net.Socket
  private held: Buffer | undefined = undefined

  constructor(client: net.Socket) {
    this.client = client
  }

  hold(bytes: Buffer): void {
    this.held = this.held === undefined ? bytes : Buffer.concat([this.held, bytes])
  }

  /** What is held, now the caller's to write first. */
  take(): Buffer | undefined {
    const held = this.held
    this.held = undefined
    return held
  }

  /** A message the client must see now (it answers it), behind what is held. */
  send(bytes: Buffer): void {
    const held = this.take()
    this.client.write(held === undefined ? bytes : Buffer.concat([held, bytes]))
  }

  /** The login ended without a session: what is held goes out ahead of the refusal, as PostgreSQL's FATAL flushes it. */
  flush(): void {
    const held = this.take()
    if (held !== undefined && !this.client.destroyed) this.client.write(held)
  }
}

/** The process's own key for mock secrets: one unknown role gets the same salt every time it is tried. */
const mockKey = randomBytes(32)

const noSasl = [SCRAM_SHA_256]

/**
 * A client that closes instead of answering the request (psql asks for the password only once the server asked,
 * then connects again) leaves as from PostgreSQL: without a word, and logged only at debug.
 */
const gone = (why: string): ProxyError => proxyError("BAD_REQUEST", "client", why, { quiet: true })

/** The next 'p' message's body; another type is PostgreSQL's protocol violation (Terminate: the client leaves). */
const readAnswer = (client: net.Socket, maxLength: number, expected: string) =>
  Effect.gen(function* () {
    const read = yield* Effect.mapError(
      readFrame(client, (buf) => decodeFrontendMessage(buf, maxLength), maxLength + 1),
      (e) => (e.message.startsWith("client ") ? gone(e.message) : protocolViolation(e.message))
    )
    if (read.rest.length > 0) client.unshift(read.rest)
    const type = read.value.type
    if (type === FrontendType.Terminate) {
      return yield* gone("client left during authentication")
    }
    if (type !== FrontendType.Password) {
      return yield* protocolViolation(`expected ${expected} response, got message type ${type.charCodeAt(0)}`)
    }
    // A copy: the frame is a view of the read buffer, and SCRAM keeps parts of it across the next read.
    return Buffer.from(read.value.body)
  })

const scramFailed = (user: string, failure: ScramFailure): ProxyError =>
  failure.code === "28P01"
    ? passwordFailed(user, failure.error)
    : refusedAs(
        "BAD_REQUEST",
        `SCRAM: ${failure.error}${failure.detail === undefined ? "" : ` (${failure.detail})`}`,
        fatal(failure.code, failure.error, failure.detail === undefined ? {} : { detail: failure.detail })
      )

const md5Login = Effect.fnUntraced(function* (out: LoginOutput, user: string, secret: string) {
  const client = out.client
  const salt = randomBytes(4)
  out.send(encodeAuthenticationMd5(salt))
  const body = yield* readAnswer(client, MAX_PASSWORD_MESSAGE_LENGTH, "password")
  const text = decodePasswordMessage(body)
  if (text._tag === "Invalid") return yield* protocolViolation(text.reason)
  if (text.value === "") {
    return yield* refusedAs("FORBIDDEN", "empty password", fatal("28P01", "empty password returned by client"))
  }
  if (!md5Check(secret, salt, text.value)) return yield* passwordFailed(user, "wrong md5 password")
  out.hold(encodeAuthenticationOk())
  return { secret } satisfies ClientCredentials
})

const scramLogin = Effect.fnUntraced(function* (out: LoginOutput, user: string, secret: string | undefined) {
  const client = out.client
  const known = secret === undefined ? undefined : parseScramSecret(secret)
  // Unknown role, NOLOGIN, expired, no password, or a secret of a kind the proxy cannot check: the mock exchange.
  const scram = new ScramServer(known ?? mockScramSecret(user, mockKey))
  out.send(encodeAuthenticationSasl(noSasl))
  const initial = decodeSaslInitialResponse(yield* readAnswer(client, MAX_SASL_MESSAGE_LENGTH, "SASL"))
  if (initial._tag === "Invalid") return yield* protocolViolation(initial.reason)
  if (initial.value.mechanism !== SCRAM_SHA_256) return yield* protocolViolation(INVALID_MECHANISM)
  let clientFirst = initial.value.data
  if (clientFirst === undefined) {
    // No initial response: the server asks for it with an empty SASLContinue.
    out.send(encodeAuthenticationSaslContinue(Buffer.alloc(0)))
    clientFirst = yield* readAnswer(client, MAX_SASL_MESSAGE_LENGTH, "SASL")
  }
  const first = scram.first(clientFirst)
  if (!first.ok) return yield* scramFailed(user, first)
  out.send(encodeAuthenticationSaslContinue(first.serverFirst))
  const final = scram.final(yield* readAnswer(client, MAX_SASL_MESSAGE_LENGTH, "SASL"))
  if (!final.ok) {
    const why =
      final.code !== "28P01"
        ? final.error
        : known === undefined
          ? "no such role, or it cannot log in"
          : "wrong password"
    return yield* scramFailed(user, { ...final, error: why })
  }
  out.hold(Buffer.concat([encodeAuthenticationSaslFinal(final.serverFinal), encodeAuthenticationOk()]))
  return { keys: final.keys } satisfies ClientCredentials
})

/**
 * Authenticates `out.client` as `user` against the role's `secret` (undefined: the role does not exist or cannot log
 * in). Succeeds with AuthenticationOk held in `out` (for the welcome); fails with the FATAL ErrorResponse PostgreSQL
 * would send.
 */
export const authenticateClient = (
  out: LoginOutput,
  user: string,
  secret: string | undefined
): Effect.Effect<ClientCredentials, ProxyError> =>
  secret !== undefined && isMd5Secret(secret) ? md5Login(out, user, secret) : scramLogin(out, user, secret)
