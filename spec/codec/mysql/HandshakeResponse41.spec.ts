import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  Capability,
  decodeAttributes,
  decodeClientHandshake,
  encodeAttributes,
  encodeHandshakeResponse41,
  encodePacket,
  encodeSslRequest,
  type HandshakeResponse41,
  parseClientHandshake,
  parseHandshakeResponse41,
  parseSslRequest
} from "../../../src/codec/mysql/index.ts"
import { asMysql2Packet, expectNeedThenFrame, frameOf, mysql2, mysql2Payload, reasonOf } from "./support.ts"

const flags = mysql2.defaultFlags()

/** The HandshakeResponse41 mysql2 itself sends. */
const fromMysql2 = (over: Record<string, unknown> = {}): Buffer =>
  mysql2Payload(
    new mysql2.Packets.HandshakeResponse({
      flags,
      user: "app",
      database: "appdb",
      password: "secret",
      charsetNumber: 224,
      authPluginData1: Buffer.alloc(8, 1),
      authPluginData2: Buffer.alloc(12, 2),
      connectAttributes: { _client_name: "Node-MySQL-2", _pid: "42" },
      authToken: Buffer.alloc(20, 7),
      authPluginName: "mysql_native_password",
      ...over
    }).toPacket()
  )

const base = {
  capabilities: (Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.LONG_PASSWORD) >>> 0,
  maxPacketSize: 1 << 24,
  characterSet: 45,
  user: "app",
  authResponse: Buffer.alloc(20, 9)
}

const parsed = (payload: Buffer): HandshakeResponse41 => {
  const r = parseHandshakeResponse41(payload)
  if (r._tag !== "HandshakeResponse41") throw new Error(r.reason)
  return r
}

