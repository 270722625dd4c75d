// A KILL of a pooled client's query (or connection) is sent to the server connection that client holds when the KILL
// is translated (killTap.ts killCommand), on the issuer's own server connection. The query may end, and the pool hand
// that connection to the next client, before MariaDB runs the KILL, which would then hit the next client's query (or
// end its connection). So the connection is claimed (pool/connHold.ts, PgBouncer's being_canceled for PostgreSQL)
// from the translation until the KILL statement's own answer (OK or ERR) reaches the issuer's session: by then MariaDB
// has set the target's kill flag (sql_parse.cc kill_one_thread, before sql_kill answers OK) or ended that
// connection. A KILL QUERY that found the thread idle leaves a flag that MariaDB clears as the thread's next command
// starts (dispatch_command's reset_kill_query, for any kill below KILL_CONNECTION), so the next client's command runs
// unharmed. A connection that a KILL CONNECTION was sent to is closed by the pool once the claim ends, never handed
// on (MariaDB hangs up on it, but that may reach the proxy after the KILL's answer on another connection); a hang-up
// heard while it is parked drops it at once (the pool listens to it as to an idle one). The claim lapses after
// cancelHoldMs in any case.
// Only a pooled issuer claims: it reads where each answer ends (pool/link.ts). A relayed client's KILL (killTap.ts)
// passes its answer back unread, so it takes no claim.
// With several workers the claim is taken by the worker whose client it is (`killAskedElsewhere`) and lent by number
// (`lendKillClaim`); the issuer's worker quotes it back through the primary (mk-) once the answer has come.
import { type CancelTicket, LentClaims } from "../pool/connHold.ts"
import type { MysqlSessionRecord, MysqlSessions } from "./sessions.ts"

/** Claims lent to KILLs that other workers send. */
const lent = new LentClaims()

/** A claim on the server connection `record` (a pooled client of this process) holds now, lent by number. */
export const lendKillClaim = (record: MysqlSessionRecord, connection: boolean): number | undefined => {
  const claim = record.claimServer?.(connection)
  return claim === undefined ? undefined : lent.lend(claim)
}

/** The issuer's worker says its KILL was answered (or will not be sent). */
export const killClaimDone = (hold: number): void => {
  lent.done(hold)
}

/**
 * The claim a pooled issuer's KILL of proxy id `id` holds until it is answered: taken now on a client of this process,
 * or the one another worker lent. `reaches`: the KILL goes on to `record`'s server connection (killReaches); when it
 * does not, a lent claim ends at once. `connection`: a KILL CONNECTION.
 */
export const killClaim = (
  sessions: MysqlSessions,
  id: number,
  record: MysqlSessionRecord | undefined,
  reaches: boolean,
  connection: boolean
): CancelTicket | undefined => {
  if (record === undefined) return undefined
  const ticket = record.lentHold === undefined ? undefined : sessions.lentTicket(id, record.lentHold)
  if (!reaches) {
    ticket?.done()
    return undefined
  }
  return ticket ?? record.claimServer?.(connection)
}
