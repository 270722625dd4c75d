// server → client for a pooled client: relays the server connection's messages as they stream (only the few it must
// read are read whole: ReadyForQuery, ParameterStatus, and while the proxy's own SET runs, everything), keeps
// `conn.status` current for the pool, follows the tracked parameters (tracked.ts), and gives the connection back at
// the ReadyForQuery('I') that leaves nothing unanswered. With named prepared statements on it also reads
// ParseComplete, CloseComplete and ErrorResponse, to hide or replace the replies to the proxy's own messages
// (replies.ts), and a DEALLOCATE ALL or DISCARD ALL that empties the connection of statements.
import { shiftPosition } from "../../../codec/pg/ErrorResponse.ts"
import { encodeTypedMessage } from "../../../codec/pg/Framing.ts"
import { encodeParameterStatus } from "../../../codec/pg/SessionMessages.ts"
import { BEGIN_COMPLETE, BEGIN_MERGED, BEGIN_RETRY, BEGIN_SHIFT, IN_FRONT_CHARS } from "./deferredBegin.ts"
import type { Link } from "./link.ts"
import { completed, errored, readied } from "./replies.ts"
import { parameterStatus } from "./serverMessages.ts"
import type { PooledSession } from "./session.ts"
import { probeAnswer } from "./statementStream.ts"
import { trackedIndex, trackedNames, withValue } from "./tracked.ts"

const READY = 0x5a
const PARAMETER_STATUS = 0x53
const ERROR = 0x45
const PARSE_COMPLETE = 0x31
const CLOSE_COMPLETE = 0x33
const COMMAND_COMPLETE = 0x43
const NOTICE = 0x4e
/** CommandComplete bodies after which a server connection has no prepared statement left: its set is emptied. */
const DEALLOCATE_ALL = Buffer.from("DEALLOCATE ALL\0")
const DISCARD_ALL = Buffer.from("DISCARD ALL\0")

const empty = Buffer.alloc(0)

/** A message of the server's kept from the client. */
const DROP = Buffer.alloc(0)

/**
 * A message of the reply to the Query that carries the BEGIN the proxy answered (deferredBegin.ts), which the relay
 * reads whole (`readsWhole`): undefined passes it on, else what the client gets instead (`DROP`: nothing). The
 * BEGIN's CommandComplete is dropped; an error before it means nothing ran: dropped up to its ReadyForQuery, then
 * both are sent again as two Queries. A ReadyForQuery that passes ends the Query. What the client sent meanwhile
 * waits until the end of the read (`fromServer`: session.ts `beginSettled`).
 */
const beginReply = (s: PooledSession, link: Link, type: number, body: Buffer): Buffer | undefined => {
  if (link.begin === BEGIN_RETRY) {
    if (type === READY) s.beginAgain(link)
    return DROP
  }
  if (type === READY) {
    link.begin = 0
    link.merged = undefined
    return undefined
  }
  if (link.begin === BEGIN_MERGED) {
    if (type === COMMAND_COMPLETE && body.equals(BEGIN_COMPLETE)) {
      link.begin = BEGIN_SHIFT
      link.merged = undefined
      return DROP
    }
    if (type === ERROR) {
      link.begin = BEGIN_RETRY
      return DROP
    }
  }
  if (type !== ERROR && type !== NOTICE) return undefined
  // The cursor position counts `BEGIN;` in front of the client's text.
  const shifted = shiftPosition(body, IN_FRONT_CHARS)
  return shifted === body ? undefined : encodeTypedMessage(String.fromCharCode(type), shifted)
}

/** What of the reply to the Query carrying the BEGIN the relay reads whole: see `beginReply`. */
const readsWhole = (link: Link, type: number): boolean =>
  link.begin === BEGIN_RETRY ||
  type === ERROR ||
  type === NOTICE ||
  (link.begin === BEGIN_MERGED && type === COMMAND_COMPLETE)

/** A ParameterStatus from the server: the connection's value, and the client's when it is a tracked one. */
const parameterChanged = (s: PooledSession, link: Link, body: Buffer, tellClient: boolean): void => {
  const p = parameterStatus(body)
  if (p === undefined) return
  link.conn.parameters.set(p[0], p[1])
  const i = trackedIndex(p[0])
  if (i >= 0 && tellClient) s.params = withValue(s.params, i, p[1])
}

/**
 * A message of the proxy's own SET, kept from the client. At its ReadyForQuery the client's values become the ones
 * the server now reports (its spelling of them: `utf8` reads back `UTF8`), and the client hears of any that differ
 * from what it was told, as after a SET of its own.
 */
