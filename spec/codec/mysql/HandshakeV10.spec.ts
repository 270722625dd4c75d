import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  Capability,
  decodeHandshakeV10,
  encodeHandshakeV10,
  encodePacket,
  type HandshakeV10,
  parseHandshakeV10
} from "../../../src/codec/mysql/index.ts"
import { asMysql2Packet, expectNeedThenFrame, frameOf, mysql2, reasonOf } from "./support.ts"

// Captured from the MariaDB 10.11 the conformance specs run (TLS on): CLIENT_MYSQL unset, extended caps 0x1d.
const mariadbGreeting = Buffer.from(
  "640000000a352e352e352d31302e31312e31392d4d6172696144422d302b646562313275310004000000375c493c2e72767800feff08" +
    "0200ff81150000000000001d0000007976667b59295e7e7e22273d006d7973716c5f6e61746976655f70617373776f726400",
  "hex"
)

// A MySQL 8.0.42 greeting: caching_sha2_password, charset 255, every lower capability.
const mysql8Greeting = Buffer.concat([
  Buffer.from(
    "4a0000000a382e302e343200330000005d2e754d7f1e420f00ffffff0200ffdf1500000000000000000000566c16157b481844482f4c0500",
    "hex"
  ),
  Buffer.from("caching_sha2_password\0")
])

const input = {
  serverVersion: "5.5.5-10.11.0-polyproxy",
  connectionId: 42,
  authPluginData: Buffer.from("abcdefghijklmnopqrst"),
  capabilities: (Capability.PROTOCOL_41 | Capability.CONNECT_WITH_DB | Capability.SSL | Capability.LONG_PASSWORD) >>> 0,
  characterSet: 45,
  statusFlags: 2,
  authPlugin: "mysql_native_password"
}

