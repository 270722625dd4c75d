// The proxy's own login exchange with a client of a listener with `auth` (logins checked by the proxy): the greeting
// identify sent carries the proxy's nonce; the client's HandshakeResponse41 answers it. The answer must be
// mysql_native_password's, SHA1(pw) XOR SHA1(nonce + SHA1(SHA1(pw))): checked against the user's stored hash (read
// through the `auth` login, userHashes.ts), it gives back SHA1(pw), "stage1", with which the proxy answers any
// server's nonce as that user (NativePassword.ts). A client that answered with another plugin (MySQL 8 clients'
// caching_sha2_password, MariaDB's client_ed25519, ...) is asked to switch to mysql_native_password with an
// AuthSwitchRequest, as a MariaDB server asks a client whose plugin is not the account's. MariaDB 10.11 puts the
// greeting's nonce in that switch; the proxy draws a fresh one, which every client takes the same way and which no
// answer sent so far was computed from.
//
// Refusals read as MariaDB's own (captured from 10.11): ERR 1045 (28000) "Access denied for user 'u'@'h' (using
// password: YES)" for a wrong password and for an unknown user alike, "NO" when the client sent an empty answer (no
// password). An unknown user is checked against a mock hash (mockNativeHash), so it costs what a wrong password costs
// and the client cannot tell which users exist; accounts with another plugin or no password are refused the same
// way (userHashes.ts answers "no such user" for them). The detail (which of those it was) goes to the log line only.
// A lookup that cannot be made (the users' backend down, the lookup login refused) is refused with 2003 (HY000), the
// code clients and pools read as "cannot reach the server, retry later", rather than 1045, which would tell a user
// with the right password that it is wrong and make tools stop retrying.
import { randomBytes } from "node:crypto"
import type * as net from "node:net"
import * as Effect from "effect/Effect"
import {
  AuthPlugin,
  decodePacket,
  encodeAuthSwitchRequest,
  encodeErrPacket,
  encodePacket,
  type HandshakeResponse41,
  mockNativeHash,
  nextSequenceId,
  recoverStage1,
  SCRAMBLE_LENGTH
} from "../../codec/mysql/index.ts"
import { type ProxyError, proxyError } from "../../domain/ProxyError.ts"
import { readFrame } from "../readFrame.ts"
import { nextServerSequence } from "./errPacket.ts"
import type { UserRecord } from "./proxyAuth/userHashes.ts"

/** A nonce as MySQL makes them: 7-bit, no NUL and no '$', since some clients treat it as a C string. */
export const newScramble = (): Buffer => {
  const bytes = randomBytes(SCRAMBLE_LENGTH)
  for (let i = 0; i < bytes.length; i++) {
    let b = bytes[i]! & 0x7f
    if (b === 0 || b === 0x24) b++
    bytes[i] = b
  }
  return bytes
}

/** The process's key for mock hashes: one unknown user gets the same mock every time it is tried. */
const mockKey = randomBytes(32)

const nul = Buffer.from([0])

/** An AuthSwitchResponse is the plugin's answer alone: 20 bytes for native, a few hundred for any plugin. */
const maxAnswerPayload = 4096

const ER_ACCESS_DENIED_ERROR = 1045

/** Where the client connects from, as the server names it in 1045: the address, IPv4-mapped IPv6 as IPv4. */
export const clientHost = (address: string | undefined): string =>
  address === undefined || address === "" ? "unknown" : address.startsWith("::ffff:") ? address.slice(7) : address

/** MariaDB's words for a refused login, as the ERR payload the client reads (no ref: the server has none). */
export const accessDenied = (user: string, host: string, withPassword: boolean): Buffer =>
  encodeErrPacket({
    code: ER_ACCESS_DENIED_ERROR,
    sqlState: "28000",
    message: `Access denied for user '${user}'@'${host}' (using password: ${withPassword ? "YES" : "NO"})`
  })

