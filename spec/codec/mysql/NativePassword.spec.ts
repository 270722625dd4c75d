// mysql_native_password's math, checked against a real client's: mysql2's own scramble (lib/auth_41.js, what it sends
// when it logs in) and its server-side check, plus hashes MariaDB's PASSWORD() printed. The login against a real
// MariaDB with an answer made from stage1 alone is in spec/listeners/mysql/userHashes.spec.ts.
import { randomBytes } from "node:crypto"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  mockNativeHash,
  nativeAnswer,
  nativeHashOf,
  nativeStage1,
  parseNativeHash,
  recoverStage1
} from "../../../src/codec/mysql/index.ts"

const require = createRequire(import.meta.url)
const auth41 = require(join(dirname(require.resolve("mysql2")), "lib/auth_41.js")) as {
  /** The answer mysql2 sends: the nonce comes in its two greeting parts (8 + 12 bytes). */
  calculateToken(password: string, scramble1: Buffer, scramble2: Buffer): Buffer
  verifyToken(seed1: Buffer, seed2: Buffer, token: Buffer, doubleSha: Buffer): boolean
  doubleSha1(password: string): Buffer
}
const mysql2Token = (password: string, nonce: Buffer) =>
  auth41.calculateToken(password, nonce.subarray(0, 8), nonce.subarray(8, 20))

const hex = (b: Buffer) => `*${b.toString("hex").toUpperCase()}`
const nonces = fc.uint8Array({ minLength: 20, maxLength: 20 }).map((a) => Buffer.from(a))
const passwords = fc.string({ minLength: 1, maxLength: 40, unit: "grapheme" })

