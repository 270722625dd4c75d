import { describe, expect, it } from "vitest"
import { killAskedElsewhere } from "../../../src/listeners/mysql/killTap.ts"
import {
  firstProxyId,
  isProxyId,
  type KillIssuer,
  type MysqlSessionRecord,
  MysqlSessions,
  proxyIdOwner
} from "../../../src/listeners/mysql/sessions.ts"

const record: MysqlSessionRecord = { backendId: 7, ip: "127.0.0.1", port: 3306, user: "app" }
const issuer: KillIssuer = { ip: "127.0.0.1", port: 3306, user: "app", connection: true }

describe("MysqlSessions: the mysql listener's connection ids", () => {
  it("hands out ids in [2^30, 2^31), from a random start per process", () => {
    const starts = new Set<number>()
    for (let i = 0; i < 20; i++) {
      const sessions = new MysqlSessions()
      const id = sessions.nextId()
      expect(id).toBeGreaterThanOrEqual(2 ** 30)
      expect(id).toBeLessThan(2 ** 31)
      expect(isProxyId(id)).toBe(true)
      expect(sessions.nextId()).toBe(id + 1 === 2 ** 31 ? firstProxyId : id + 1)
      starts.add(id)
    }
    expect(starts.size).toBeGreaterThan(15)
    expect(isProxyId(firstProxyId - 1)).toBe(false)
    expect(isProxyId(2 ** 31)).toBe(false)
  })

  it("gives each worker ids no other worker hands out: index modulo count", () => {
    const count = 3
    const seen = new Map<number, number>()
    for (let index = 0; index < count; index++) {
      const sessions = new MysqlSessions(undefined, { index, count })
      for (let i = 0; i < 1000; i++) {
        const id = sessions.nextId()
        expect(proxyIdOwner(id, count)).toBe(index)
        expect(isProxyId(id)).toBe(true)
        expect(seen.has(id)).toBe(false)
        seen.set(id, index)
      }
    }
  })

  it("skips ids still in use when its share wraps around", () => {
    // Each of 2^29 workers owns two ids: after both are taken once, the one still in use is skipped.
    const sessions = new MysqlSessions(undefined, { index: 0, count: 2 ** 29 })
    const a = sessions.nextId()
    sessions.add(a, record)
    const b = sessions.nextId()
    expect(b).not.toBe(a)
    expect(sessions.nextId()).toBe(b)
    sessions.remove(a)
    expect([sessions.nextId(), sessions.nextId()].sort()).toEqual([a, b].sort())
  })

  it("finds its own sessions at once and asks the shared table for the others", async () => {
    const asked: Array<[number, KillIssuer]> = []
    const mirrored: Array<[string, number]> = []
    const sessions = new MysqlSessions({
      add: (id) => mirrored.push(["add", id]),
      remove: (id) => mirrored.push(["remove", id]),
      lookup: async (id, by) => {
        asked.push([id, by])
        return id === 5 ? { ...record, backendId: 55 } : undefined
      }
    })
    sessions.add(4, record)
    expect(sessions.find(4, issuer)).toBe(record)
    expect(await sessions.find(5, issuer)).toMatchObject({ backendId: 55 })
    expect(await sessions.find(6, issuer)).toBeUndefined()
    expect(asked).toEqual([
      [5, issuer],
      [6, issuer]
    ])
    sessions.remove(4)
    sessions.remove(4)
    expect(mirrored).toEqual([
      ["add", 4],
      ["remove", 4]
    ])
  })

  it("answers another worker's KILL of a pooled client: a copy of its record; KILL CONNECTION closes it when idle", () => {
    const sessions = new MysqlSessions()
    let closed = 0
    const pooled = (backendId: number): MysqlSessionRecord => ({ ...record, backendId, killed: () => closed++ })
    sessions.add(firstProxyId, pooled(0), false)
    sessions.add(firstProxyId + 1, pooled(9), false)
    expect(killAskedElsewhere(sessions, firstProxyId + 2, issuer)).toBeUndefined()
    // Holding a server connection: the issuer kills on it; nothing is closed here.
    expect(killAskedElsewhere(sessions, firstProxyId + 1, issuer)).toEqual({ ...record, backendId: 9 })
    // Holding none: KILL QUERY has nothing to end; another user's KILL is refused by the issuer's side.
    expect(killAskedElsewhere(sessions, firstProxyId, { ...issuer, connection: false })).toEqual({
      ...record,
      backendId: 0
    })
    expect(killAskedElsewhere(sessions, firstProxyId, { ...issuer, user: "other" })).toEqual({
      ...record,
      backendId: 0
    })
    expect(killAskedElsewhere(sessions, firstProxyId, { ...issuer, port: 3307 })).toEqual({ ...record, backendId: 0 })
    expect(closed).toBe(0)
    const copy = killAskedElsewhere(sessions, firstProxyId, issuer)
    expect(closed).toBe(1)
    // Plain data: it crosses to the issuer's worker as JSON.
    expect(JSON.parse(JSON.stringify(copy))).toEqual(copy)
    expect(copy).toEqual({ ...record, backendId: 0 })
  })
})
