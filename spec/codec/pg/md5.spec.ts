import { describe, expect, it } from "vitest"
import { isMd5Secret, md5Answer, md5Check, md5Secret } from "../../../src/codec/pg/md5.ts"

// RFC 1321 §A.5 test suite digests, so the construction is checked against numbers not computed by the code itself.
const RFC1321 = {
  empty: "d41d8cd98f00b204e9800998ecf8427e",
  abc: "900150983cd24fb0d6963f7d28e17f72",
  alphabet: "c3fcd3d76192e4007dfb496cca67e13b"
}

describe("md5 secrets", () => {
  it("hashes the password followed by the user name", () => {
    expect(md5Secret("c", "ab")).toBe(`md5${RFC1321.abc}`)
    expect(md5Secret("", "")).toBe(`md5${RFC1321.empty}`)
    expect(md5Secret("app", "pw")).not.toBe(md5Secret("other", "pw"))
  })

  it("answers a salt with the hash of the secret's hex digits followed by the salt", () => {
    expect(md5Answer("md5abcdefghijklmnopqrstuv", Buffer.from("wxyz"))).toBe(`md5${RFC1321.alphabet}`)
  })

  it("recognises the secrets PostgreSQL would", () => {
    expect(isMd5Secret(md5Secret("app", "pw"))).toBe(true)
    expect(isMd5Secret(`md5${RFC1321.abc.toUpperCase()}`)).toBe(false)
    expect(isMd5Secret(`md5${RFC1321.abc}0`)).toBe(false)
    expect(isMd5Secret("SCRAM-SHA-256$4096:c2FsdA==$a:b")).toBe(false)
    expect(isMd5Secret("")).toBe(false)
  })

  it("checks an answer against the secret and the salt it was made for", () => {
    const secret = md5Secret("app", "correct horse")
    const salt = Buffer.from([1, 2, 3, 4])
    const answer = md5Answer(secret, salt)
    expect(answer).toMatch(/^md5[0-9a-f]{32}$/)
    expect(md5Check(secret, salt, answer)).toBe(true)
    expect(md5Check(secret, Buffer.from([1, 2, 3, 5]), answer)).toBe(false)
    expect(md5Check(md5Secret("app", "battery staple"), salt, answer)).toBe(false)
    expect(md5Check(secret, salt, answer.toUpperCase())).toBe(false)
    expect(md5Check(secret, salt, answer.slice(0, -1))).toBe(false)
    expect(md5Check(secret, salt, `${answer}0`)).toBe(false)
    expect(md5Check(secret, salt, "")).toBe(false)
    expect(md5Check(secret, salt, "md5" + "é".repeat(32))).toBe(false)
  })
})
