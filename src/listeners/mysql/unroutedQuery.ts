// What the proxy makes of a COM_QUERY from a client logged in without a database, before it is routed
// (firstCommand.ts): the few statements clients send before their first USE that the proxy can answer as the server
// would without one, and USE itself. Found by watching the real clients (issue 22):
//   - `mariadb -e "USE t2; …"` and an interactive `USE t2`: `SELECT DATABASE()` (to compare), then COM_INIT_DB;
//   - the interactive `mariadb` at start: `select @@version_comment limit 1` (its banner);
//   - mysql2: `USE t2` as a query; mariadb-slap: nothing before its COM_QUIT (its workers name the schema at login).
// `SET NAMES x` (PHP's mysqli set_charset, Connector/J) sets what the handshake's collation sets: it is remembered as
// that collation for the server logins to come. `SET autocommit = 1` asks for what already holds. Anything else
// needs a server. Pure.
import { SqlLexer, Token } from "../../codec/mysql/SqlLexer.ts"

export type UnroutedQuery =
  /** `USE db`, alone, or first of a multi-statement text the server then runs whole (`alone` false). */
  | { readonly kind: "use"; readonly database: string; readonly alone: boolean }
  /** `SELECT DATABASE()` or `SELECT SCHEMA()` [[AS] alias]: NULL before any USE. */
  | { readonly kind: "database"; readonly column: string }
  /** `SELECT @@version_comment [LIMIT 1]`. */
  | { readonly kind: "versionComment"; readonly column: string }
  /** `SET NAMES charset [COLLATE collation]`, as the collation id a handshake would carry. */
  | { readonly kind: "names"; readonly collation: number }
  /** `SET [SESSION] autocommit = 1`: a session starts so. */
  | { readonly kind: "autocommit" }
  | { readonly kind: "other" }

const other: UnroutedQuery = { kind: "other" }

const SEMICOLON = 0x3b

/**
 * Character sets SET NAMES takes, as their default collation's id on MariaDB 10.11 (SHOW CHARACTER SET). MySQL 8's
 * utf8mb4 default is utf8mb4_0900_ai_ci (255): `SET NAMES utf8mb4` through the proxy gives utf8mb4_general_ci there,
 * as a client that names utf8mb4 in its handshake gets. ucs2, utf16 and utf32 cannot be a client's (ER 1231).
 */
const charsets: ReadonlyMap<string, number> = new Map([
  ["big5", 1],
  ["dec8", 3],
  ["cp850", 4],
  ["hp8", 6],
  ["koi8r", 7],
  ["latin1", 8],
  ["latin2", 9],
  ["swe7", 10],
  ["ascii", 11],
  ["ujis", 12],
  ["sjis", 13],
  ["hebrew", 16],
  ["tis620", 18],
  ["euckr", 19],
  ["koi8u", 22],
  ["gb2312", 24],
  ["greek", 25],
  ["cp1250", 26],
  ["gbk", 28],
  ["latin5", 30],
  ["armscii8", 32],
  ["utf8", 33],
  ["utf8mb3", 33],
  ["cp866", 36],
  ["keybcs2", 37],
  ["macce", 38],
  ["macroman", 39],
  ["cp852", 40],
  ["latin7", 41],
  ["utf8mb4", 45],
  ["cp1251", 51],
  ["cp1256", 57],
  ["cp1257", 59],
  ["binary", 63],
  ["geostd8", 92],
  ["cp932", 95],
  ["eucjpms", 97]
])

/** The collations `SET NAMES … COLLATE` is seen with in practice; another one is left to a server. */
const collations: ReadonlyMap<string, number> = new Map([
  ["latin1_swedish_ci", 8],
  ["latin1_bin", 47],
  ["latin1_general_ci", 48],
  ["ascii_general_ci", 11],
  ["ascii_bin", 65],
  ["utf8_general_ci", 33],
  ["utf8mb3_general_ci", 33],
  ["utf8_bin", 83],
  ["utf8mb3_bin", 83],
  ["utf8_unicode_ci", 192],
  ["utf8mb3_unicode_ci", 192],
  ["utf8mb4_general_ci", 45],
  ["utf8mb4_bin", 46],
  ["utf8mb4_unicode_ci", 224],
  ["utf8mb4_unicode_520_ci", 246],
  ["utf8mb4_0900_ai_ci", 255],
  ["binary", 63]
])

