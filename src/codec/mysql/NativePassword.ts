// mysql_native_password, both ends of it: what a client answers to a nonce, what the server stores (mysql.user's
// "*" + 40 hex), and the server's check, which also gives back SHA1(password) ("stage1"). Holding stage1, the proxy can
// answer any server's nonce as that user without ever knowing the password (ProxySQL does the same):
//   stage1 = SHA1(password)        hash = SHA1(stage1)        answer = stage1 XOR SHA1(nonce + hash)
//   the check: stage1' = answer XOR SHA1(nonce + hash), then SHA1(stage1') must equal hash.
// Pure (node:crypto only). A nonce is the greeting's 20-byte scramble; a longer buffer (AuthSwitchRequest data with its
// trailing NUL) is cut to 20 bytes, as servers and mysql2 do.
import { createHash, createHmac, timingSafeEqual } from "node:crypto"
import { SCRAMBLE_LENGTH } from "./Protocol.ts"

const sha1 = (...parts: ReadonlyArray<Uint8Array>): Buffer => {
  const h = createHash("sha1")
  for (const p of parts) h.update(p)
  return h.digest()
}

const xor = (a: Buffer, b: Buffer): Buffer => {
  const out = Buffer.allocUnsafe(a.length)
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!
  return out
}

const scramble = (nonce: Buffer): Buffer => nonce.subarray(0, SCRAMBLE_LENGTH)

/** SHA1(password), UTF-8 encoded as clients send it. The empty password has none: an empty buffer. */
export const nativeStage1 = (password: string): Buffer =>
  password === "" ? Buffer.alloc(0) : sha1(Buffer.from(password, "utf8"))

/** SHA1(stage1): the 20 bytes mysql.user stores (as "*" + hex). Empty for the empty password, as the server stores it. */
export const nativeHashOf = (stage1: Buffer): Buffer => (stage1.length === 0 ? Buffer.alloc(0) : sha1(stage1))

const storedHash = /^\*[0-9A-Fa-f]{40}$/

/**
 * The stored form, "*" followed by 40 hex digits (PASSWORD()'s output, mysql.user.authentication_string), as 20 bytes.
 * Undefined for anything else: "" (no password), "invalid", an old 16-digit mysql_old_password hash, another plugin's.
 */
export const parseNativeHash = (text: string): Buffer | undefined =>
  storedHash.test(text) ? Buffer.from(text.slice(1), "hex") : undefined

/** The answer a client sends for `nonce`: stage1 XOR SHA1(nonce + SHA1(stage1)). The empty password answers nothing. */
export const nativeAnswer = (stage1: Buffer, nonce: Buffer): Buffer =>
  stage1.length === 0 ? Buffer.alloc(0) : xor(stage1, sha1(scramble(nonce), sha1(stage1)))

/**
 * The server's check of `answer` against the stored `hash`: the client's stage1 when it knew the password, undefined
 * when not (a wrong password, an empty or malformed answer). Compared in constant time.
 */
export const recoverStage1 = (answer: Buffer, nonce: Buffer, hash: Buffer): Buffer | undefined => {
  if (answer.length !== SCRAMBLE_LENGTH || hash.length !== SCRAMBLE_LENGTH) return undefined
  const stage1 = xor(answer, sha1(scramble(nonce), hash))
  return timingSafeEqual(sha1(stage1), hash) ? stage1 : undefined
}

/**
 * A stand-in hash for a user that does not exist (or cannot log in this way): the login is checked against it all the
 * same, so an unknown user costs what a wrong password costs and is refused with the same words. The same user always
 * gets the same hash from one `serverSecret` (a random per-process key), so repeated tries show no difference either.
 */
export const mockNativeHash = (user: string, serverSecret: Buffer): Buffer =>
  createHmac("sha1", serverSecret).update(user, "utf8").digest()
