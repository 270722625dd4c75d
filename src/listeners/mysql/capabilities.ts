// What the mysql listener's greeting offers and what its login asks of a backend. The greeting goes out before the
// backend is known, so it claims ground every backend shares; MariaDB's extended capabilities (typed JSON, UUID and
// INET columns) are offered only by a greeting that knows, or has learned, that its backends are MariaDB.

import {
  Capability,
  capabilityNames,
  type HandshakeResponse41,
  type HandshakeV10,
  hasCapability,
  MariaDbCapability,
  mariadbCapabilityNames
} from "../../codec/mysql/index.ts"
import type { MysqlServerFlavor } from "../../config/Config.ts"

/**
 * What the proxy offers clients: flags that only shape the handshake (each hop negotiates its own) plus session
 * flags every supported backend (MySQL 5.7+, MariaDB 10.2+) has. Compression and query attributes are left out: the
 * relay would pass them on, but not every backend has them and the client decides before the backend is known.
 */
export const offered =
  (Capability.LONG_PASSWORD |
    Capability.FOUND_ROWS |
    Capability.LONG_FLAG |
    Capability.CONNECT_WITH_DB |
    Capability.ODBC |
    Capability.LOCAL_FILES |
    Capability.IGNORE_SPACE |
    Capability.PROTOCOL_41 |
    Capability.INTERACTIVE |
    Capability.IGNORE_SIGPIPE |
    Capability.TRANSACTIONS |
    Capability.RESERVED |
    Capability.SECURE_CONNECTION |
    Capability.MULTI_STATEMENTS |
    Capability.MULTI_RESULTS |
    Capability.PS_MULTI_RESULTS |
    Capability.PLUGIN_AUTH |
    Capability.CONNECT_ATTRS |
    Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA |
    Capability.CAN_HANDLE_EXPIRED_PASSWORDS |
    Capability.SESSION_TRACK |
    Capability.DEPRECATE_EOF) >>>
  0

/** Flags that change how relayed bytes are framed or read: client and backend must agree on each. */
const sessionFlags =
  (Capability.FOUND_ROWS |
    Capability.LOCAL_FILES |
    Capability.IGNORE_SPACE |
    Capability.PROTOCOL_41 |
    Capability.TRANSACTIONS |
    Capability.MULTI_STATEMENTS |
    Capability.MULTI_RESULTS |
    Capability.PS_MULTI_RESULTS |
    Capability.SESSION_TRACK |
    Capability.DEPRECATE_EOF) >>>
  0

/** Flags the proxy sets towards the backend itself, whatever the client said. */
const perHopFlags =
  (Capability.LONG_PASSWORD |
    Capability.CONNECT_WITH_DB |
    Capability.SSL |
    Capability.SECURE_CONNECTION |
    Capability.PLUGIN_AUTH |
    Capability.CONNECT_ATTRS |
    Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA) >>>
  0

/** What the proxy needs from a backend to run the auth switch at all. */
export const backendNeeds = (Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH) >>> 0

/**
 * MariaDB extras the relay carries unchanged once client and backend agreed on them: after the login it copies bytes
 * and parses no result set, so extended column metadata, metadata caching (COM_STMT_EXECUTE answers without it),
 * bulk execution and progress reports all pass. COM_MULTI is not offered: deprecated, and no current server has it.
 */
const relayableMariaDb =
  MariaDbCapability.PROGRESS |
  MariaDbCapability.STMT_BULK_OPERATIONS |
  MariaDbCapability.EXTENDED_METADATA |
  MariaDbCapability.CACHE_METADATA |
  MariaDbCapability.BULK_UNIT_RESULTS

/**
 * The one extra a backend may lack although the client asked for it: without it the server just sends no progress
 * reports. Every other one changes what a command or a result looks like, so the backend must have it.
 */
const droppableMariaDb = MariaDbCapability.PROGRESS

/** What MariaDB 10.11 offers, and so `serverFlavor: mariadb`. */
export const MARIADB_EXTRAS =
  MariaDbCapability.PROGRESS |
  MariaDbCapability.STMT_BULK_OPERATIONS |
  MariaDbCapability.EXTENDED_METADATA |
  MariaDbCapability.CACHE_METADATA

/**
 * The greeting's version for MariaDB, and the common ground while nothing is known. "5.5.5-" is MariaDB's own prefix
 * (clients that parse versions see 5.5.5), and "MariaDB" in the string makes clients avoid MySQL-only encodings that
 * MariaDB refuses (mysql2 then sends JSON parameters as text, which MySQL accepts too).
 */
export const MARIADB_VERSION = "5.5.5-10.11.0-MariaDB-polyproxy"
export const MYSQL_VERSION = "8.4.0-polyproxy"

export interface Greeting {
  readonly serverVersion: string
  /** MariaDB's extended capabilities offered; 0 = none, and CLIENT_MYSQL set as MySQL does. */
  readonly mariadbCapabilities: number
}