/** The lexer's current token (read through a call: TypeScript keeps no narrowing of it across `next()`). */
const kindOf = (lx: SqlLexer): Token => lx.kind

/** The current token is the last of the statement: only `;` (any number) follow it. */
const lastStatement = (lx: SqlLexer): boolean => {
  while (lx.isPunct(SEMICOLON)) lx.next()
  return kindOf(lx) === Token.END
}

/** A WORD, or a quoted string's text (SET NAMES takes both). */
const nameOrString = (lx: SqlLexer): string | undefined => {
  if (lx.kind === Token.WORD) return lx.name().toLowerCase()
  if (lx.kind === Token.STRING) return lx.sql.slice(lx.start + 1, lx.end - 1).toLowerCase()
  return undefined
}

const use = (lx: SqlLexer): UnroutedQuery => {
  lx.next()
  if (lx.kind !== Token.WORD && lx.kind !== Token.IDENT) return other
  const database = lx.name()
  lx.next()
  if (kindOf(lx) === Token.END) return { kind: "use", database, alone: true }
  if (!lx.isPunct(SEMICOLON)) return other
  return { kind: "use", database, alone: lastStatement(lx) }
}

const select = (lx: SqlLexer): UnroutedQuery => {
  lx.next()
  const start = lx.start
  if (lx.is("DATABASE") || lx.is("SCHEMA")) {
    lx.next()
    if (!lx.isPunct(0x28)) return other
    lx.next()
    if (!lx.isPunct(0x29)) return other
    let column = lx.sql.slice(start, lx.end)
    lx.next()
    const alias = lx.is("AS")
    if (alias) lx.next()
    if ((alias && kindOf(lx) === Token.WORD) || kindOf(lx) === Token.IDENT || kindOf(lx) === Token.STRING) {
      column = kindOf(lx) === Token.STRING ? lx.sql.slice(lx.start + 1, lx.end - 1) : lx.name()
      lx.next()
    }
    return lastStatement(lx) ? { kind: "database", column } : other
  }
  if (lx.kind === Token.SYSTEM_VAR && lx.sql.slice(lx.start, lx.end).toLowerCase() === "@@version_comment") {
    const column = lx.sql.slice(lx.start, lx.end)
    lx.next()
    if (lx.is("LIMIT")) {
      lx.next()
      if (kindOf(lx) !== Token.WORD || !/^[1-9]\d*$/.test(lx.name())) return other
      lx.next()
    }
    return lastStatement(lx) ? { kind: "versionComment", column } : other
  }
  return other
}

const set = (lx: SqlLexer): UnroutedQuery => {
  lx.next()
  if (lx.is("NAMES")) {
    lx.next()
    const charset = nameOrString(lx)
    let collation = charset === undefined ? undefined : charsets.get(charset)
    lx.next()
    if (lx.is("COLLATE")) {
      lx.next()
      const named = nameOrString(lx)
      collation = named === undefined ? undefined : collations.get(named)
      lx.next()
    }
    return collation !== undefined && lastStatement(lx) ? { kind: "names", collation } : other
  }
  if (lx.is("SESSION") || lx.is("LOCAL")) lx.next()
  else if (lx.kind === Token.SYSTEM_VAR) {
    const scope = lx.sql.slice(lx.start, lx.end).toLowerCase()
    if (scope === "@@session" || scope === "@@local") {
      lx.next()
      if (!lx.isPunct(0x2e)) return other
      lx.next()
    } else if (scope === "@@autocommit") {
      return autocommitOn(lx)
    } else return other
  }
  return lx.is("AUTOCOMMIT") ? autocommitOn(lx) : other
}

/** `= 1` (or ON, TRUE) and the end, after the variable's name. */
const autocommitOn = (lx: SqlLexer): UnroutedQuery => {
  lx.next()
  if (!lx.isPunct(0x3d)) return other
  lx.next()
  if (!(lx.is("1") || lx.is("ON") || lx.is("TRUE"))) return other
  lx.next()
  return lastStatement(lx) ? { kind: "autocommit" } : other
}

export const unroutedQuery = (sql: string): UnroutedQuery => {
  const lx = new SqlLexer(sql)
  lx.next()
  if (lx.is("USE")) return use(lx)
  if (lx.is("SELECT")) return select(lx)
  if (lx.is("SET")) return set(lx)
  return other
}
