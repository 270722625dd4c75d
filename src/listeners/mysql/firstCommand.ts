// A client logged in by the proxy without a database (logins checked by the proxy): it holds no backend yet, and its
// commands are read here until one names the database it is routed by (the issue-22 promise: "TCP/MySQL — extracts
// database name from COM_INIT_DB packet"). The pipeline runs this as identify's `next`, bounded by timeouts.idle: the
// client is logged in and may idle as long as any idle client (src/listeners/Protocol.ts).
//
// What each command gets, as a MariaDB server with no database selected would answer where the proxy can:
//   COM_INIT_DB db, a lone `USE db`  → routed by db; the OK is sent once a server connection logged in to db (the
//                                      session's first answer). No route for db: MariaDB's 1049 "Unknown database
//                                      'db'" (42000) and the client stays, as with a real server.
//   `USE db; more` (multi-statement) → routed by db; the server runs the whole text and answers it.
//   COM_PING, COM_RESET_CONNECTION   → OK (there is nothing to reset).
//   COM_QUIT                         → closed, without a word, as a server does.
//   SELECT DATABASE(), @@version_comment, SET NAMES, SET autocommit = 1 → answered here (unroutedQuery.ts): NULL,
//                                      "polyproxy" (the banner of the interactive `mariadb`: which backend's comment
//                                      it would be is not known yet), remembered as the login's collation, OK.
//   COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA → no answer (the server sends none; no statement exists yet).
//   anything else                    → the listener's `defaultRoute` when it has one: routed there without a database
//                                      and the command goes to the server; else MariaDB's 1046 "No database
//                                      selected" (3D000), which is what most of them would get from the server.
//   a command over 16 KiB            → defaultRoute as above; else 1046 and closed (not read whole before routing).
import type * as net from "node:net"
import * as Effect from "effect/Effect"
import {
  Command,
  type Decoded,
  encodeErrPacket,
  encodePacket,
  frame,
  invalid,
  need,
  Status
} from "../../codec/mysql/index.ts"
import { type ProxyError, proxyError } from "../../domain/ProxyError.ts"
import { readFrame } from "../readFrame.ts"
import { NO_DATABASE_SELECTED, nextServerSequence } from "./errPacket.ts"
import { type AnswerShape, okPayload, oneValue } from "./localAnswers.ts"
import { unroutedQuery } from "./unroutedQuery.ts"

/** A command read whole up to this size; a longer one is no USE, and is not held before routing. */
const maxCommandPayload = 16 * 1024

/** The status of every answer before routing: autocommit, no transaction (a session starts so). */
const STATUS = Status.AUTOCOMMIT

const ER_NO_DB_ERROR = 1046
const ER_BAD_DB_ERROR = 1049

interface CommandPacket {
  readonly code: number
  /** The whole payload; undefined for one over maxCommandPayload (only its first byte was read). */
  readonly payload: Buffer | undefined
}

/** One command packet: sequence id 0, read whole unless it is long (then only its header and command byte). */
const decodeCommand = (buf: Buffer): Decoded<CommandPacket> => {
  if (buf.length < 5) return need(5 - buf.length)
  const length = buf.readUIntLE(0, 3)
  if (buf[3] !== 0) return invalid(`a command with sequence id ${buf[3]}`)
  if (length === 0) return invalid("an empty command packet")
  if (length > maxCommandPayload) return frame({ code: buf[4]!, payload: undefined }, 0)
  if (buf.length < 4 + length) return need(4 + length - buf.length)
  return frame({ code: buf[4]!, payload: buf.subarray(4, 4 + length) }, 4 + length)
}

export interface Unrouted {
  readonly client: net.Socket
  readonly shape: AnswerShape
  readonly defaultRoute: string | undefined
  /** False when no route serves `database` (NOT_FOUND); true otherwise, the pipeline resolving it again. */
  readonly known: (database: string) => Effect.Effect<boolean>
}

export interface Routed {
  /** The resource to route by: the database, or the defaultRoute. */
  readonly resourceId: string
  /** The login's database; "" when routed by defaultRoute. */
  readonly database: string
  /** The answer the client waits for: the USE's OK ("init-db"), or the server's answer to `pending` ("none"). */
  readonly owed: "init-db" | "none"
  /** The command the server answers, and what the client sent after it. */
  readonly pending: Buffer | undefined
  /** The collation a `SET NAMES` asked for, else the handshake's. */
  readonly characterSet: number
}