/** A refusal answered with MariaDB's 1045 (errPacket.ts sends a `cause` ERR payload as it is); `why` is for the log. */
const denied = (user: string, host: string, withPassword: boolean, why: string): ProxyError =>
  proxyError("FORBIDDEN", "client", `access denied for user '${user}'@'${host}': ${why}`, {
    cause: accessDenied(user, host, withPassword)
  })

/** The users' backend could not be asked: the client hears the proxy's words, the log the lookup's. */
export const lookupFailed = (e: unknown): ProxyError =>
  proxyError("CONNECT_FAILED", "backend", e instanceof Error ? e.message : String(e), {
    cause: e,
    clientMessage: "the login could not be checked: the proxy could not read the user's password hash"
  })

/** Where the user's hash comes from (UserHashes.lookup). */
export type LookupUser = (user: string) => Promise<UserRecord | undefined>

export interface LoginExchange {
  readonly client: net.Socket
  readonly response: HandshakeResponse41
  /** The greeting's nonce. */
  readonly nonce: Buffer
  /** Sequence id of the proxy's next packet to the client. */
  readonly toClient: number
  /** The client's address as the server would show it (`clientHost`). */
  readonly host: string
  readonly lookup: LookupUser
}

export interface CheckedLogin {
  readonly user: string
  readonly stage1: Buffer
  /** Sequence id of the proxy's next packet to the client (the login's OK). */
  readonly toClient: number
}

const settle = (lookup: LookupUser, user: string): Promise<UserRecord | undefined | { readonly failed: unknown }> =>
  lookup(user).then(
    (record) => record,
    (failed: unknown) => ({ failed })
  )

/** `answer` (native, over `nonce`) checked against `record`, or against a mock hash when there is no such user. */
export const checkAnswer = (
  user: string,
  answer: Buffer,
  nonce: Buffer,
  record: UserRecord | undefined
): Buffer | undefined => {
  const stage1 = recoverStage1(answer, nonce, record?.hash ?? mockNativeHash(user, mockKey))
  return record === undefined ? undefined : stage1
}

/**
 * The client's login checked, its stage1 recovered; or the refusal (1045 in MariaDB's words, 2003 when the lookup
 * failed). Nothing is answered on success: the login's OK is the caller's (now, or once a server connection is held).
 */
export const checkLogin = Effect.fnUntraced(function* (x: LoginExchange) {
  const { client, response, host } = x
  const user = response.user
  // The lookup runs while the client answers the switch (one round trip each, side by side).
  const found = settle(x.lookup, user)
  let answer = response.authResponse
  let nonce = x.nonce
  let toClient = x.toClient
  const plugin = response.authPlugin
  if (plugin !== undefined && plugin !== "" && plugin !== AuthPlugin.NATIVE) {
    nonce = newScramble()
    client.write(encodePacket(encodeAuthSwitchRequest(AuthPlugin.NATIVE, Buffer.concat([nonce, nul])), toClient))
    // A refusal from here on answers the client's AuthSwitchResponse.
    nextServerSequence.set(client, (toClient + 2) & 0xff)
    const read = yield* readFrame(client, (buf) => decodePacket(buf, maxAnswerPayload), maxAnswerPayload + 4)
    if (read.rest.length > 0) {
      return yield* proxyError(
        "BAD_REQUEST",
        "client",
        "data after the auth switch response, before the server answered"
      )
    }
    answer = Buffer.from(read.value.payload)
    toClient = nextSequenceId(read.value)
  }
  const record = yield* Effect.promise(() => found)
  if (record !== undefined && "failed" in record) return yield* lookupFailed(record.failed)
  // MariaDB says "using password: NO" for an empty answer, whatever the account.
  if (answer.length === 0) return yield* denied(user, host, false, "no password given")
  const stage1 = checkAnswer(user, answer, nonce, record)
  if (stage1 === undefined) {
    const why = record === undefined ? "no such user with a mysql_native_password password" : "wrong password"
    return yield* denied(user, host, true, why)
  }
  return { user, stage1, toClient } satisfies CheckedLogin
})
