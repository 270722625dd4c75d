// A pooled client's standalone BEGIN: a Query whose whole text is `BEGIN` or `BEGIN;` (any case), sent while it holds
// no server connection. The proxy answers it (CommandComplete "BEGIN", ReadyForQuery 'T'), as PostgreSQL would, and
// sends it to the server connection that the client's next message takes, just before that message; the server's
// reply to it is kept from the client (serverStream.ts `swallowed`). So a connection is held from the transaction's
// first statement instead of from its BEGIN: one round trip through the client less on each transaction's hold of
// one of the pool's few connections, and a client that sits after BEGIN holds none. PgCat and PgDog do the same.
// What a client can tell: its transaction starts on the server with its first statement, so `now()` and
// pg_stat_activity's `xact_start` read that time, not the BEGIN's (PostgreSQL itself takes the snapshot there too).
// A BEGIN with options (ISOLATION LEVEL, READ ONLY, …), or with other statements in its Query, goes to the server as
// it is; so does everything in the extended protocol.
// When that next message is a simple Query of a statement, the BEGIN goes in its text (`BEGIN;` + the client's, one
// Query): the server runs both in one round trip, the proxy makes one write and one read fewer per transaction, and
// PostgreSQL one reply and one wakeup fewer (bench/README.md "What each cut bought"). Its reply then starts with the
// BEGIN's CommandComplete, which is dropped, and a cursor position in an error or notice of that Query counts
// `BEGIN;` too: moved back (serverStream.ts). A text that fails before any statement runs (a syntax error: PostgreSQL
// parses the whole string first) ran nothing, not even the BEGIN: its error is dropped and the two are sent again
// as two Queries, so the client gets the error inside its transaction, as it would have. What a client can tell
// besides `now()`: `current_query()` and pg_stat_activity's `query` read `BEGIN;` + its text.
import { encodeTypedMessage } from "../../../codec/pg/Framing.ts"
import { encodeReadyForQuery } from "../../../codec/pg/SessionMessages.ts"
import { encodeQuery } from "./serverMessages.ts"

/** The CommandComplete body a BEGIN ends with. */
export const BEGIN_COMPLETE = Buffer.from("BEGIN\0", "latin1")

/** What PostgreSQL answers a BEGIN outside a transaction. */
export const BEGIN_REPLY = Buffer.concat([encodeTypedMessage("C", BEGIN_COMPLETE), encodeReadyForQuery("T")])

/** What goes to the server connection before the client's next message. */
export const BEGIN_QUERY = encodeQuery("BEGIN")

/** What goes in front of the text of a Query that carries the BEGIN; PostgreSQL's cursor positions count it. */
const IN_FRONT = Buffer.from("BEGIN;", "latin1")
export const IN_FRONT_CHARS = IN_FRONT.length

const isLetter = (byte: number): boolean => (byte | 0x20) >= 0x61 && (byte | 0x20) <= 0x7a

/**
 * The client's held bytes `held` with the BEGIN in the text of their message, when they are one whole simple Query
 * whose text starts with a keyword; undefined otherwise (the BEGIN then goes as a Query of its own). Not for a text
 * that starts with anything else: an empty one (PostgreSQL answers it with EmptyQueryResponse, which `BEGIN;` in
 * front would take away), a comment, a parenthesis. Nor for a Query with more behind it: should it fail before the
 * BEGIN ran, what follows would run outside the transaction before the two are sent again (the client's later bytes
 * wait meanwhile: session.ts `heldDone`).
 */
export const withBegin = (held: ReadonlyArray<Buffer>): Buffer | undefined => {
  const first = held[0]
  if (held.length !== 1 || first === undefined || first.length < 6 || first[0] !== 0x51) return undefined
  const length = first.readInt32BE(1)
  if (1 + length !== first.length || !isLetter(first[5]!)) return undefined
  const out = Buffer.allocUnsafe(first.length + IN_FRONT.length)
  out[0] = 0x51
  out.writeInt32BE(length + IN_FRONT.length, 1)
  IN_FRONT.copy(out, 5)
  first.copy(out, 5 + IN_FRONT.length, 5)
  return out
}

/** A Query carries the BEGIN, and its reply has not shown whether the BEGIN ran (Link `begin`). */
export const BEGIN_MERGED = 1
/** It ran (its CommandComplete dropped): cursor positions move back until the Query's ReadyForQuery. */
export const BEGIN_SHIFT = 2
/** The Query failed before the BEGIN ran: its reply is dropped up to its ReadyForQuery, then both go again as two. */
export const BEGIN_RETRY = 3

/** The client's own Query out of the one `withBegin` made (its first message). */
export const withoutBegin = (merged: Buffer): Buffer => {
  const length = merged.readInt32BE(1) - IN_FRONT.length
  const out = Buffer.allocUnsafe(1 + length)
  out[0] = 0x51
  out.writeInt32BE(length, 1)
  merged.copy(out, 5, 5 + IN_FRONT.length, 1 + length + IN_FRONT.length)
  return out
}

// b, e, g, i, n; ORed with 0x20 to compare any case.
const word = [0x62, 0x65, 0x67, 0x69, 0x6e]

/** The Query at `i` in `buf`, of header length `length`, is whole and reads `BEGIN` or `BEGIN;` in any case. */
export const isStandaloneBegin = (buf: Buffer, i: number, length: number): boolean => {
  // Length counts itself (4), the text and its NUL.
  if ((length !== 10 && length !== 11) || i + 1 + length > buf.length || buf[i + length] !== 0) return false
  for (let k = 0; k < 5; k++) if ((buf[i + 5 + k]! | 0x20) !== word[k]) return false
  return length === 10 || buf[i + 10] === 0x3b
}