describe("HandshakeResponse41", () => {
  it("decodes mysql2's login: user, lenenc auth response, database, plugin and attributes", () => {
    const r = parsed(fromMysql2())
    expect(r).toMatchObject({
      capabilities: flags,
      characterSet: 224,
      user: "app",
      database: "appdb",
      authPlugin: "mysql_native_password",
      mariadbCapabilities: 0
    })
    expect(r.authResponse).toEqual(Buffer.alloc(20, 7))
    const attrs = decodeAttributes(r.attributes!)
    expect(attrs).toEqual({
      _tag: "Attributes",
      pairs: [
        ["_client_name", "Node-MySQL-2"],
        ["_pid", "42"]
      ]
    })
  })

  it("keeps an empty database as mysql2 sends it when none is configured", () => {
    expect(parsed(fromMysql2({ database: undefined })).database).toBe("")
  })

  it("tells mysql2's SSLRequest (32 bytes with CLIENT_SSL) from a login", () => {
    const ssl = mysql2Payload(new mysql2.Packets.SSLRequest((flags | Capability.SSL) >>> 0, 224, 0).toPacket())
    expect(parseClientHandshake(ssl)).toEqual({
      _tag: "SSLRequest",
      capabilities: (flags | Capability.SSL) >>> 0,
      maxPacketSize: 0,
      characterSet: 224,
      mariadbCapabilities: 0
    })
    expect(parseClientHandshake(fromMysql2())._tag).toBe("HandshakeResponse41")
  })

  it("is read back by mysql2's own decoder, with every optional field", () => {
    const caps =
      (base.capabilities |
        Capability.PLUGIN_AUTH |
        Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA |
        Capability.CONNECT_WITH_DB |
        Capability.CONNECT_ATTRS) >>>
      0
    const bytes = encodeHandshakeResponse41({
      ...base,
      capabilities: caps,
      database: "tenant_db",
      authPlugin: "caching_sha2_password",
      attributes: encodeAttributes([["program_name", "polyproxy"]])
    })
    const args = mysql2.Packets.HandshakeResponse.fromPacket(asMysql2Packet(encodePacket(bytes, 1)))
    expect(args).toMatchObject({
      clientFlags: caps | 0,
      user: "app",
      database: "tenant_db",
      authPluginName: "caching_sha2_password",
      connectAttributes: { program_name: "polyproxy" }
    })
    expect(args.authToken).toEqual(base.authResponse)
  })

  it("round-trips under every combination of layout flags (fast-check)", () => {
    const layout = [
      Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA,
      Capability.CONNECT_WITH_DB,
      Capability.PLUGIN_AUTH,
      Capability.CONNECT_ATTRS,
      Capability.ZSTD_COMPRESSION_ALGORITHM
    ]
    fc.assert(
      fc.property(
        fc.subarray(layout),
        fc.string({ maxLength: 20 }).filter((s) => !s.includes("\0")),
        fc.string({ minLength: 1, maxLength: 20 }).filter((s) => !s.includes("\0")),
        fc.uint8Array({ maxLength: 255 }),
        fc.array(fc.tuple(fc.string({ maxLength: 10 }), fc.string({ maxLength: 300 })), { maxLength: 3 }),
        (chosen, user, database, auth, pairs) => {
          const caps = chosen.reduce((a, f) => (a | f) >>> 0, base.capabilities)
          const attributes = encodeAttributes(pairs)
          const r = parsed(
            encodeHandshakeResponse41({
              ...base,
              capabilities: caps,
              user,
              authResponse: auth,
              database,
              authPlugin: "mysql_native_password",
              attributes,
              zstdLevel: 7
            })
          )
          expect(r.user).toBe(user)
          expect(r.authResponse).toEqual(Buffer.from(auth))
          expect(r.database).toBe(caps & Capability.CONNECT_WITH_DB ? database : undefined)
          expect(r.authPlugin).toBe(caps & Capability.PLUGIN_AUTH ? "mysql_native_password" : undefined)
          if (caps & Capability.CONNECT_ATTRS) {
            expect(r.attributes).toEqual(attributes)
            expect(decodeAttributes(r.attributes!)).toEqual({ _tag: "Attributes", pairs })
          } else expect(r.attributes).toBeUndefined()
          expect(r.zstdLevel).toBe(caps & Capability.ZSTD_COMPRESSION_ALGORITHM ? 7 : undefined)
        }
      )
    )
  })

  it("lays out an auth response without CLIENT_SECURE_CONNECTION as a NUL-terminated string", () => {
    const caps = Capability.PROTOCOL_41
    const r = parsed(encodeHandshakeResponse41({ ...base, capabilities: caps, authResponse: Buffer.from("pw") }))
    expect(r.authResponse.toString()).toBe("pw")
  })

  it("answers Need byte by byte, then one frame; two packets in one buffer decode one after the other", () => {
    const ssl = encodePacket(encodeSslRequest({ capabilities: flags, maxPacketSize: 0, characterSet: 45 }), 1)
    const login = encodePacket(fromMysql2(), 2)
    expect(expectNeedThenFrame(login, (b) => decodeClientHandshake(b)).message._tag).toBe("HandshakeResponse41")
    const both = Buffer.concat([ssl, login])
    const first = decodeClientHandshake(both)
    expect(frameOf(first).message._tag).toBe("SSLRequest")
    const second = decodeClientHandshake(both.subarray(first._tag === "Frame" ? first.size : 0))
    expect(frameOf(second)).toMatchObject({ sequenceId: 2, message: { _tag: "HandshakeResponse41", user: "app" } })
  })

  it("refuses pre-4.1 clients, short and malformed responses", () => {
    const old = Buffer.alloc(40)
    old.writeUInt32LE(Capability.LONG_PASSWORD, 0)
    expect(reasonOf(parseClientHandshake(old))).toBe("client does not speak protocol 4.1 (CLIENT_PROTOCOL_41 unset)")
    expect(reasonOf(parseClientHandshake(Buffer.alloc(2)))).toContain("too short")
    const head = fromMysql2().subarray(0, 32)
    expect(reasonOf(parseClientHandshake(head.subarray(0, 20)))).toContain("too short: 20 bytes")
    expect(reasonOf(parseClientHandshake(Buffer.from(head)))).toBe("32-byte handshake response without CLIENT_SSL")
    expect(reasonOf(parseHandshakeResponse41(Buffer.from(head)))).toContain("ends before the user name")
    expect(reasonOf(parseClientHandshake(Buffer.concat([head, Buffer.from("app")])))).toContain("not NUL-terminated")
    expect(reasonOf(parseClientHandshake(Buffer.concat([head, Buffer.from("app\0\x14abc")])))).toContain("cut short")
    expect(reasonOf(parseClientHandshake(Buffer.concat([head, Buffer.from([0xc3, 0x28, 0])])))).toContain("UTF-8")
    const login = fromMysql2()
    // the attribute block claims more than there is
    expect(reasonOf(parseClientHandshake(login.subarray(0, login.length - 5)))).toContain("attributes cut short")
    const twisted = Buffer.from(login)
    twisted[twisted.length - 3] = 0x40 // a key length running past the block
    expect(reasonOf(parseClientHandshake(twisted))).toContain("malformed connection attributes")
  })

  it("asks for MariaDB's extended capabilities by clearing CLIENT_MYSQL, as mysql2 does, and reads them back", () => {
    const bytes = encodeHandshakeResponse41({ ...base, mariadbCapabilities: 0x08 })
    expect(parsed(bytes)).toMatchObject({
      capabilities: (base.capabilities & ~Capability.LONG_PASSWORD) >>> 0,
      mariadbCapabilities: 0x08
    })
    const fromClient = parsed(
      fromMysql2({ flags: flags & ~Capability.LONG_PASSWORD, mariadbExtendedClientFlags: 0x08 })
    )
    expect(fromClient.mariadbCapabilities).toBe(0x08)
    // Without extras CLIENT_MYSQL stays as given and the bytes stay zero.
    expect(parsed(encodeHandshakeResponse41(base))).toMatchObject({ capabilities: base.capabilities })
    expect(encodeHandshakeResponse41(base).readUInt32LE(28)).toBe(0)
  })

  it("refuses to encode an auth response the chosen layout cannot carry", () => {
    expect(() => encodeHandshakeResponse41({ ...base, authResponse: Buffer.alloc(256) })).toThrow(RangeError)
    expect(() =>
      encodeHandshakeResponse41({ ...base, capabilities: Capability.PROTOCOL_41, authResponse: Buffer.from([1, 0]) })
    ).toThrow(RangeError)
  })
})