const swallowed = (s: PooledSession, link: Link, type: number, body: Buffer): void => {
  if (type === PARAMETER_STATUS) parameterChanged(s, link, body, false)
  else if (type === ERROR) link.setFailed ??= Buffer.from(body)
  else if (type === READY) {
    link.swallow--
    link.conn.status = body[0] === 0x49 ? "I" : body[0] === 0x54 ? "T" : "E"
    if (link.setFailed !== undefined) {
      s.setFailed(link.setFailed)
      return
    }
    for (const i of link.setting) {
      const value = link.conn.parameters.get(trackedNames[i]!)
      if (value === undefined || s.params.values[i] === value) continue
      s.params = withValue(s.params, i, value)
      s.toClient(link, encodeParameterStatus(trackedNames[i]!, value))
    }
    link.setting = []
  }
}

/** Bytes from the server connection `link` holds. */
export const fromServer = (s: PooledSession, link: Link, chunk: Buffer): void => {
  const buf = link.rest.length === 0 ? chunk : Buffer.concat([link.rest, chunk])
  link.rest = empty
  const n = buf.length
  let from = 0
  let i = 0
  while (i < n) {
    if (link.remaining > 0) {
      const take = Math.min(link.remaining, n - i)
      i += take
      link.remaining -= take
      continue
    }
    if (n - i < 5) break
    const type = buf[i]!
    const length = buf.readInt32BE(i + 1)
    if (length < 4) {
      s.serverBroken(`invalid message length ${length} from the server`)
      return
    }
    const tracking = link.expects !== undefined
    const whole =
      type === READY ||
      type === PARAMETER_STATUS ||
      link.swallow > 0 ||
      (link.begin !== 0 && readsWhole(link, type)) ||
      (type === ERROR && (tracking || link.probes !== undefined)) ||
      (tracking && (type === PARSE_COMPLETE || type === CLOSE_COMPLETE)) ||
      (tracking &&
        type === COMMAND_COMPLETE &&
        (length === 4 + DEALLOCATE_ALL.length || length === 4 + DISCARD_ALL.length))
    if (!whole) {
      i += 5
      link.remaining = length - 4
      continue
    }
    const size = 1 + length
    if (n - i < size) break
    // What the client reads in place of this message, if not the message itself (DROP: nothing).
    let instead =
      link.begin !== 0 && link.swallow === 0 ? beginReply(s, link, type, buf.subarray(i + 5, i + size)) : undefined
    if (instead === undefined) {
      if (type === READY && link.swallow === 0) {
        // Every statement ends with one: read in place (its one byte), no view made of it.
        if (tracking) readied(s, link)
        const status = buf[i + 5] === 0x49 ? "I" : buf[i + 5] === 0x54 ? "T" : "E"
        link.conn.status = status
        if (link.pending > 0) link.pending--
        i += size
        if (link.pending === 0) {
          link.probes = undefined
          if ((status === "I" || s.ending) && (link.settled(s.remaining > 0) || s.ending)) {
            // Nothing more is owed; anything after it in this read (a notice) is still this client's.
            s.transactionEnded(from === 0 ? buf : buf.subarray(from))
            return
          }
        }
        continue
      }
      const body = buf.subarray(i + 5, i + size)
      if (link.swallow > 0) {
        s.toClient(link, buf.subarray(from, i))
        i += size
        from = i
        swallowed(s, link, type, body)
        if (s.link !== link) return
        continue
      }
      if (type === PARAMETER_STATUS) parameterChanged(s, link, body, true)
      else if (type === COMMAND_COMPLETE) {
        // A client's DEALLOCATE ALL or DISCARD ALL took every statement off the connection, the proxy's included.
        if (body.equals(DEALLOCATE_ALL) || body.equals(DISCARD_ALL)) link.conn.prepared = undefined
      } else if (type === PARSE_COMPLETE || type === CLOSE_COMPLETE) instead = completed(s, link)
      else if (type === ERROR) {
        if (tracking) errored(s, link)
        if (link.probes !== undefined) instead = probeAnswer(link, body)
      }
    }
    if (instead !== undefined) {
      s.toClient(link, buf.subarray(from, i))
      s.toClient(link, instead)
      from = i + size
    }
    i += size
  }
  if (i < n) link.rest = Buffer.from(buf.subarray(i))
  if (from < i) s.toClient(link, from === 0 && i === n ? buf : buf.subarray(from, i))
  // The client's bytes held behind the Query carrying the BEGIN go once what came before them is written: once the
  // BEGIN is known to have run, or has gone again (an error and its ReadyForQuery may come in reads of their own).
  if (s.wait !== 0 && link.begin !== BEGIN_MERGED && link.begin !== BEGIN_RETRY) s.beginSettled(link)
}
