// The run-time parameters a pooled client keeps from one transaction to the next, whichever server connection runs
// it (PgBouncer's "varcache"): the ones the server reports (GUC_REPORT) and a client may set in its startup message or
// with SET. Each client holds the values it was told; a server connection whose values differ is brought in line with
// one SET before the client's first message on it. Clients nearly all agree, so their values are interned: one
// shared object for all of them, not a Map each.

/** In the server's spelling (ParameterStatus names); startup and SET names are matched case-insensitively. */
export const trackedNames = [
  "client_encoding",
  "DateStyle",
  "TimeZone",
  "IntervalStyle",
  "standard_conforming_strings",
  "application_name"
] as const

const indexByLowerName = new Map<string, number>(trackedNames.map((name, i) => [name.toLowerCase(), i]))

/** The index of a tracked parameter, or -1. */
export const trackedIndex = (name: string): number => indexByLowerName.get(name.toLowerCase()) ?? -1

/** One client's values, in `trackedNames` order; undefined where the server reported none. Never mutated. */
export class Tracked {
  readonly values: ReadonlyArray<string | undefined>
  readonly key: string
  constructor(values: ReadonlyArray<string | undefined>, key: string) {
    this.values = values
    this.key = key
  }
}

// Bounded: clients that each set a different application_name get objects of their own past it, not a growing table.
const maxInterned = 1024
const interned = new Map<string, Tracked>()

const keyOf = (values: ReadonlyArray<string | undefined>) =>
  values.map((v) => (v === undefined ? "\u0001" : v)).join("\0")

export const tracked = (values: ReadonlyArray<string | undefined>): Tracked => {
  const key = keyOf(values)
  const known = interned.get(key)
  if (known !== undefined) return known
  const made = new Tracked(Object.freeze([...values]), key)
  if (interned.size < maxInterned) interned.set(key, made)
  return made
}

/** `t` with one value changed (the same object when it is unchanged). */
export const withValue = (t: Tracked, index: number, value: string): Tracked => {
  if (t.values[index] === value) return t
  const values = [...t.values]
  values[index] = value
  return tracked(values)
}

/**
 * What a new client is told: the server's values (a server connection's login) with the client's startup values in
 * their place. The server normalises what it is given (`utf8` → `UTF8`); the proxy passes the client's spelling on
 * and the first SET on a server connection reports the server's, which the client then hears (session.ts).
 */
export const initialTracked = (server: ReadonlyMap<string, string>, startup: ReadonlyMap<string, string>): Tracked => {
  const values: Array<string | undefined> = trackedNames.map((name) => server.get(name))
  for (const [name, value] of startup) {
    const i = trackedIndex(name)
    if (i >= 0) values[i] = value
  }
  return tracked(values)
}

// An E'' literal reads the same whatever standard_conforming_strings says.
const literal = (value: string) => `E'${value.replaceAll("\\", "\\\\").replaceAll("'", "''")}'`

/**
 * The SET statements that bring a server connection (its reported values, `server`) in line with a client's, and
 * the indexes they set; undefined when they agree.
 */
export const alignment = (
  client: Tracked,
  server: ReadonlyMap<string, string>
): { readonly sql: string; readonly indexes: ReadonlyArray<number> } | undefined => {
  let sql = ""
  const indexes: Array<number> = []
  for (let i = 0; i < trackedNames.length; i++) {
    const want = client.values[i]
    const name = trackedNames[i]!
    if (want === undefined || server.get(name) === want) continue
    sql += `SET "${name}" TO ${literal(want)};`
    indexes.push(i)
  }
  return indexes.length === 0 ? undefined : { sql, indexes }
}