describe("SSLRequest", () => {
  it("is exactly 32 bytes with CLIENT_SSL and PROTOCOL_41, and reads back", () => {
    const bytes = encodeSslRequest({ capabilities: Capability.LONG_PASSWORD, maxPacketSize: 1 << 24, characterSet: 33 })
    expect(bytes.length).toBe(32)
    expect(parseSslRequest(bytes)).toEqual({
      _tag: "SSLRequest",
      capabilities: (Capability.LONG_PASSWORD | Capability.SSL | Capability.PROTOCOL_41) >>> 0,
      maxPacketSize: 1 << 24,
      characterSet: 33,
      mariadbCapabilities: 0
    })
    expect(reasonOf(parseSslRequest(Buffer.concat([bytes, Buffer.from([0])])))).toContain("must be 32 bytes")
  })

  it("writes MariaDB's extended capabilities with CLIENT_MYSQL cleared", () => {
    const bytes = encodeSslRequest({
      capabilities: Capability.LONG_PASSWORD,
      maxPacketSize: 0,
      characterSet: 33,
      mariadbCapabilities: 0x1d
    })
    expect(parseSslRequest(bytes)).toMatchObject({
      capabilities: (Capability.SSL | Capability.PROTOCOL_41) >>> 0,
      mariadbCapabilities: 0x1d
    })
  })

  it("reads MariaDB's extended capabilities when the client leaves CLIENT_MYSQL unset", () => {
    const bytes = encodeSslRequest({ capabilities: 0, maxPacketSize: 0, characterSet: 33 })
    bytes.writeUInt32LE(0x1d, 28)
    expect(parseSslRequest(bytes)).toMatchObject({ mariadbCapabilities: 0x1d })
  })
})
