// client → server for the messages that name a prepared statement (Parse, Bind, Describe, Close), pooled: with
// `pool.maxPreparedStatements` above 0 the client's names are rewritten to the proxy's (statements.ts), a statement
// the server connection lacks is prepared on it first, and the replies this changes are followed (replies.ts).
// What PostgreSQL would refuse (a name prepared twice, one never prepared) is sent as a probe that fails on the server
// as the client's message would have (the transaction aborted, messages up to Sync skipped), and the relay puts
// PostgreSQL's words in place of the probe's error (serverStream.ts). With 0, a named Parse is refused so (0A000).
import { decodeErrorFields, encodeErrorResponse } from "../../../codec/pg/index.ts"
import { encodeExecute, encodeReadyForQuery } from "../../../codec/pg/SessionMessages.ts"
import type { Link } from "./link.ts"
import {
  CLIENT_CLOSE,
  CLIENT_PARSE,
  expect,
  OWN_CLOSE,
  OWN_PARSE,
  PARSE_BY_CLOSE,
  PASS_CLOSE,
  PASS_PARSE
} from "./replies.ts"
import type { PooledSession } from "./session.ts"
import {
  alreadyExists,
  closeNothing,
  cstring,
  doesNotExist,
  encodeCloseStatement,
  encodeTarget,
  knownWell,
  PARSE_COMPLETE,
  type Statement,
  statementFor,
  tooMany
} from "./statements.ts"

const PARSE = 0x50
const SYNC = 0x53
const BIND = 0x42
const DESCRIBE = 0x44
const STATEMENT = 0x53

/** More bytes are needed; the message passes unchanged (its body streams on as usual). */
export const NEED = -1
export const PASS = -2

export const namedStatementRefusal = encodeErrorResponse({
  severity: "ERROR",
  code: "0A000", // feature_not_supported
  message: "named prepared statements are not supported in transaction pooling mode",
  hint: "Use unnamed statements (with node-postgres: no `name` on the query), raise the route's pool.maxPreparedStatements above 0, or use a route whose pool mode is session."
})

const probePrefix = "polyproxy_refused_"

/**
 * The error the client reads for a probe's (an ErrorResponse body naming a probe's portal), undefined for any other.
 */
export const probeAnswer = (link: Link, body: Buffer): Buffer | undefined => {
  const e = decodeErrorFields(body)
  if (e._tag !== "Frame" || e.value.fields.get("C") !== "34000") return undefined
  const m = /"(polyproxy_refused_\d+)"/.exec(e.value.fields.get("M") ?? "")
  return m === null ? undefined : link.probes?.get(m[1]!)
}

/** An Execute of a portal that cannot exist in the client's message's place: the server fails it; `answer` is read. */
const probe = (s: PooledSession, link: Link, answer: Buffer): void => {
  const probes = (link.probes ??= new Map())
  const portal = `${probePrefix}${probes.size + 1}`
  probes.set(portal, answer)
  s.forward(link, encodeExecute(portal))
}

/** The client's message (at `i`, `end` past it) is dropped for a probe: its body is skipped. */
const refuse = (s: PooledSession, link: Link, i: number, end: number, answer: Buffer): number => {
  probe(s, link, answer)
  s.remaining = end - (i + 5)
  s.skipping = s.remaining > 0
  return i + 5
}

/** Prepares `st` on the held server connection unless it has it (the least recently used closed past the limit). */
const ensure = (s: PooledSession, link: Link, st: Statement, own: boolean): boolean => {
  const prepared = (link.conn.prepared ??= new Set())
  if (prepared.has(st.name)) {
    prepared.delete(st.name)
    prepared.add(st.name)
    return true
  }
  const max = s.pool.settings.maxPreparedStatements
  for (const oldest of prepared) {
    if (prepared.size < max) break
    prepared.delete(oldest)
    s.forward(link, encodeCloseStatement(oldest))
    expect(link, OWN_CLOSE, undefined, oldest)
  }
  prepared.add(st.name)
  if (own) {
    s.forward(link, st.parse)
    expect(link, OWN_PARSE, st)
  }
  return false
}

/**
 * A Parse, Bind, Describe or Close (`type`, `length`) at `i` of `buf`; `from` is the first byte not yet forwarded.
 * Returns NEED, PASS (nothing forwarded), or where the relay goes on, all before it forwarded or dropped: past the
 * message, or (a Bind) past its names, the rest of its body to stream (`s.remaining`).
 */
