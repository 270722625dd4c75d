import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  CachingSha2,
  classifyAuthReply,
  decodeAuthMoreData,
  decodeAuthSwitchRequest,
  encodeAuthMoreData,
  encodeAuthSwitchRequest,
  encodeErrPacket,
  encodeOkPacket,
  encodePacket,
  parseAuthMoreData,
  parseAuthSwitchRequest
} from "../../../src/codec/mysql/index.ts"
import { asMysql2Packet, expectNeedThenFrame, frameOf, mysql2, reasonOf } from "./support.ts"

const nonce = Buffer.from("zQg4i6oNy6=rHN/>-b)A")

describe("AuthSwitchRequest", () => {
  it("matches the documented example byte for byte", () => {
    // dev.mysql.com, Protocol::AuthSwitchRequest: mysql_native_password with a 20-byte nonce and its NUL, seq 2.
    const bytes = encodePacket(
      encodeAuthSwitchRequest("mysql_native_password", Buffer.concat([nonce, Buffer.from([0])])),
      2
    )
    expect(bytes.toString("hex")).toBe(
      "2c000002fe6d7973716c5f6e61746976655f70617373776f7264007a51673469366f4e79363d72484e2f3e2d62294100"
    )
    expect(frameOf(decodeAuthSwitchRequest(bytes))).toEqual({
      sequenceId: 2,
      lastSequenceId: 2,
      message: {
        _tag: "AuthSwitchRequest",
        plugin: "mysql_native_password",
        data: Buffer.concat([nonce, Buffer.from([0])])
      }
    })
  })

  it("is what mysql2 reads as a switch: the plugin and its data with the NUL", () => {
    const packet = asMysql2Packet(encodePacket(encodeAuthSwitchRequest("caching_sha2_password", nonce), 3))
    const read = mysql2.Packets.AuthSwitchRequest.fromPacket(packet)
    expect(read.pluginName).toBe("caching_sha2_password")
    expect(read.pluginData).toEqual(nonce)
  })

  it("round-trips any plugin and data (fast-check), and answers Need byte by byte", () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 30 }).filter((s) => !s.includes("\0")),
        fc.uint8Array({ maxLength: 64 }),
        (plugin, data) => {
          expect(parseAuthSwitchRequest(encodeAuthSwitchRequest(plugin, data))).toEqual({
            _tag: "AuthSwitchRequest",
            plugin,
            data: Buffer.from(data)
          })
        }
      )
    )
    const bytes = encodePacket(encodeAuthSwitchRequest("mysql_native_password", nonce), 2)
    expect(expectNeedThenFrame(bytes, (b) => decodeAuthSwitchRequest(b)).message.plugin).toBe("mysql_native_password")
  })

  it("refuses other markers, the old-password switch and a plugin name without NUL", () => {
    expect(reasonOf(parseAuthSwitchRequest(Buffer.from([0x00, 0x00])))).toBe(
      "expected AuthSwitchRequest (0xfe), got 0x00"
    )
    expect(reasonOf(parseAuthSwitchRequest(Buffer.from([0xfe])))).toContain("mysql_old_password")
    expect(reasonOf(parseAuthSwitchRequest(Buffer.from("\xfeabc", "latin1")))).toContain("not NUL-terminated")
    expect(reasonOf(parseAuthSwitchRequest(Buffer.alloc(0)))).toContain("empty")
  })
})

describe("AuthMoreData and the replies during authentication", () => {
  it("carries caching_sha2_password's verdicts and keys", () => {
    const fast = encodePacket(encodeAuthMoreData(Buffer.from([CachingSha2.FAST_AUTH_SUCCESS])), 4)
    expect(fast.toString("hex")).toBe("0200000401" + "03")
    expect(frameOf(decodeAuthMoreData(fast)).message.data).toEqual(Buffer.from([3]))
    const key = Buffer.from("-----BEGIN PUBLIC KEY-----\n...\n-----END PUBLIC KEY-----\n")
    expect(parseAuthMoreData(encodeAuthMoreData(key))).toEqual({ _tag: "AuthMoreData", data: key })
    expect(reasonOf(parseAuthMoreData(Buffer.from([0xfe])))).toContain("expected AuthMoreData (0x01)")
    expect(reasonOf(parseAuthMoreData(Buffer.alloc(0)))).toContain("empty")
  })

  it("tells OK, ERR, AuthSwitchRequest, AuthMoreData and AuthNextFactor apart by their first byte", () => {
    expect(classifyAuthReply(encodeOkPacket({ statusFlags: 2 }))).toBe("OK")
    expect(classifyAuthReply(encodeErrPacket({ code: 1045, sqlState: "28000", message: "no" }))).toBe("ERR")
    expect(classifyAuthReply(encodeAuthSwitchRequest("dialog", Buffer.alloc(0)))).toBe("AuthSwitchRequest")
    expect(classifyAuthReply(encodeAuthMoreData(Buffer.from([4])))).toBe("AuthMoreData")
    expect(classifyAuthReply(Buffer.from([0x02, 0x61, 0]))).toBe("AuthNextFactor")
    expect(reasonOf(classifyAuthReply(Buffer.from([0x41])))).toBe("unexpected packet 0x41 ('A') during authentication")
    expect(reasonOf(classifyAuthReply(Buffer.alloc(0)))).toContain("empty")
  })
})