/** What a listener greets with: fixed, or learned from the backends' own greetings. */
export interface Greetings {
  /** The greeting for the next client. */
  readonly current: () => Greeting
  /** A backend's greeting, read during a login. */
  readonly learn: (backend: HandshakeV10) => void
}

/** MariaDB 10.2+ leaves CLIENT_MYSQL (LONG_PASSWORD) unset in its greeting; MySQL and older MariaDB set it. */
const isMariaDb = (backend: HandshakeV10): boolean => !hasCapability(backend.capabilities, Capability.LONG_PASSWORD)

const COMMON_GROUND: Greeting = { serverVersion: MARIADB_VERSION, mariadbCapabilities: 0 }

/**
 * `auto` greets with the common ground until a backend has been seen, then as that backend did (its version, and its
 * MariaDB extras the relay can carry); further MariaDB backends narrow the extras to what all have. Once backends of
 * both kinds were seen it goes back to the common ground for good. Per process: each worker learns for itself.
 */
export const makeGreetings = (flavor: MysqlServerFlavor, serverVersion?: string): Greetings => {
  const fixed = (greeting: Greeting): Greetings => ({ current: () => greeting, learn: () => {} })
  switch (flavor) {
    case "mariadb":
      return fixed({ serverVersion: serverVersion ?? MARIADB_VERSION, mariadbCapabilities: MARIADB_EXTRAS })
    case "mysql":
      return fixed({ serverVersion: serverVersion ?? MYSQL_VERSION, mariadbCapabilities: 0 })
    case "auto": {
      let seen: "none" | "mariadb" | "mysql" | "both" = "none"
      let greeting = COMMON_GROUND
      const withVersion = (g: Greeting): Greeting => (serverVersion === undefined ? g : { ...g, serverVersion })
      let current = withVersion(greeting)
      return {
        current: () => current,
        learn: (backend) => {
          const kind = isMariaDb(backend) ? "mariadb" : "mysql"
          const extras = kind === "mariadb" ? backend.mariadbCapabilities & relayableMariaDb : 0
          if (seen === "both" || seen === kind) {
            if (greeting.mariadbCapabilities & ~extras) {
              greeting = { ...greeting, mariadbCapabilities: greeting.mariadbCapabilities & extras }
            } else return
          } else if (seen === "none") {
            seen = kind
            greeting = { serverVersion: backend.serverVersion, mariadbCapabilities: extras }
          } else {
            seen = "both"
            greeting = COMMON_GROUND
          }
          current = withVersion(greeting)
        }
      }
    }
  }
}

/** The capabilities of the proxy's login to a backend. */
export interface BackendLogin {
  readonly flags: number
  /** MariaDB extras to ask for; non-zero only when both the client and the backend have them. */
  readonly mariadbCapabilities: number
}

export interface Hop {
  /** The flags the client was greeted with (its own are intersected with them). */
  readonly offered: number
  /** The MariaDB extras its greeting offered. */
  readonly offeredMariaDb: number
  readonly database: boolean
  readonly attributes: boolean
  readonly tls: boolean
}

/**
 * The client's negotiated flags narrowed to the backend's, with the proxy's own per-hop flags; or, when the backend
 * lacks one the client uses (a session flag, or a MariaDB extra other than progress reports), the missing names.
 */
export const backendLogin = (
  client: Pick<HandshakeResponse41, "capabilities" | "mariadbCapabilities">,
  backend: HandshakeV10,
  hop: Hop
): BackendLogin | { readonly lacks: string } => {
  const backendCaps = backend.capabilities
  const negotiated = (client.capabilities & hop.offered) >>> 0
  const asked = client.mariadbCapabilities & hop.offeredMariaDb
  const missing = (negotiated & sessionFlags & ~backendCaps) >>> 0
  const missingMariaDb = asked & ~backend.mariadbCapabilities & ~droppableMariaDb
  if (missing !== 0 || missingMariaDb !== 0) {
    return {
      lacks: [
        ...capabilityNames(missing),
        ...mariadbCapabilityNames(missingMariaDb).map((name) => `MARIADB_CLIENT_${name}`)
      ].join(", ")
    }
  }
  let flags = (negotiated & backendCaps & ~perHopFlags) >>> 0
  // CLIENT_MYSQL, which the encoder clears when MariaDB extras are asked for.
  flags |= Capability.LONG_PASSWORD | backendNeeds
  flags |= backendCaps & Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA
  if (hop.database) flags |= Capability.CONNECT_WITH_DB
  if (hop.attributes) flags |= backendCaps & Capability.CONNECT_ATTRS
  if (hop.tls) flags |= Capability.SSL
  return { flags: flags >>> 0, mariadbCapabilities: asked & backend.mariadbCapabilities }
}