export const statementMessage = (
  s: PooledSession,
  link: Link,
  buf: Buffer,
  from: number,
  i: number,
  type: number,
  length: number
): number => {
  const end = i + 1 + length
  const on = link.expects !== undefined
  if (type === PARSE) {
    if (buf.length - i < 6) return NEED
    if (buf[i + 5] === 0) {
      if (on) expect(link, PASS_PARSE)
      return PASS
    }
    if (buf.length < end) return NEED
    s.forward(link, buf.subarray(from, i))
    if (!on) return refuse(s, link, i, end, namedStatementRefusal)
    const [name, after] = cstring(buf, i + 5, end) ?? ["", end]
    const statements = (s.statements ??= new Map())
    if (statements.has(name)) return refuse(s, link, i, end, alreadyExists(name))
    const max = s.pool.settings.maxPreparedStatements
    if (statements.size >= max) return refuse(s, link, i, end, tooMany(max))
    const st = statementFor(buf.subarray(after, end))
    statements.set(name, st)
    if (ensure(s, link, st, false)) {
      s.forward(link, closeNothing)
      expect(link, PARSE_BY_CLOSE, st, name)
    } else {
      s.forward(link, st.parse)
      expect(link, CLIENT_PARSE, st, name)
    }
    return end
  }
  if (!on) return PASS
  if (type === BIND) {
    // Portal name, then statement name: only those are needed whole.
    const portal = cstring(buf, i + 5, end)
    const named = portal === undefined ? undefined : cstring(buf, portal[1], end)
    if (named === undefined) return buf.length < end ? NEED : PASS
    if (named[0] === "") return PASS
    s.forward(link, buf.subarray(from, i))
    const st = s.statements?.get(named[0])
    if (st === undefined) return refuse(s, link, i, end, doesNotExist(named[0]))
    ensure(s, link, st, true)
    const name = Buffer.from(`${st.name}\0`, "latin1")
    const head = Buffer.allocUnsafe(portal![1] - i)
    buf.copy(head, 0, i, portal![1])
    head.writeInt32BE(length - (named[1] - portal![1]) + name.length, 1)
    s.forward(link, head)
    s.forward(link, name)
    s.remaining = end - named[1]
    return named[1]
  }
  // Describe, Close: a kind byte and a name.
  if (buf.length < end) return NEED
  const name = length > 5 && buf[i + 5] === STATEMENT ? (cstring(buf, i + 6, end)?.[0] ?? "") : ""
  if (type === DESCRIBE) {
    if (name === "") return PASS
    s.forward(link, buf.subarray(from, i))
    const st = s.statements?.get(name)
    if (st === undefined) return refuse(s, link, i, end, doesNotExist(name))
    ensure(s, link, st, true)
    s.forward(link, encodeTarget("D", "S", st.name))
    return end
  }
  if (name === "") {
    expect(link, PASS_CLOSE)
    return PASS
  }
  // The client's Close of its statement: forgotten at once (the server connection keeps it prepared for others),
  // CloseComplete in its turn from a Close of nothing.
  s.forward(link, buf.subarray(from, i))
  const st = s.statements?.get(name)
  s.statements?.delete(name)
  s.forward(link, closeNothing)
  if (st === undefined) expect(link, PASS_CLOSE)
  else expect(link, CLIENT_CLOSE, st, name)
  return end
}

const parsedIdle = Buffer.concat([PARSE_COMPLETE, encodeReadyForQuery("I")])

/**
 * A client that holds no server connection sent a named Parse (at `i`) and a Sync: when the pool's connections have
 * prepared that statement without an error before, the proxy answers ParseComplete and ReadyForQuery itself, and
 * returns where the relay goes on (past the Sync). Else -1: the client waits for a server connection as for anything.
 */
export const parseWhileIdle = (s: PooledSession, buf: Buffer, i: number, length: number): number => {
  const end = i + 1 + length
  // In a transaction whose BEGIN the proxy answered, the ReadyForQuery would say 'T': the server answers it then.
  if (s.beginPending) return -1
  if (buf.length < end + 5 || buf[end] !== SYNC || buf.readInt32BE(end + 1) !== 4 || buf[i + 5] === 0) return -1
  const max = s.pool.settings.maxPreparedStatements
  const named = cstring(buf, i + 5, end)
  if (named === undefined || max === 0 || s.statements?.has(named[0]) || (s.statements?.size ?? 0) >= max) return -1
  const st = statementFor(buf.subarray(named[1], end))
  if (!knownWell(s.pool, st)) return -1
  ;(s.statements ??= new Map()).set(named[0], st)
  s.answer(parsedIdle)
  return end + 5
}
