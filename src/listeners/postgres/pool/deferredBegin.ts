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
import { encodeTypedMessage } from "../../../codec/pg/Framing.ts"
import { encodeReadyForQuery } from "../../../codec/pg/SessionMessages.ts"
import { encodeQuery } from "./serverMessages.ts"

/** What PostgreSQL answers a BEGIN outside a transaction. */
export const BEGIN_REPLY = Buffer.concat([encodeTypedMessage("C", Buffer.from("BEGIN\0")), encodeReadyForQuery("T")])

/** What goes to the server connection before the client's next message. */
export const BEGIN_QUERY = encodeQuery("BEGIN")

// b, e, g, i, n; ORed with 0x20 to compare any case.
const word = [0x62, 0x65, 0x67, 0x69, 0x6e]

/** The Query at `i` in `buf`, of header length `length`, is whole and reads `BEGIN` or `BEGIN;` in any case. */
export const isStandaloneBegin = (buf: Buffer, i: number, length: number): boolean => {
  // Length counts itself (4), the text and its NUL.
  if ((length !== 10 && length !== 11) || i + 1 + length > buf.length || buf[i + length] !== 0) return false
  for (let k = 0; k < 5; k++) if ((buf[i + 5 + k]! | 0x20) !== word[k]) return false
  return length === 10 || buf[i + 10] === 0x3b
}
