// The replies a server connection owes for the messages whose answers the relay changes once named prepared
// statements are on (statements.ts): every Parse, Close, Sync and Query sent, in order, since PostgreSQL answers in
// order. A ParseComplete or CloseComplete belongs to the first Parse or Close not yet answered: the proxy's own Parse
// or Close is swallowed, the Close standing for a client's Parse reads as ParseComplete. After an ErrorResponse the
// server skips everything up to the next Sync: what those messages would have done is undone here (a statement
// thought prepared is not). A ReadyForQuery ends a Sync or a Query.
import type { Link } from "./link.ts"
import type { PooledSession } from "./session.ts"
import { PARSE_COMPLETE, preparedWell, type Statement } from "./statements.ts"

/** Sync: its ReadyForQuery; an error skips up to it. */
export const SYNC = 0
/** Query or FunctionCall: its ReadyForQuery. */
export const QUERY = 1
/** A client's Parse of the unnamed statement, or a Close of a portal: the reply passes. */
export const PASS_PARSE = 2
export const PASS_CLOSE = 3
/** A client's named Parse, sent as the proxy's: its ParseComplete passes; skipped, the client has no such statement. */
export const CLIENT_PARSE = 4
/** A Close standing for a client's Parse of a statement the connection has: its CloseComplete reads ParseComplete. */
export const PARSE_BY_CLOSE = 5
/** A Close standing for a client's Close of a statement: its CloseComplete passes; skipped, the client keeps it. */
export const CLIENT_CLOSE = 6
/** The proxy's own Parse and Close (its `client` is the proxy's name): their replies are swallowed. */
export const OWN_PARSE = 7
export const OWN_CLOSE = 8

export interface Expected {
  readonly kind: number
  readonly statement: Statement | undefined
  /** The client's name for it. */
  readonly client: string | undefined
}

const marker = (kind: number): Expected => ({ kind, statement: undefined, client: undefined })
const sync = marker(SYNC)
const query = marker(QUERY)
const passParse = marker(PASS_PARSE)
const passClose = marker(PASS_CLOSE)

export const expect = (link: Link, kind: number, statement?: Statement, client?: string): void => {
  const e =
    statement !== undefined || client !== undefined
      ? { kind, statement, client }
      : kind === SYNC
        ? sync
        : kind === QUERY
          ? query
          : kind === PASS_PARSE
            ? passParse
            : passClose
  link.expects!.push(e)
}

const SWALLOW = Buffer.alloc(0)

/** A ParseComplete ('1') or CloseComplete ('3'): undefined passes it, else what the client reads in its place. */
export const completed = (s: PooledSession, link: Link): Buffer | undefined => {
  const e = next(s, link, false)
  if (e === undefined) return undefined
  switch (e.kind) {
    case CLIENT_PARSE:
      preparedWell(s.pool, e.statement!)
      return undefined
    case OWN_PARSE:
      preparedWell(s.pool, e.statement!)
      return SWALLOW
    case OWN_CLOSE:
      return SWALLOW
    case PARSE_BY_CLOSE:
      return PARSE_COMPLETE
    default:
      return undefined
  }
}

/** A ReadyForQuery: ends the first Sync or Query owed (anything before it was skipped). */
export const readied = (s: PooledSession, link: Link): void => {
  next(s, link, true)
  if (link.head === link.expects!.length) {
    link.expects!.length = 0
    link.head = 0
  }
}

/**
 * An ErrorResponse. From a Query: nothing is skipped. Else the failed message and everything after it up to the
 * next Sync are skipped by the server.
 */
export const errored = (s: PooledSession, link: Link): void => {
  const q = link.expects!
  while (link.head < q.length) {
    const kind = q[link.head]!.kind
    if (kind === SYNC || kind === QUERY) return
    skipped(s, link, q[link.head++]!)
  }
}

/** The first reply owed: a Complete's own (`ready` false) or a ReadyForQuery's (true); what comes before it was skipped. */
const next = (s: PooledSession, link: Link, ready: boolean): Expected | undefined => {
  const q = link.expects!
  while (link.head < q.length) {
    const e = q[link.head++]!
    const isReady = e.kind === SYNC || e.kind === QUERY
    if (isReady === ready) return e
    skipped(s, link, e)
  }
  return undefined
}

/** The server skipped (or failed) `e`: what the relay assumed it did is undone. */
const skipped = (s: PooledSession, link: Link, e: Expected): void => {
  const st = e.statement
  const statements = s.statements
  switch (e.kind) {
    case OWN_CLOSE: // `client` holds the proxy's name: still prepared
      link.conn.prepared?.add(e.client!)
      return
    case OWN_PARSE:
      link.conn.prepared?.delete(st!.name)
      return
    case CLIENT_PARSE:
      link.conn.prepared?.delete(st!.name)
      if (statements !== undefined && statements.get(e.client!) === st) statements.delete(e.client!)
      return
    case PARSE_BY_CLOSE: // the client has no such statement either
      if (statements !== undefined && statements.get(e.client!) === st) statements.delete(e.client!)
      return
    case CLIENT_CLOSE:
      if (statements !== undefined && !statements.has(e.client!)) statements.set(e.client!, st!)
      return
  }
}
