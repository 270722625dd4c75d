import { describe, expect, it } from "vitest"
import {
  firstProxyId,
  isProxyId,
  type MysqlSessionRecord,
  MysqlSessions
} from "../../../src/listeners/mysql/sessions.ts"

const record: MysqlSessionRecord = { backendId: 7, ip: "127.0.0.1", port: 3306, user: "app" }

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
        expect((id - firstProxyId) % count).toBe(index)
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
    const asked: number[] = []
    const mirrored: Array<[string, number]> = []
    const sessions = new MysqlSessions({
      add: (id) => mirrored.push(["add", id]),
      remove: (id) => mirrored.push(["remove", id]),
      lookup: async (id) => {
        asked.push(id)
        return id === 5 ? { ...record, backendId: 55 } : undefined
      }
    })
    sessions.add(4, record)
    expect(sessions.find(4)).toBe(record)
    expect(await sessions.find(5)).toMatchObject({ backendId: 55 })
    expect(await sessions.find(6)).toBeUndefined()
    expect(asked).toEqual([5, 6])
    sessions.remove(4)
    sessions.remove(4)
    expect(mirrored).toEqual([
      ["add", 4],
      ["remove", 4]
    ])
  })
})
