// The tracked parameters of pooled clients (PgBouncer's varcache): what a client is told at startup, and the SET
// that brings a server connection in line with it. Pure code; the conformance spec runs it against PostgreSQL.
import { describe, expect, it } from "vitest"
import { alignment, initialTracked, trackedIndex, withValue } from "../../../src/listeners/postgres/pool/tracked.ts"

const server = new Map([
  ["server_version", "15.8"],
  ["client_encoding", "UTF8"],
  ["DateStyle", "ISO, MDY"],
  ["TimeZone", "Etc/UTC"],
  ["IntervalStyle", "postgres"],
  ["standard_conforming_strings", "on"],
  ["application_name", ""]
])

describe("tracked parameters", () => {
  it("tells a client the server's values with its own startup values in their place, names matched in any case", () => {
    const t = initialTracked(
      server,
      new Map([
        ["datestyle", "German"],
        ["user", "app"],
        ["application_name", "psql"]
      ])
    )
    expect(t.values).toEqual(["UTF8", "German", "Etc/UTC", "postgres", "on", "psql"])
  })

  it("gives clients that agree one shared object", () => {
    const a = initialTracked(server, new Map([["application_name", "x"]]))
    const b = initialTracked(server, new Map([["application_name", "x"]]))
    expect(a).toBe(b)
    expect(withValue(a, trackedIndex("TimeZone"), "Etc/UTC")).toBe(a)
    expect(withValue(a, trackedIndex("TimeZone"), "Asia/Tokyo")).not.toBe(a)
  })

  it("sets only what differs, as E'' literals that read the same whatever standard_conforming_strings says", () => {
    expect(alignment(initialTracked(server, new Map()), server)).toBeUndefined()
    const t = initialTracked(
      server,
      new Map([
        ["application_name", "it's a \\ test"],
        ["TimeZone", "Asia/Tokyo"]
      ])
    )
    const a = alignment(t, server)!
    expect(a.sql).toBe(`SET "TimeZone" TO E'Asia/Tokyo';SET "application_name" TO E'it''s a \\\\ test';`)
    expect(a.indexes).toEqual([trackedIndex("TimeZone"), trackedIndex("application_name")])
  })
})
