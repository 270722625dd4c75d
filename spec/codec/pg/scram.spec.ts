import { createHash, createHmac, randomBytes } from "node:crypto"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  encodeScramSecret,
  mockScramSecret,
  parseScramSecret,
  ScramClient,
  type ScramKeys,
  type ScramSecret,
  ScramServer,
  scramKeysFromPassword,
  scramSecretFromPassword
} from "../../../src/codec/pg/scram.ts"

// RFC 7677 §3: user "user", password "pencil".
const rfc = {
  password: "pencil",
  clientNonce: "rOprNGfwEbeRWgbNEkqO",
  serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
  salt: Buffer.from("W22ZaJ0SNY7soEsUEjb6gQ==", "base64"),
  iterations: 4096,
  clientFirst: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
  serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
  clientFinal:
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
  serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
}
const rfcSecret = scramSecretFromPassword(rfc.password, rfc.salt, rfc.iterations)
const rfcKeys = scramKeysFromPassword(rfc.password, rfc.salt, rfc.iterations)
const bytes = (text: string) => Buffer.from(text, "latin1")
const text = (b: Buffer) => b.toString("latin1")

/** A server past its first step with the RFC's nonces. */
const rfcServer = (secret: ScramSecret = rfcSecret) => {
  const server = new ScramServer(secret, rfc.serverNonce)
  expect(server.first(bytes(rfc.clientFirst))).toMatchObject({ ok: true })
  return server
}

/** A client-final-message with any attributes, signed independently of the code under test. */
const signedFinal = (keys: ScramKeys, clientFirstBare: string, serverFirst: string, withoutProof: string) => {
  const hmac = (key: Buffer, data: string) => createHmac("sha256", key).update(data, "latin1").digest()
  const storedKey = createHash("sha256").update(keys.clientKey).digest()
  const signature = hmac(storedKey, `${clientFirstBare},${serverFirst},${withoutProof}`)
  const proof = Buffer.from(keys.clientKey.map((b, i) => b ^ signature[i]!))
  return bytes(`${withoutProof},p=${proof.toString("base64")}`)
}

