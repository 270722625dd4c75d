import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  Command,
  KillPrefix,
  killPrefix,
  parseKill,
  rewriteKill,
  signalPayload
} from "../../../src/codec/mysql/index.ts"

const query = (text: string) => Buffer.concat([Buffer.from([Command.QUERY]), Buffer.from(text, "utf8")])
const prefixOf = (text: string, complete = true) => {
  const q = query(text)
  return killPrefix(q, 1, q.length, complete)
}

// Each was sent to MariaDB 10.11 directly: all but the last group are KILLs of thread 999999 ("Unknown thread id:
// 999999"), with the id where the literal stands.
const kills = [
  "KILL 999999",
  "kill 999999",
  "KiLl\n999999",
  "  KILL 999999",
  "KILL CONNECTION 999999",
  "KILL QUERY 999999",
  "KILL HARD 999999",
  "KILL SOFT QUERY 999999",
  "KILL HARD CONNECTION 999999",
  "/* hi */ KILL 999999",
  "KILL/**/999999",
  "KILL 999999;",
  "KILL 999999 ; SELECT 1",
  "KILL 999999 -- x",
  "KILL 999999 # x",
  "# first line\nKILL 999999",
  "-- first line\nKILL 999999",
  "KILL 0999999"
]

describe("KILL commands", () => {
  it("finds the id of every KILL that names a session by a literal, and where the literal stands", () => {
    for (const text of kills) {
      const payload = query(text)
      const target = parseKill(payload)
      expect(target, text).toBeDefined()
      expect(target!.id, text).toBe(999999)
      expect(Buffer.from(payload.subarray(target!.at, target!.end)).toString().replace(/^0/, ""), text).toBe("999999")
      expect(prefixOf(text), text).toBe(KillPrefix.KILL)
    }
  })

  it("leaves alone what the server evaluates or what is not a session id", () => {
    // Expressions and other targets the backend computes itself (MariaDB: `KILL 2+1` kills thread 3, `KILL (5)`
    // thread 5, `KILL QUERY ID 5` a query id), and statements that only look alike.
    for (const text of [
      "KILL CONNECTION_ID()",
      "KILL 2+1",
      "KILL 5 + 1",
      "KILL (999999)",
      "KILL QUERY ID 999999",
      "KILL USER app",
      "KILL 0x10",
      "KILL 1e3",
      "KILL 999999.0",
      "KILL 12abc",
      "KILL @x",
      "KILL 99999999999",
      "KILL",
      "KILL 5 /* unterminated",
      "KILLER 5",
      "SELECT 'KILL 5'",
      "/*!50000 KILL */ 5"
    ]) {
      expect(parseKill(query(text)), text).toBeUndefined()
    }
    for (const text of ["SELECT 1", "KILLER 5", "/*!50000 KILL */ 5", "/*M!100000 KILL 5 */", "-KILL 5", ""]) {
      expect(prefixOf(text), text).toBe(KillPrefix.NO)
    }
  })

  it("reads COM_PROCESS_KILL's 4-byte id", () => {
    const payload = Buffer.from([Command.PROCESS_KILL, 0x01, 0x00, 0x00, 0x40])
    expect(parseKill(payload)).toEqual({ id: 0x40000001, at: 1, end: 5 })
    expect(parseKill(Buffer.from([Command.PROCESS_KILL, 1, 2, 3]))).toBeUndefined()
    expect(rewriteKill(payload, parseKill(payload)!, 42)).toEqual(Buffer.from([0x0c, 42, 0, 0, 0]))
  })

  it("rewrites only the id: keywords, comments and later statements stay as the client wrote them", () => {
    const payload = query("/* app */ kill query 1073741825; SELECT 1")
    expect(rewriteKill(payload, parseKill(payload)!, 17).subarray(1).toString()).toBe(
      "/* app */ kill query 17; SELECT 1"
    )
  })

  it("says MORE until the bytes read so far decide, and then what the whole text says", () => {
    for (const text of [...kills, "SELECT 1", "/* long comment */ SELECT 1", "-- c\nKILL 5", "KILLER 5", "K"]) {
      const q = query(text)
      const whole = killPrefix(q, 1, q.length, true)
      for (let to = 1; to < q.length; to++) {
        const partial = killPrefix(q, 1, to, false)
        if (partial !== KillPrefix.MORE) expect(partial, `${text} up to ${to}`).toBe(whole)
      }
    }
    // Cut right after "KILL", it cannot yet tell KILL from KILLER.
    expect(killPrefix(query("KILL 5"), 1, 5, false)).toBe(KillPrefix.MORE)
    expect(killPrefix(query("SELECT 1"), 1, 2, false)).toBe(KillPrefix.NO)
  })

  it("never throws on any bytes (fast-check)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.boolean(), (bytes, complete) => {
        const payload = Buffer.concat([Buffer.from([Command.QUERY]), bytes])
        killPrefix(payload, 1, payload.length, complete)
        const target = parseKill(payload)
        if (target !== undefined) expect(target.id).toBeLessThan(2 ** 32 * 10)
      })
    )
  })

  it("builds the SIGNAL that makes a server answer with the proxy's error", () => {
    expect(signalPayload(1094, "Unknown thread id: 5").toString("latin1")).toBe(
      "\x03SIGNAL SQLSTATE 'HY000' SET MYSQL_ERRNO = 1094, MESSAGE_TEXT = 'Unknown thread id: 5'"
    )
  })
})