describe("HandshakeV10", () => {
  it("decodes a real MariaDB greeting", () => {
    const framed = frameOf(decodeHandshakeV10(mariadbGreeting))
    expect(framed.sequenceId).toBe(0)
    expect(framed.message).toEqual({
      _tag: "HandshakeV10",
      serverVersion: "5.5.5-10.11.19-MariaDB-0+deb12u1",
      connectionId: 4,
      authPluginData: Buffer.from("375c493c2e7276787976667b59295e7e7e22273d", "hex"),
      capabilities: 0x81fffffe,
      characterSet: 8,
      statusFlags: 2,
      mariadbCapabilities: 0x1d,
      authPlugin: "mysql_native_password"
    } satisfies HandshakeV10)
  })

  it("decodes a MySQL 8 greeting offering caching_sha2_password", () => {
    const g = frameOf(decodeHandshakeV10(mysql8Greeting)).message
    expect(g).toMatchObject({ serverVersion: "8.0.42", connectionId: 0x33, characterSet: 255, mariadbCapabilities: 0 })
    expect(g.capabilities).toBe(0xdfffffff)
    expect(g.authPluginData.length).toBe(20)
    expect(g.authPlugin).toBe("caching_sha2_password")
  })

  it("encodes what it decodes, with CLIENT_SECURE_CONNECTION and CLIENT_PLUGIN_AUTH always set", () => {
    const g = parseHandshakeV10(encodeHandshakeV10(input))
    expect(g).toEqual({
      _tag: "HandshakeV10",
      ...input,
      capabilities: (input.capabilities | Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH) >>> 0,
      mariadbCapabilities: 0
    })
  })

  it("offers MariaDB's extended capabilities as MariaDB does: CLIENT_MYSQL cleared, the flags in the reserved bytes", () => {
    const bytes = encodeHandshakeV10({ ...input, mariadbCapabilities: 0x1d })
    expect(parseHandshakeV10(bytes)).toMatchObject({
      capabilities:
        (input.capabilities | Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH) & ~Capability.LONG_PASSWORD,
      mariadbCapabilities: 0x1d
    })
    const hs = mysql2.Packets.Handshake.fromPacket(asMysql2Packet(encodePacket(bytes, 0)))
    expect(hs.mariadbExtendedCapabilityFlags).toBe(0x1d)
    // The same layout as the captured MariaDB greeting's.
    const real = frameOf(decodeHandshakeV10(mariadbGreeting)).message
    const ours = frameOf(
      decodeHandshakeV10(
        encodePacket(
          encodeHandshakeV10({
            ...real,
            authPlugin: real.authPlugin!,
            capabilities: real.capabilities,
            mariadbCapabilities: real.mariadbCapabilities
          }),
          0
        )
      )
    ).message
    expect(ours).toEqual(real)
  })

  it("is read by mysql2 as the real client reads a server's greeting", () => {
    const hs = mysql2.Packets.Handshake.fromPacket(asMysql2Packet(encodePacket(encodeHandshakeV10(input), 0)))
    expect(hs.serverVersion).toBe(input.serverVersion)
    expect(hs.connectionId).toBe(42)
    expect(Buffer.concat([hs.authPluginData1, hs.authPluginData2]).subarray(0, 20).toString()).toBe(
      "abcdefghijklmnopqrst"
    )
    expect(hs.authPluginName).toBe("mysql_native_password")
    expect(hs.capabilityFlags & Capability.SSL).toBe(Capability.SSL)
    expect(hs.characterSet).toBe(45)
  })

  it("round-trips any nonce without NUL bytes, version and flags (fast-check)", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 8, maxLength: 40 }).map((a) => Buffer.from(a.map((b) => b || 1))),
        fc.string({ maxLength: 40 }).filter((s) => !s.includes("\0")),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 0xffffffff }),
        (nonce, version, caps, id) => {
          const g = parseHandshakeV10(
            encodeHandshakeV10({
              ...input,
              authPluginData: nonce,
              serverVersion: version,
              capabilities: caps,
              connectionId: id
            })
          )
          if (g._tag !== "HandshakeV10") throw new Error(g.reason)
          expect(g.authPluginData.equals(nonce)).toBe(true)
          expect(g.serverVersion).toBe(version)
          expect(g.connectionId).toBe(id)
          expect(g.authPlugin).toBe("mysql_native_password")
        }
      )
    )
  })

  it("answers Need byte by byte until the greeting is whole", () => {
    expect(expectNeedThenFrame(mariadbGreeting, (b) => decodeHandshakeV10(b)).message.connectionId).toBe(4)
  })

  it("decodes the short pre-4.1 form, which callers then refuse for lacking PROTOCOL_41", () => {
    const short = Buffer.from("0a342e302e3000010000006162636465666768000000", "hex")
    const g = parseHandshakeV10(short)
    expect(g).toMatchObject({ _tag: "HandshakeV10", serverVersion: "4.0.0", capabilities: 0, authPlugin: undefined })
  })

  it("refuses other protocol versions, an ERR, cut-short greetings and a missing filler", () => {
    expect(reasonOf(parseHandshakeV10(Buffer.from([9, 0x41, 0])))).toBe(
      "unsupported server protocol version 0x09, expected 10"
    )
    expect(reasonOf(parseHandshakeV10(Buffer.from([0xff, 0x10, 0x04])))).toContain("error instead of a greeting")
    expect(reasonOf(parseHandshakeV10(Buffer.alloc(0)))).toBe("empty server greeting")
    const payload = mariadbGreeting.subarray(4)
    for (const cut of [3, 20, 40, 50]) {
      expect(parseHandshakeV10(payload.subarray(0, cut))._tag).toBe("Invalid")
    }
    const noFiller = Buffer.from(payload)
    noFiller[1 + 33 + 4 + 8] = 7
    expect(reasonOf(parseHandshakeV10(noFiller))).toContain("filler")
  })

  it("refuses a nonce under 8 bytes when encoding (a caller bug)", () => {
    expect(() => encodeHandshakeV10({ ...input, authPluginData: Buffer.alloc(7, 1) })).toThrow(RangeError)
  })
})