describe("ScramServer", () => {
  it("answers the RFC 7677 exchange byte for byte and recovers the client's key", () => {
    const server = new ScramServer(rfcSecret, rfc.serverNonce)
    const first = server.first(bytes(rfc.clientFirst))
    if (!first.ok) throw new Error(first.error)
    expect(text(first.serverFirst)).toBe(rfc.serverFirst)
    const final = server.final(bytes(rfc.clientFinal))
    if (!final.ok) throw new Error(final.error)
    expect(text(final.serverFinal)).toBe(rfc.serverFinal)
    expect(final.keys.clientKey.equals(rfcKeys.clientKey)).toBe(true)
    expect(final.keys.serverKey.equals(rfcKeys.serverKey)).toBe(true)
  })

  it("refuses a proof made with another password as 28P01, without detail", () => {
    const server = rfcServer(scramSecretFromPassword("not pencil", rfc.salt, rfc.iterations))
    expect(server.final(bytes(rfc.clientFinal))).toEqual({
      ok: false,
      code: "28P01",
      error: "password authentication failed"
    })
  })

  it("refuses a final nonce that is not the client's plus ours, in PostgreSQL's words", () => {
    const tampered = rfc.clientFinal.replace("k0,p=", "k1,p=")
    expect(rfcServer().final(bytes(tampered))).toEqual({
      ok: false,
      code: "08P01",
      error: "invalid SCRAM response",
      detail: "Nonce does not match."
    })
    // The client's nonce alone, without the server's part.
    const bare = signedFinal(rfcKeys, "n=user,r=" + rfc.clientNonce, rfc.serverFirst, `c=biws,r=${rfc.clientNonce}`)
    expect(rfcServer().final(bare)).toMatchObject({ ok: false, detail: "Nonce does not match." })
  })

  it("refuses a proof with one bit flipped", () => {
    const proof = Buffer.from(rfc.clientFinal.split(",p=")[1]!, "base64")
    proof[0]! ^= 1
    const flipped = `${rfc.clientFinal.split(",p=")[0]},p=${proof.toString("base64")}`
    expect(rfcServer().final(bytes(flipped))).toMatchObject({ ok: false, code: "28P01" })
  })

  it("accepts 'y' (client supports binding, we offer none) when the final message repeats it", () => {
    const bare = `n=,r=${rfc.clientNonce}`
    const server = new ScramServer(rfcSecret, rfc.serverNonce)
    const first = server.first(bytes(`y,,${bare}`))
    if (!first.ok) throw new Error(first.error)
    const withoutProof = `c=eSws,r=${rfc.clientNonce}${rfc.serverNonce}`
    expect(server.final(signedFinal(rfcKeys, bare, text(first.serverFirst), withoutProof))).toMatchObject({ ok: true })
  })

  it("refuses a channel-binding attribute that does not repeat the gs2 header", () => {
    const refusal = {
      ok: false,
      code: "08P01",
      error: "unexpected SCRAM channel-binding attribute in client-final-message"
    }
    // "n,," then "y,," in the final message, and the other way round.
    expect(rfcServer().final(bytes(rfc.clientFinal.replace("c=biws", "c=eSws")))).toEqual(refusal)
    const server = new ScramServer(rfcSecret, rfc.serverNonce)
    server.first(bytes(`y,,n=user,r=${rfc.clientNonce}`))
    expect(server.final(bytes(rfc.clientFinal))).toEqual(refusal)
    // Binding data a client computed over some TLS channel, which we never offered.
    const bound = rfc.clientFinal.replace("c=biws", "c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws")
    expect(rfcServer().final(bytes(bound))).toEqual(refusal)
  })

  it("refuses channel binding ('p=') when SCRAM-SHA-256-PLUS was not offered, in PostgreSQL's words", () => {
    expect(new ScramServer(rfcSecret).first(bytes("p=tls-server-end-point,,n=,r=abc"))).toEqual({
      ok: false,
      code: "08P01",
      error: "malformed SCRAM message",
      detail:
        "The client selected SCRAM-SHA-256 without channel binding, but the SCRAM message includes channel binding data."
    })
  })

  it("reads client-first-messages as PostgreSQL does, with its refusals", () => {
    const cases: Array<[string, { code: string; error: string; detail?: string } | "ok"]> = [
      ["n,,n=,r=abc", "ok"],
      ["n,,n=anyone,r=abc", "ok"], // the user here is ignored: the startup packet's user is the role
      ["n,,n=,r=", "ok"], // PostgreSQL accepts an empty nonce
      ["n,,n=,r=abc,x=extension,y=", "ok"],
      ["n,,n=,r=abc,", "ok"],
      ["", { code: "08P01", error: "malformed SCRAM message", detail: "The message is empty." }],
      [
        "n,,n=\0,r=abc",
        { code: "08P01", error: "malformed SCRAM message", detail: "Message length does not match input length." }
      ],
      [
        "x,,n=,r=abc",
        { code: "08P01", error: "malformed SCRAM message", detail: `Unexpected channel-binding flag "'x'".` }
      ],
      ["n", { code: "08P01", error: "malformed SCRAM message", detail: `Comma expected, but found character "0x00".` }],
      [
        "n;,n=,r=a",
        { code: "08P01", error: "malformed SCRAM message", detail: `Comma expected, but found character "';'".` }
      ],
      ["n,a=admin,n=,r=abc", { code: "0A000", error: "client uses authorization identity, but it is not supported" }],
      [
        "n,x,n=,r=abc",
        {
          code: "08P01",
          error: "malformed SCRAM message",
          detail: `Unexpected attribute "'x'" in client-first-message.`
        }
      ],
      ["n,,m=ext,n=,r=abc", { code: "0A000", error: "client requires an unsupported SCRAM extension" }],
      [
        "n,,r=abc",
        { code: "08P01", error: "malformed SCRAM message", detail: `Expected attribute "n" but found "'r'".` }
      ],
      [
        "n,,n=",
        { code: "08P01", error: "malformed SCRAM message", detail: `Expected attribute "r" but found "0x00".` }
      ],
      [
        "n,,n=,rabc",
        { code: "08P01", error: "malformed SCRAM message", detail: `Expected character "=" for attribute "r".` }
      ],
      ["n,,n=,r=ab c", { code: "08P01", error: "non-printable characters in SCRAM nonce" }],
      ["n,,n=,r=ab\u00e9", { code: "08P01", error: "non-printable characters in SCRAM nonce" }],
      [
        "n,,n=,r=abc,1=x",
        {
          code: "08P01",
          error: "malformed SCRAM message",
          detail: `Attribute expected, but found invalid character "'1'".`
        }
      ]
    ]
    for (const [message, expected] of cases) {
      const result = new ScramServer(rfcSecret).first(bytes(message))
      if (expected === "ok") expect(result, message).toMatchObject({ ok: true })
      else expect(result, message).toEqual({ ok: false, ...expected })
    }
  })

  it("reads client-final-messages as PostgreSQL does: extensions before the proof are signed, junk refused", () => {
    const nonce = rfc.clientNonce + rfc.serverNonce
    const bare = "n=user,r=" + rfc.clientNonce
    const withExtension = signedFinal(rfcKeys, bare, rfc.serverFirst, `c=biws,r=${nonce},x=extra`)
    expect(rfcServer().final(withExtension)).toMatchObject({ ok: true })
    const malformed = (detail: string) => ({ ok: false, code: "08P01", error: "malformed SCRAM message", detail })
    const cases: Array<[string, object]> = [
      [`c=biws,r=${nonce}`, malformed("Attribute expected, but found end of string.")],
      [`c=biws,r=${nonce},p=AAAA`, malformed("Malformed proof in client-final-message.")],
      [`c=biws,r=${nonce},p=not base64!`, malformed("Malformed proof in client-final-message.")],
      [`${rfc.clientFinal},x`, malformed("Garbage found at the end of client-final-message.")],
      [`r=${nonce},c=biws`, malformed(`Expected attribute "c" but found "'r'".`)],
      ["", malformed("The message is empty.")]
    ]
    for (const [message, expected] of cases) expect(rfcServer().final(bytes(message)), message).toEqual(expected)
    // A trailing comma after the proof is no garbage to PostgreSQL.
    expect(rfcServer().final(bytes(`${rfc.clientFinal},`))).toMatchObject({ ok: true })
  })

  it("takes its two steps once each, in order", () => {
    const server = new ScramServer(rfcSecret, rfc.serverNonce)
    expect(server.final(bytes(rfc.clientFinal))).toMatchObject({ ok: false, code: "08P01" })
    const again = rfcServer()
    expect(again.first(bytes(rfc.clientFirst))).toMatchObject({ ok: false })
    expect(again.final(bytes(rfc.clientFinal))).toMatchObject({ ok: true })
    expect(again.final(bytes(rfc.clientFinal))).toMatchObject({ ok: false })
    // A refused first step ends the exchange.
    const refused = new ScramServer(rfcSecret, rfc.serverNonce)
    expect(refused.first(bytes("bogus"))).toMatchObject({ ok: false })
    expect(refused.final(bytes(rfc.clientFinal))).toMatchObject({ ok: false })
  })

  it("never throws on arbitrary bytes, at either step", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), fc.uint8Array({ maxLength: 160 }), (a, b) => {
        const server = new ScramServer(rfcSecret)
        const first = server.first(Buffer.from(a))
        const final = server.final(Buffer.from(b))
        for (const result of [first, final]) {
          if (!result.ok) expect(result.code).toMatch(/^(08P01|0A000|28P01)$/)
        }
      }),
      { numRuns: 2000 }
    )
    // Mutations of a valid exchange, one byte replaced: refused, unless the message still says the same thing (base64
    // ignores the spare bits of its last character, in PostgreSQL's decoder too).
    const canonical = (message: string) =>
      message.replace(/p=(.*)$/, (_, proof: string) => `p=${Buffer.from(proof, "base64").toString("base64")}`)
    fc.assert(
      fc.property(fc.nat(), fc.integer({ min: 0, max: 255 }), (at, byte) => {
        const final = bytes(rfc.clientFinal)
        final[at % final.length] = byte
        const result = rfcServer().final(final)
        if (result.ok) expect(canonical(text(final))).toBe(canonical(rfc.clientFinal))
      }),
      { numRuns: 1000 }
    )
  })
})

