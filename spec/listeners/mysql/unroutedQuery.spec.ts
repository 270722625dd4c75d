// What the proxy makes of a query before any USE (logins checked by the proxy): the few it answers, USE in its forms,
// and everything else left to a server. The real clients' exchanges are in spec/conformance/mysql-proxy-auth.spec.ts.
import { describe, expect, it } from "vitest"
import { Capability, decodeEofPacket, decodePacket, MariaDbCapability } from "../../../src/codec/mysql/index.ts"
import { oneValue } from "../../../src/listeners/mysql/localAnswers.ts"
import { unroutedQuery } from "../../../src/listeners/mysql/unroutedQuery.ts"

describe("unroutedQuery", () => {
  it("USE, alone or first of several statements, with comments and quoted names", () => {
    expect(unroutedQuery("USE t2")).toEqual({ kind: "use", database: "t2", alone: true })
    expect(unroutedQuery("  use `t 2`;; ")).toEqual({ kind: "use", database: "t 2", alone: true })
    expect(unroutedQuery("/* app */ USE `a``b` -- why\n")).toEqual({ kind: "use", database: "a`b", alone: true })
    expect(unroutedQuery("USE t2; SELECT 1")).toEqual({ kind: "use", database: "t2", alone: false })
    expect(unroutedQuery("USE")).toEqual({ kind: "other" })
    expect(unroutedQuery("USE t2 extra")).toEqual({ kind: "other" })
    expect(unroutedQuery("SELECT 1; USE t2")).toEqual({ kind: "other" })
  })

  it("SELECT DATABASE() and the CLI's banner query, as the client named their column", () => {
    expect(unroutedQuery("SELECT DATABASE()")).toEqual({ kind: "database", column: "DATABASE()" })
    expect(unroutedQuery("select schema() as db;")).toEqual({ kind: "database", column: "db" })
    expect(unroutedQuery("select @@version_comment limit 1")).toEqual({
      kind: "versionComment",
      column: "@@version_comment"
    })
    expect(unroutedQuery("SELECT DATABASE(), 1")).toEqual({ kind: "other" })
    expect(unroutedQuery("SELECT @@version")).toEqual({ kind: "other" })
  })

  it("SET NAMES as the collation a handshake would carry; only known ones", () => {
    expect(unroutedQuery("SET NAMES utf8mb4")).toEqual({ kind: "names", collation: 45 })
    expect(unroutedQuery("set names 'latin1'")).toEqual({ kind: "names", collation: 8 })
    expect(unroutedQuery("SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci")).toEqual({ kind: "names", collation: 224 })
    expect(unroutedQuery("/*!40101 SET NAMES utf8 */")).toEqual({ kind: "names", collation: 33 })
    expect(unroutedQuery("SET NAMES klingon")).toEqual({ kind: "other" })
    expect(unroutedQuery("SET NAMES utf8mb4; SET @x = 1")).toEqual({ kind: "other" })
  })

  it("SET autocommit = 1 only (0 would change the session)", () => {
    for (const sql of ["SET autocommit=1", "set session autocommit = ON", "SET @@session.autocommit = 1"]) {
      expect(unroutedQuery(sql)).toEqual({ kind: "autocommit" })
    }
    expect(unroutedQuery("SET autocommit = 0")).toEqual({ kind: "other" })
    expect(unroutedQuery("SET @@global.autocommit = 1")).toEqual({ kind: "other" })
  })
})

describe("oneValue: a one-row result set as MariaDB lays it out", () => {
  // The mariadb CLI's session: MariaDB's extended metadata negotiated, no CLIENT_DEPRECATE_EOF.
  const shape = { flags: 0, mariadbCapabilities: MariaDbCapability.EXTENDED_METADATA, characterSet: 33 }
  const packets = (bytes: Buffer) => {
    const out: Array<{ sequenceId: number; payload: Buffer }> = []
    let rest = bytes
    while (rest.length > 0) {
      const d = decodePacket(rest)
      if (d._tag !== "Frame") throw new Error("not whole packets")
      out.push(d.value)
      rest = rest.subarray(d.size)
    }
    return out
  }

  it("matches the bytes MariaDB 10.11 sends for SELECT DATABASE() with no database (captured)", () => {
    const got = packets(oneValue("DATABASE()", 64, null, 2, shape))
    expect(got.map((p) => p.sequenceId)).toEqual([1, 2, 3, 4, 5])
    expect(got[0]!.payload.toString("hex")).toBe("01")
    // MariaDB's: 036465660000000a4441544142415345282900000c2100c0000000fd0000270000, but for the column length
    // (192 there: 64 characters of utf8mb3; 256 here, 4 bytes each, whatever the collation).
    expect(got[1]!.payload.toString("hex")).toBe("036465660000000a4441544142415345282900000c210000010000fd0000270000")
    expect(got[2]!.payload.toString("hex")).toBe("fe00000200")
    expect(got[3]!.payload.toString("hex")).toBe("fb")
    expect(decodeEofPacket(Buffer.concat([Buffer.from([5, 0, 0, 5]), got[4]!.payload]))._tag).toBe("Frame")
  })

  it("with CLIENT_DEPRECATE_EOF: no EOF after the columns, an OK (0xFE) at the end; MySQL's column layout", () => {
    const got = packets(
      oneValue("v", 9, "polyproxy", 2, { flags: Capability.DEPRECATE_EOF, mariadbCapabilities: 0, characterSet: 45 })
    )
    expect(got.map((p) => p.payload[0])).toEqual([1, 3, 9, 0xfe])
    // No extended metadata block: the fixed fields' 0x0c right after the empty org_name.
    expect(got[1]!.payload.subarray(0, 12).toString("hex")).toBe("036465660000000176000c2d")
    expect(got[3]!.payload.toString("hex")).toBe("fe000002000000")
  })
})