/** The client left: it owes nothing and is owed nothing (logged at debug). */
const gone = (why: string): ProxyError => proxyError("BAD_REQUEST", "client", why, { quiet: true })

const err = (code: number, sqlState: string, message: string): Buffer =>
  encodePacket(encodeErrPacket({ code, sqlState, message }), 1)

const noDatabase = () => err(ER_NO_DB_ERROR, "3D000", "No database selected")

const ok = encodePacket(okPayload(STATUS), 1)

const utf8 = new TextDecoder("utf-8", { fatal: false })

/** A command the proxy answered itself: the client goes on. */
const answered = Effect.succeed(undefined)

/**
 * Reads the client's commands (from `initial`, the bytes it sent after its login, on) until one routes it; answers
 * the others as described above. Fails only when the client leaves, breaks the framing, or sends a long command no
 * route takes.
 */
export const firstCommand = Effect.fnUntraced(function* (u: Unrouted, initial: Buffer) {
  const { client } = u
  let characterSet = u.shape.characterSet
  let rest = initial
  for (;;) {
    // A refusal while reading owes nothing (the client left); one after a command answers it, with id 1.
    nextServerSequence.set(client, 1)
    const read = yield* Effect.mapError(readFrame(client, decodeCommand, maxCommandPayload + 4, rest), (e) =>
      e.message.startsWith("client ") ? gone(e.message) : e
    )
    rest = read.rest
    const shape = { ...u.shape, characterSet }
    const routed = (resourceId: string, database: string, owed: Routed["owed"], pending?: Buffer): Routed => ({
      resourceId,
      database,
      owed,
      pending,
      characterSet
    })
    const answer = (bytes: Buffer) => {
      client.write(bytes)
      return answered
    }
    /** USE db: routed by it when a route serves it, else the server's 1049 and the client goes on. */
    const use = (database: string, owed: Routed["owed"]) => {
      if (database === "") return answer(noDatabase())
      return Effect.map(u.known(database), (known) => {
        if (!known) return void client.write(err(ER_BAD_DB_ERROR, "42000", `Unknown database '${database}'`))
        if (owed === "none") return routed(database, database, owed, Buffer.concat([read.bytes, rest]))
        // What the client pipelined behind it is the session's to read, after the USE's answer.
        if (rest.length > 0) client.unshift(rest)
        return routed(database, database, owed)
      })
    }
    const { code, payload } = read.value
    let next: Effect.Effect<Routed | undefined> | undefined
    if (payload === undefined) next = undefined
    else if (code === Command.QUIT) return yield* gone("client quit before choosing a database")
    else if (code === Command.PING || code === Command.RESET_CONNECTION) next = answer(ok)
    else if (code === Command.STMT_CLOSE || code === Command.STMT_SEND_LONG_DATA) next = answered
    else if (code === Command.INIT_DB) next = use(utf8.decode(payload.subarray(1)), "init-db")
    else if (code === Command.QUERY) {
      const query = unroutedQuery(utf8.decode(payload.subarray(1)))
      switch (query.kind) {
        case "use":
          next = use(query.database, query.alone ? "init-db" : "none")
          break
        case "database":
          next = answer(oneValue(query.column, 64, null, STATUS, shape))
          break
        case "versionComment":
          next = answer(oneValue(query.column, 9, "polyproxy", STATUS, shape))
          break
        case "names":
          characterSet = query.collation
          next = answer(ok)
          break
        case "autocommit":
          next = answer(ok)
          break
      }
    }
    if (next !== undefined) {
      const done = yield* next
      if (done !== undefined) return done
      continue
    }
    // Anything else needs a server: the default route's, else none.
    if (u.defaultRoute !== undefined) return routed(u.defaultRoute, "", "none", Buffer.concat([read.bytes, rest]))
    if (payload === undefined) {
      return yield* proxyError("NOT_FOUND", "client", `command ${code} over 16 KiB before any database was chosen`, {
        cause: NO_DATABASE_SELECTED
      })
    }
    client.write(noDatabase())
  }
})