describe("ScramClient", () => {
  it("sends the RFC 7677 messages byte for byte with keys alone, and checks the server's signature", () => {
    const client = new ScramClient(rfcKeys, rfc.clientNonce, "user")
    expect(text(client.first())).toBe(rfc.clientFirst)
    const final = client.final(bytes(rfc.serverFirst))
    if (!final.ok) throw new Error(final.error)
    expect(text(final.clientFinal)).toBe(rfc.clientFinal)
    expect(client.verify(bytes(rfc.serverFinal))).toBe(true)
    expect(client.verify(bytes(rfc.serverFinal.replace("v=6", "v=7")))).toBe(false)
    expect(client.verify(bytes("e=invalid-proof"))).toBe(false)
    expect(client.verify(bytes("v=AAAA"))).toBe(false)
  })

  it("sends libpq's empty user by default, escaping names as saslname", () => {
    expect(text(new ScramClient(rfcKeys, "abc").first())).toBe("n,,n=,r=abc")
    expect(text(new ScramClient(rfcKeys, "abc", "a=b,c").first())).toBe("n,,n=a=3Db=2Cc,r=abc")
  })

  it("refuses a server-first-message that does not extend its nonce or is malformed", () => {
    const client = () => new ScramClient(rfcKeys, rfc.clientNonce)
    const mismatch = { ok: false, code: "08P01", error: "invalid SCRAM response (nonce mismatch)" }
    expect(client().final(bytes("r=other,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"))).toEqual(mismatch)
    expect(client().final(bytes(`r=${rfc.clientNonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`))).toEqual(mismatch)
    const nonce = rfc.clientNonce + rfc.serverNonce
    for (const message of [
      `r=${nonce},s=***,i=4096`,
      `r=${nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0`,
      `r=${nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096x`,
      `r=${nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,x=1`,
      `r=${nonce},i=4096`,
      ""
    ]) {
      expect(client().final(bytes(message)), message).toMatchObject({ ok: false, error: "malformed SCRAM message" })
    }
    expect(client().verify(bytes(rfc.serverFinal))).toBe(false) // nothing to verify before final
  })

  it("never throws on arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 160 }), fc.uint8Array({ maxLength: 80 }), (a, b) => {
        const client = new ScramClient(rfcKeys)
        client.final(Buffer.from(a))
        expect(typeof client.verify(Buffer.from(b))).toBe("boolean")
      }),
      { numRuns: 1000 }
    )
  })
})

