// The mysql listener's greeting (fixed or learned) and the capabilities its login asks of a backend. The conformance
// specs run the same against a real MariaDB 10.11 (mysql-mariadb-types.spec.ts) and a MySQL 8 fake (mysql-sha2).
import { describe, expect, it } from "vitest"
import { Capability, type HandshakeV10, MariaDbCapability } from "../../../src/codec/mysql/index.ts"
import {
  backendLogin,
  type Hop,
  MARIADB_EXTRAS,
  MARIADB_VERSION,
  MYSQL_VERSION,
  makeGreetings,
  offered
} from "../../../src/listeners/mysql/capabilities.ts"

const { PROGRESS, STMT_BULK_OPERATIONS, EXTENDED_METADATA, CACHE_METADATA } = MariaDbCapability

/** A backend greeting as parseHandshakeV10 gives it. */
const backend = (serverVersion: string, capabilities: number, mariadbCapabilities = 0): HandshakeV10 => ({
  _tag: "HandshakeV10",
  serverVersion,
  connectionId: 7,
  authPluginData: Buffer.alloc(20, 1),
  capabilities: capabilities >>> 0,
  characterSet: 45,
  statusFlags: 2,
  mariadbCapabilities,
  authPlugin: "mysql_native_password"
})

// The capabilities of the real servers: MariaDB 10.11 (CLIENT_MYSQL unset, extras 0x1d) and MySQL 8.0.42.
const mariadb1011 = backend("5.5.5-10.11.19-MariaDB-0+deb12u1", 0x81fffffe, 0x1d)
const mariadb105 = backend("5.5.5-10.5.23-MariaDB", 0x81fffffe, PROGRESS | STMT_BULK_OPERATIONS | EXTENDED_METADATA)
const mysql8 = backend("8.0.42", 0xdfffffff)

/** mysql2's own flags with CLIENT_MYSQL cleared, as it answers a greeting that offers extended metadata. */
const mysql2Flags = 0x000ff3cf & ~Capability.LONG_PASSWORD

const hop = (offeredMariaDb: number): Hop => ({
  offered,
  offeredMariaDb,
  database: true,
  attributes: true,
  tls: false
})

describe("makeGreetings", () => {
  it("mariadb offers MariaDB 10.11's extras, mysql none; serverVersion replaces the flavor's version", () => {
    expect(makeGreetings("mariadb").current()).toEqual({
      serverVersion: MARIADB_VERSION,
      mariadbCapabilities: PROGRESS | STMT_BULK_OPERATIONS | EXTENDED_METADATA | CACHE_METADATA
    })
    expect(makeGreetings("mysql").current()).toEqual({ serverVersion: MYSQL_VERSION, mariadbCapabilities: 0 })
    expect(makeGreetings("mysql", "8.0.40-x").current().serverVersion).toBe("8.0.40-x")
    const fixed = makeGreetings("mariadb")
    fixed.learn(mysql8)
    expect(fixed.current().mariadbCapabilities).toBe(MARIADB_EXTRAS)
  })

  it("auto greets on common ground, then as the first backend did, narrowing MariaDB extras to all backends'", () => {
    const g = makeGreetings("auto")
    expect(g.current()).toEqual({ serverVersion: MARIADB_VERSION, mariadbCapabilities: 0 })
    g.learn(mariadb1011)
    expect(g.current()).toEqual({ serverVersion: mariadb1011.serverVersion, mariadbCapabilities: 0x1d })
    g.learn(mariadb105)
    expect(g.current()).toEqual({
      serverVersion: mariadb1011.serverVersion,
      mariadbCapabilities: PROGRESS | STMT_BULK_OPERATIONS | EXTENDED_METADATA
    })
  })

  it("auto goes back to common ground for good once MySQL and MariaDB backends were both seen", () => {
    const g = makeGreetings("auto")
    g.learn(mariadb1011)
    g.learn(mysql8)
    expect(g.current()).toEqual({ serverVersion: MARIADB_VERSION, mariadbCapabilities: 0 })
    g.learn(mariadb1011)
    expect(g.current()).toEqual({ serverVersion: MARIADB_VERSION, mariadbCapabilities: 0 })
  })

  it("auto behind MySQL 8 greets with its version and no extras; serverVersion still wins", () => {
    const g = makeGreetings("auto")
    g.learn(mysql8)
    expect(g.current()).toEqual({ serverVersion: "8.0.42", mariadbCapabilities: 0 })
    const pinned = makeGreetings("auto", "8.0.0-pinned")
    pinned.learn(mariadb1011)
    expect(pinned.current()).toEqual({ serverVersion: "8.0.0-pinned", mariadbCapabilities: 0x1d })
  })
})

describe("backendLogin", () => {
  it("passes the extras a client negotiated to a MariaDB backend that has them", () => {
    const login = backendLogin(
      { capabilities: mysql2Flags, mariadbCapabilities: EXTENDED_METADATA },
      mariadb1011,
      hop(0x1d)
    )
    expect(login).toMatchObject({ mariadbCapabilities: EXTENDED_METADATA })
    if ("flags" in login) {
      // CLIENT_MYSQL is set here; the encoder clears it when extras go along.
      expect(login.flags & Capability.LONG_PASSWORD).toBe(Capability.LONG_PASSWORD)
      expect(login.flags & Capability.CONNECT_WITH_DB).toBe(Capability.CONNECT_WITH_DB)
    }
  })

  it("asks nothing the greeting did not offer, whatever the client claims", () => {
    const login = backendLogin({ capabilities: mysql2Flags, mariadbCapabilities: 0x3f }, mariadb1011, hop(0))
    expect(login).toMatchObject({ mariadbCapabilities: 0 })
    const some = backendLogin({ capabilities: mysql2Flags, mariadbCapabilities: 0x3f }, mariadb1011, hop(0x1d))
    expect(some).toMatchObject({ mariadbCapabilities: 0x1d })
  })

  it("refuses extras that change what results look like when the backend lacks them (MySQL, an older MariaDB)", () => {
    expect(
      backendLogin({ capabilities: mysql2Flags, mariadbCapabilities: EXTENDED_METADATA }, mysql8, hop(0x1d))
    ).toEqual({ lacks: "MARIADB_CLIENT_EXTENDED_METADATA" })
    expect(backendLogin({ capabilities: mysql2Flags, mariadbCapabilities: 0x1d }, mariadb105, hop(0x1d))).toEqual({
      lacks: "MARIADB_CLIENT_CACHE_METADATA"
    })
  })

  it("drops progress reports a MySQL backend cannot send, which the client cannot miss", () => {
    expect(backendLogin({ capabilities: mysql2Flags, mariadbCapabilities: PROGRESS }, mysql8, hop(0x1d))).toMatchObject(
      {
        mariadbCapabilities: 0
      }
    )
  })

  it("refuses a session flag the backend lacks, naming it", () => {
    const old = backend("5.6.0", 0x000ff7ff & ~Capability.DEPRECATE_EOF)
    const flags = (mysql2Flags | Capability.DEPRECATE_EOF | Capability.SESSION_TRACK) >>> 0
    expect(backendLogin({ capabilities: flags, mariadbCapabilities: 0 }, old, hop(0))).toEqual({
      lacks: "SESSION_TRACK, DEPRECATE_EOF"
    })
  })
})
