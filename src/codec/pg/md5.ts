// md5 passwords as PostgreSQL stores and checks them. The secret in pg_authid is "md5" + md5(password + user); a
// client proves it knows the secret by answering the server's 4-byte salt with "md5" + md5(hex digits of the secret +
// salt). So the secret alone both checks a client and logs in to a server: no clear password is ever needed.
import { createHash, timingSafeEqual } from "node:crypto"

const md5Hex = (...parts: Uint8Array[]): string => {
  const hash = createHash("md5")
  for (const part of parts) hash.update(part)
  return hash.digest("hex")
}

/** What `CREATE ROLE … PASSWORD` stores under password_encryption = md5. */
export const md5Secret = (user: string, password: string): string =>
  "md5" + md5Hex(Buffer.from(password, "utf8"), Buffer.from(user, "utf8"))

/** PostgreSQL's own test (isMD5): "md5" and 32 lower-case hex digits. */
export const isMd5Secret = (text: string): boolean => /^md5[0-9a-f]{32}$/.test(text)

/** The PasswordMessage text a client sends for `secret` (an md5 secret) and the server's salt. */
export const md5Answer = (secret: string, salt: Uint8Array): string =>
  "md5" + md5Hex(Buffer.from(secret.slice(3), "latin1"), salt)

/** Whether a client's answer proves `secret`, compared in constant time. */
export const md5Check = (secret: string, salt: Uint8Array, answer: string): boolean => {
  const expected = Buffer.from(md5Answer(secret, salt), "latin1")
  const given = Buffer.from(answer, "utf8")
  return given.length === expected.length && timingSafeEqual(given, expected)
}