describe("pass-through: ScramServer ↔ ScramClient", () => {
  it("recovers a client's keys and logs in elsewhere with them alone", () => {
    const password = randomBytes(12).toString("base64")
    const secret = scramSecretFromPassword(password)
    // A client that knows the password, against the proxy holding the secret.
    const proxy = new ScramServer(secret)
    const user = new ScramClient(scramKeysFromPassword(password, secret.salt, secret.iterations))
    const first = proxy.first(user.first())
    if (!first.ok) throw new Error(first.error)
    const answer = user.final(first.serverFirst)
    if (!answer.ok) throw new Error(answer.error)
    const final = proxy.final(answer.clientFinal)
    if (!final.ok) throw new Error(final.error)
    expect(user.verify(final.serverFinal)).toBe(true)
    // The proxy, with the recovered keys only, against a server holding the same secret (fresh nonces).
    const backend = new ScramServer(secret)
    const proxyAsClient = new ScramClient(final.keys)
    const backendFirst = backend.first(proxyAsClient.first())
    if (!backendFirst.ok) throw new Error(backendFirst.error)
    const proxyAnswer = proxyAsClient.final(backendFirst.serverFirst)
    if (!proxyAnswer.ok) throw new Error(proxyAnswer.error)
    const backendFinal = backend.final(proxyAnswer.clientFinal)
    if (!backendFinal.ok) throw new Error(backendFinal.error)
    expect(proxyAsClient.verify(backendFinal.serverFinal)).toBe(true)
  })

  it("fails a wrong password at the final step, after the same first step", () => {
    const secret = scramSecretFromPassword("right")
    const server = new ScramServer(secret)
    const client = new ScramClient(scramKeysFromPassword("wrong", secret.salt, secret.iterations))
    const first = server.first(client.first())
    if (!first.ok) throw new Error(first.error)
    const answer = client.final(first.serverFirst)
    if (!answer.ok) throw new Error(answer.error)
    expect(server.final(answer.clientFinal)).toMatchObject({ ok: false, code: "28P01" })
  })
})

