import { describe, expect, it } from "vitest"
import {
  encodeStartupRefusal,
  SECOND_SSL_REQUEST,
  unencryptedData,
  unsupportedProtocol
} from "../../../src/codec/pg/index.ts"
import { fieldsOf } from "./support.ts"

describe("encodeStartupRefusal", () => {
  it("answers a 3.x or later client with a FATAL ErrorResponse, detail included", () => {
    expect(fieldsOf(encodeStartupRefusal(unencryptedData("SSL request")))).toEqual({
      S: "FATAL",
      V: "FATAL",
      C: "08P01",
      M: "received unencrypted data after SSL request",
      D: "This could be either a client-software bug or evidence of an attempted man-in-the-middle attack."
    })
    expect(fieldsOf(encodeStartupRefusal(SECOND_SSL_REQUEST))).toMatchObject({
      C: "0A000",
      M: "unsupported frontend protocol 1234.5679: server supports 3.0 to 3.2"
    })
  })

  it("answers a client below 3.0 in the unframed protocol 2.0 form it can read", () => {
    expect(encodeStartupRefusal(unsupportedProtocol(2 << 16)).toString("latin1")).toBe(
      "EFATAL:  unsupported frontend protocol 2.0: server supports 3.0 to 3.2\n\0"
    )
    expect(encodeStartupRefusal(unsupportedProtocol(1 << 16))[0]).toBe(0x45)
  })
})