describe("mysql_native_password", () => {
  it("hashes as MariaDB's PASSWORD() does", () => {
    // Printed by MariaDB 10.11: SELECT PASSWORD('pa'), PASSWORD('password'), PASSWORD('pässwörd').
    expect(hex(nativeHashOf(nativeStage1("pa")))).toBe("*65109C8FC01571CB9897AD479FF605F73DCD4752")
    expect(hex(nativeHashOf(nativeStage1("password")))).toBe("*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19")
    expect(hex(nativeHashOf(nativeStage1("pässwörd")))).toBe("*0225EC5004ABB0B8CB557541FE53DE1A5D8CC825")
  })

  it("answers a nonce exactly as mysql2 does, and mysql2's server-side check accepts the answer", () => {
    fc.assert(
      fc.property(passwords, nonces, (password, nonce) => {
        const answer = nativeAnswer(nativeStage1(password), nonce)
        expect(answer).toEqual(mysql2Token(password, nonce))
        expect(auth41.verifyToken(nonce.subarray(0, 8), nonce.subarray(8), answer, auth41.doubleSha1(password))).toBe(
          true
        )
        expect(nativeHashOf(nativeStage1(password))).toEqual(auth41.doubleSha1(password))
      })
    )
  })

  it("recovers stage1 from mysql2's answer, given only the stored hash", () => {
    fc.assert(
      fc.property(passwords, nonces, (password, nonce) => {
        const hash = parseNativeHash(hex(auth41.doubleSha1(password)))!
        expect(recoverStage1(mysql2Token(password, nonce), nonce, hash)).toEqual(nativeStage1(password))
      })
    )
  })

  it("recovers nothing from a wrong password, a changed byte, another nonce or a malformed answer", () => {
    fc.assert(
      fc.property(passwords, passwords, nonces, fc.nat(19), (password, other, nonce, at) => {
        fc.pre(password !== other)
        const hash = nativeHashOf(nativeStage1(password))
        expect(recoverStage1(mysql2Token(other, nonce), nonce, hash)).toBeUndefined()
        const answer = mysql2Token(password, nonce)
        const changed = Buffer.from(answer)
        changed[at] = changed[at]! ^ 0x01
        expect(recoverStage1(changed, nonce, hash)).toBeUndefined()
        const otherNonce = Buffer.from(nonce)
        otherNonce[at] = otherNonce[at]! ^ 0x80
        expect(recoverStage1(answer, otherNonce, hash)).toBeUndefined()
      })
    )
    const hash = nativeHashOf(nativeStage1("pa"))
    const nonce = randomBytes(20)
    const answer = nativeAnswer(nativeStage1("pa"), nonce)
    expect(recoverStage1(answer, nonce, hash)).toEqual(nativeStage1("pa"))
    for (const bad of [Buffer.alloc(0), answer.subarray(0, 19), Buffer.concat([answer, Buffer.from([0])])]) {
      expect(recoverStage1(bad, nonce, hash)).toBeUndefined()
    }
    // A hash that is not 20 bytes (a caller's mistake) checks nothing rather than throwing.
    expect(recoverStage1(answer, nonce, hash.subarray(0, 19))).toBeUndefined()
  })

  it("reads a nonce as its first 20 bytes, so AuthSwitchRequest data with its NUL answers the same", () => {
    const nonce = randomBytes(20)
    const stage1 = nativeStage1("secret")
    const withNul = Buffer.concat([nonce, Buffer.from([0])])
    expect(nativeAnswer(stage1, withNul)).toEqual(nativeAnswer(stage1, nonce))
    expect(recoverStage1(nativeAnswer(stage1, nonce), withNul, nativeHashOf(stage1))).toEqual(stage1)
  })

  it("gives the empty password no stage1, no hash and an empty answer, as mysql2 sends", () => {
    const nonce = randomBytes(20)
    expect(nativeStage1("")).toEqual(Buffer.alloc(0))
    expect(nativeHashOf(nativeStage1(""))).toEqual(Buffer.alloc(0))
    expect(nativeAnswer(nativeStage1(""), nonce)).toEqual(Buffer.alloc(0))
    expect(mysql2Token("", nonce)).toEqual(Buffer.alloc(0))
  })

  it.each([
    ["", "no password"],
    ["invalid", "MariaDB's placeholder for a locked-out root"],
    ["565491d704013245", "an old 16-digit mysql_old_password hash"],
    ["65109C8FC01571CB9897AD479FF605F73DCD4752", "40 digits without the star"],
    ["*65109C8FC01571CB9897AD479FF605F73DCD475", "39 digits"],
    ["*65109C8FC01571CB9897AD479FF605F73DCD47522", "41 digits"],
    ["*65109C8FC01571CB9897AD479FF605F73DCD475G", "a letter past F"],
    [" *65109C8FC01571CB9897AD479FF605F73DCD4752", "a leading space"],
    ["7I21gkknOU0Ve7/F6iz1dghvxwRkY/a2kzIoyN2iKrI", "an ed25519 key"]
  ])("parses no hash from %j (%s)", (text) => {
    expect(parseNativeHash(text)).toBeUndefined()
  })

  it("parses the stored form in either case", () => {
    const bytes = Buffer.from("65109C8FC01571CB9897AD479FF605F73DCD4752", "hex")
    expect(parseNativeHash("*65109C8FC01571CB9897AD479FF605F73DCD4752")).toEqual(bytes)
    expect(parseNativeHash("*65109c8fc01571cb9897ad479ff605f73dcd4752")).toEqual(bytes)
  })

  it("gives an unknown user a stable hash of the right size that no answer of a real password matches", () => {
    const secret = randomBytes(32)
    const mock = mockNativeHash("nobody", secret)
    expect(mock).toHaveLength(20)
    expect(mockNativeHash("nobody", secret)).toEqual(mock)
    expect(mockNativeHash("nobody2", secret)).not.toEqual(mock)
    expect(mockNativeHash("nobody", randomBytes(32))).not.toEqual(mock)
    const nonce = randomBytes(20)
    for (const password of ["", "nobody", "password", "pa"]) {
      expect(recoverStage1(mysql2Token(password, nonce), nonce, mock)).toBeUndefined()
    }
  })
})