describe("mockScramSecret", () => {
  const serverSecret = randomBytes(32)

  it("is the same for one user every time and differs between users and between processes", () => {
    const a = mockScramSecret("ghost", serverSecret)
    expect(mockScramSecret("ghost", serverSecret)).toEqual(a)
    expect(a.salt).toHaveLength(16)
    expect(a.iterations).toBe(4096)
    expect(mockScramSecret("ghost2", serverSecret).salt.equals(a.salt)).toBe(false)
    expect(mockScramSecret("ghost", randomBytes(32)).salt.equals(a.salt)).toBe(false)
  })

  it("runs the whole exchange, then fails like a wrong password, even with a proof that would verify", () => {
    const keys = scramKeysFromPassword("pw", randomBytes(16), 4096)
    const server = new ScramServer(mockScramSecret("ghost", serverSecret))
    const client = new ScramClient(keys)
    const first = server.first(client.first())
    if (!first.ok) throw new Error(first.error)
    expect(text(first.serverFirst)).toContain(`,s=${mockScramSecret("ghost", serverSecret).salt.toString("base64")},`)
    const answer = client.final(first.serverFirst)
    if (!answer.ok) throw new Error(answer.error)
    expect(server.final(answer.clientFinal)).toEqual({
      ok: false,
      code: "28P01",
      error: "password authentication failed"
    })
    // A real secret marked mock: the right password still fails.
    expect(rfcServer({ ...rfcSecret, mock: true }).final(bytes(rfc.clientFinal))).toMatchObject({ code: "28P01" })
  })
})

describe("secrets and keys", () => {
  it("parses and re-encodes a pg_authid secret", () => {
    const encoded = encodeScramSecret(rfcSecret)
    expect(encoded).toMatch(/^SCRAM-SHA-256\$4096:W22ZaJ0SNY7soEsUEjb6gQ==\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=$/)
    expect(parseScramSecret(encoded)).toEqual(rfcSecret)
  })

  it("refuses anything but a well-formed SCRAM-SHA-256 secret", () => {
    const [storedKey, serverKey] = encodeScramSecret(rfcSecret).split("$")[2]!.split(":")
    for (const bad of [
      "md5d2e8cd6be1d5a6ad4b1b0b2b1fe5c9d5",
      "",
      "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==",
      `SCRAM-SHA-1$4096:W22ZaJ0SNY7soEsUEjb6gQ==$${storedKey}:${serverKey}`,
      `SCRAM-SHA-256$0:W22ZaJ0SNY7soEsUEjb6gQ==$${storedKey}:${serverKey}`,
      `SCRAM-SHA-256$-1:W22ZaJ0SNY7soEsUEjb6gQ==$${storedKey}:${serverKey}`,
      `SCRAM-SHA-256$4096:***$${storedKey}:${serverKey}`,
      `SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$AAAA:${serverKey}`,
      `SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$${storedKey}:${serverKey}:extra`,
      `SCRAM-SHA-256$99999999999:W22ZaJ0SNY7soEsUEjb6gQ==$${storedKey}:${serverKey}`
    ]) {
      expect(parseScramSecret(bad), bad).toBeUndefined()
    }
  })

  it("prepares non-ASCII passwords with SASLprep (RFC 4013 examples) and leaves ASCII alone", () => {
    const keys = (password: string) => scramKeysFromPassword(password, rfc.salt, 1).clientKey.toString("hex")
    expect(keys("I\u00adX")).toBe(keys("IX")) // soft hyphen mapped to nothing
    expect(keys("\u2168")).toBe(keys("IX")) // NFKC
    expect(keys("a\u00a0b")).toBe(keys("a b")) // non-ASCII space
    expect(keys("a\tb")).not.toBe(keys("a b"))
  })
})
