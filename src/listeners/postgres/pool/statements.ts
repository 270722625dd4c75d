// Protocol-level named prepared statements in transaction pooling (PgBouncer ≥ 1.21 `max_prepared_statements`,
// PgDog): a client's statement names are its own, kept per client (name → Statement); each distinct (query, parameter
// types) is one Statement with a name of the proxy's ("pp_<n>", never reused in this process), prepared on a server
// connection the first time a client that holds it uses it there. What the relay sends and expects back is in
// statementStream.ts (client → server) and replies.ts (server → client).

import { encodeTypedMessage } from "../../../codec/pg/Framing.ts"
import { encodeErrorResponse } from "../../../codec/pg/index.ts"

/** One (query, parameter types), shared by every client that prepared it. */
export class Statement {
  /** The proxy's name on server connections. */
  readonly name: string
  /** The whole Parse message under that name, sent to a server connection that lacks it. */
  readonly parse: Buffer
  constructor(name: string, parse: Buffer) {
    this.name = name
    this.parse = parse
  }
}

// Process-wide, bounded: past `maxKnown` distinct statements the table starts afresh. Clients keep the Statements
// they hold; a statement prepared again after that gets a new name (prepared once more where it is used).
const maxKnown = 50_000
const known = new Map<string, Statement>()
let counter = 0

/** The Statement of a Parse whose body, past the client's name, is `rest` (query, NUL, parameter types). */
export const statementFor = (rest: Buffer): Statement => {
  const key = rest.toString("latin1")
  const found = known.get(key)
  if (found !== undefined) return found
  if (known.size >= maxKnown) known.clear()
  const name = `pp_${++counter}`
  const made = new Statement(name, encodeTypedMessage("P", Buffer.concat([Buffer.from(`${name}\0`, "latin1"), rest])))
  known.set(key, made)
  return made
}

// Per pool (its database and role): the statements a server connection of it prepared without an error, so that a
// client's Parse of one while it holds no server connection is answered by the proxy (pgbench -M prepared prepares
// each statement with a synchronous Parse+Sync: waiting for a server connection there could wait on its own other
// clients). Bounded as `known`.
const good = new WeakMap<object, Set<string>>()

export const preparedWell = (pool: object, st: Statement): void => {
  let names = good.get(pool)
  if (names === undefined) good.set(pool, (names = new Set()))
  else if (names.size >= maxKnown) names.clear()
  names.add(st.name)
}

export const knownWell = (pool: object, st: Statement): boolean => good.get(pool)?.has(st.name) === true

/** The C string at `at` in `buf`, and the offset just past its NUL; undefined when the NUL is not there yet. */
export const cstring = (buf: Buffer, at: number, end: number): readonly [string, number] | undefined => {
  const nul = buf.indexOf(0, at)
  if (nul < 0 || nul >= end) return undefined
  return [buf.toString("utf8", at, nul), nul + 1]
}

/** 'D' or 'C' (frontend) for a statement ('S') or portal ('P'). */
export const encodeTarget = (type: "D" | "C", kind: "S" | "P", name: string): Buffer =>
  encodeTypedMessage(type, Buffer.from(`${kind}${name}\0`, "utf8"))

/**
 * A Close of a portal that never exists: PostgreSQL answers CloseComplete ("not an error to close a nonexistent
 * portal"), in its turn, and skips it after an error as it would the client's message it stands for.
 */
export const closeNothing = encodeTarget("C", "P", "polyproxy_no_portal")
/** The proxy's own Close of a statement a server connection no longer needs. */
export const encodeCloseStatement = (name: string): Buffer => encodeTarget("C", "S", name)

/** ParseComplete ('1'), what the client reads for a Parse that a server connection already had prepared. */
export const PARSE_COMPLETE: Buffer = encodeTypedMessage("1")

const error = (code: string, message: string, hint?: string): Buffer =>
  encodeErrorResponse({ severity: "ERROR", code, message, ...(hint === undefined ? {} : { hint }) })

// PostgreSQL's own words (src/backend/commands/prepare.c).
export const alreadyExists = (name: string): Buffer => error("42P05", `prepared statement "${name}" already exists`)
export const doesNotExist = (name: string): Buffer => error("26000", `prepared statement "${name}" does not exist`)

export const tooMany = (max: number): Buffer =>
  error(
    "53400", // configuration_limit_exceeded
    `too many prepared statements: ${max} is this pool's limit per client`,
    "Close prepared statements no longer needed, or raise the route's pool.maxPreparedStatements."
  )
