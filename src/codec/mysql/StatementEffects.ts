// Client → server: what the text of a COM_QUERY does to the session it runs in, so a transaction-pooling session
// knows when the client starts to depend on its server connection (ProxySQL's "multiplexing disabled") and which
// database a USE moves it to. Pure; reads every statement of a multi-statement text.
//
// Pins (session state that lives on the server connection): user variables (any `@name`: reading one depends on an
// earlier assignment, and `SELECT … INTO @x` assigns), SET of session variables (autocommit excepted: the server's
// status flags track it; GLOBAL/PERSIST ones are not session state), SET NAMES / CHARACTER SET, SET TRANSACTION
// (it waits for the next transaction), SET ROLE, temporary tables, LOCK TABLES, FLUSH TABLES … WITH READ LOCK / FOR
// EXPORT, GET_LOCK(), SQL-level PREPARE, SQL_CALC_FOUND_ROWS (for FOUND_ROWS()), LAST_INSERT_ID(expr), XA
// transactions, HANDLER, MariaDB's BACKUP STAGE / BACKUP LOCK, MySQL's LOCK INSTANCE FOR BACKUP.
// Not read: the SQL inside EXECUTE IMMEDIATE's string or a prepared statement, what a CALLed procedure does, and
// statements nested in IF/WHILE… of an anonymous BEGIN NOT ATOMIC block (user variables and CREATE TEMPORARY are
// still seen there). Routine, trigger and event definitions are skipped: their bodies run later, elsewhere.
import { RELEASES, type StatementEffects } from "./SessionState.ts"
import { SqlLexer, Token } from "./SqlLexer.ts"

export { RELEASES, type StatementEffects } from "./SessionState.ts"

const SEMICOLON = 0x3b
const COMMA = 0x2c
const OPEN = 0x28
const CLOSE = 0x29
const DOT = 0x2e

const NONE: StatementEffects = Object.freeze({})

/** Scopes whose variables are not the session's (`@@global.x`, `SET PERSIST x`). */
const GLOBAL_SCOPES: ReadonlySet<string> = new Set(["GLOBAL", "PERSIST", "PERSIST_ONLY"])

/** `noBackslashEscapes`: the session runs with sql_mode NO_BACKSLASH_ESCAPES (Status.NO_BACKSLASH_ESCAPES). */
export const statementEffects = (sql: string, noBackslashEscapes = false): StatementEffects => {
  const reader = new EffectsReader(new SqlLexer(sql, !noBackslashEscapes))
  reader.read()
  const { unpins, use } = reader
  const pins = reader.pins?.length === 0 ? undefined : reader.pins
  if (pins === undefined && unpins === undefined && use === undefined) return NONE
  const effects: { pins?: ReadonlyArray<string>; unpins?: ReadonlyArray<string>; use?: string } = {}
  if (pins !== undefined) effects.pins = pins
  if (unpins !== undefined) effects.unpins = unpins
  if (use !== undefined) effects.use = use
  return effects
}

/** `list` (made at its first item) with `item` once. */
const addOnce = (list: Array<string> | undefined, item: string): Array<string> => {
  if (list === undefined) return [item]
  if (!list.includes(item)) list.push(item)
  return list
}

class EffectsReader {
  /** Made at the first pin or release only. */
  pins: Array<string> | undefined
  unpins: Array<string> | undefined
  use: string | undefined
  private readonly lx: SqlLexer
  /** A function whose call pins or unpins, waiting for its "(" (GET_LOCK, RELEASE_ALL_LOCKS, LAST_INSERT_ID). */
  private call: string | undefined
  private lastInsertIdArgs = false
  private afterCreate = false

  constructor(lx: SqlLexer) {
    this.lx = lx
  }

  read(): void {
    const lx = this.lx
    lx.next()
    while (lx.kind !== Token.END) {
      if (lx.isPunct(SEMICOLON)) lx.next()
      else this.statement()
    }
  }

  private pin(what: string): void {
    this.pins = addOnce(this.pins, what)
  }

  /** A statement that releases state: what it releases and an earlier statement of the text pinned is gone. */
  private unpin(statement: string): void {
    this.unpins = addOnce(this.unpins, statement)
    const pins = this.pins
    if (pins === undefined) return
    for (const kind of RELEASES[statement] ?? []) {
      const at = pins.indexOf(kind)
      if (at >= 0) pins.splice(at, 1)
    }
  }

  private get atEnd(): boolean {
    return this.lx.kind === Token.END || this.lx.isPunct(SEMICOLON)
  }

  /** One statement, from its first token to its ";" (not consumed) or the end. */
  private statement(): void {
    const lx = this.lx
    if (lx.kind !== Token.WORD) {
      this.rest()
      return
    }
    if (lx.is("USE")) {
      lx.next()
      if (lx.isName()) this.use = lx.name()
      this.rest()
      return
    }
    if (lx.is("SET")) {
      this.set()
      return
    }
    if (lx.is("CREATE")) {
      this.create()
      return
    }
    if (lx.is("ALTER")) {
      lx.next()
      if (lx.is("EVENT")) this.definition()
      else this.rest()
      return
    }
    if (lx.is("BEGIN")) {
      lx.next()
      if (!lx.is("NOT")) {
        this.rest()
        return
      }
      lx.next()
      if (lx.is("ATOMIC")) lx.next()
      // An anonymous block runs now: its statements are read as statements.
      return
    }
    const first = this.keyword()
    lx.next()
    const second = this.keyword()
    switch (first) {
      case "LOCK":
        if (second === "TABLE" || second === "TABLES") this.pin("LOCK TABLES")
        else if (second === "INSTANCE") this.pin("LOCK INSTANCE FOR BACKUP")
        break
      case "UNLOCK":
        if (second === "TABLE" || second === "TABLES") this.unpin("UNLOCK TABLES")
        else if (second === "INSTANCE") this.unpin("UNLOCK INSTANCE")
        break
      case "FLUSH":
        this.flush()
        return
      case "PREPARE":
        this.pin("PREPARE")
        break
      case "HANDLER":
        this.pin("HANDLER")
        break
      case "XA":
        if (second === "START" || second === "BEGIN") this.pin("XA transaction")
        else if (second === "COMMIT" || second === "ROLLBACK") this.unpin(`XA ${second}`)
        break
      case "BACKUP":
        if (second === "LOCK") this.pin("BACKUP LOCK")
        else if (second === "UNLOCK") this.unpin("BACKUP UNLOCK")
        else if (second === "STAGE") {
          lx.next()
          if (lx.is("END")) this.unpin("BACKUP STAGE END")
          else this.pin("BACKUP STAGE")
        }
        break
    }
    this.rest()
  }

  /** The current word in upper case when it is one of the few the statement heads above compare, else "". */
  private keyword(): string {
    const lx = this.lx
    if (lx.kind !== Token.WORD || lx.end - lx.start > 9) return ""
    return lx.sql.slice(lx.start, lx.end).toUpperCase()
  }

  /** The rest of a statement: only the rules that hold anywhere in it. */
  private rest(): void {
    while (!this.atEnd) {
      this.anywhere()
      this.lx.next()
    }
  }

  private anywhere(): void {
    const lx = this.lx
    const call = this.call
    this.call = undefined
    if (call !== undefined && lx.isPunct(OPEN)) {
      if (call === "LAST_INSERT_ID") this.lastInsertIdArgs = true
      else if (call === "RELEASE_ALL_LOCKS") this.unpin(call)
      else this.pin(call)
      return
    }
    if (this.lastInsertIdArgs) {
      // LAST_INSERT_ID() reads; LAST_INSERT_ID(expr) sets the value the next LAST_INSERT_ID() returns.
      this.lastInsertIdArgs = false
      if (!lx.isPunct(CLOSE)) this.pin("LAST_INSERT_ID(expr)")
    }
    const created = this.afterCreate
    this.afterCreate = false
    switch (lx.kind) {
      case Token.USER_VAR:
        this.pin("user variable")
        return
      case Token.WORD: {
        const length = lx.end - lx.start
        if (length === 8 && lx.is("GET_LOCK")) this.call = "GET_LOCK"
        else if (length === 17 && lx.is("RELEASE_ALL_LOCKS")) this.call = "RELEASE_ALL_LOCKS"
        else if (length === 14 && lx.is("LAST_INSERT_ID")) this.call = "LAST_INSERT_ID"
        else if (length === 19 && lx.is("SQL_CALC_FOUND_ROWS")) this.pin("SQL_CALC_FOUND_ROWS")
        else if (length === 6 && lx.is("CREATE")) this.afterCreate = true
        else if (created && (lx.is("OR") || lx.is("REPLACE"))) this.afterCreate = true
        // CREATE TEMPORARY where a statement head is not read (inside an anonymous block's IF, say).
        else if (created && lx.is("TEMPORARY")) this.pin("temporary table")
      }
    }
  }

  /** SET: a list of assignments, or one of the SET statements that are not (NAMES, TRANSACTION, ROLE, STATEMENT…). */
  private set(): void {
    const lx = this.lx
    lx.next()
    let global = false
    let scoped = false
    for (let first = true; !this.atEnd; first = false) {
      if (lx.is("GLOBAL") || lx.is("PERSIST") || lx.is("PERSIST_ONLY") || lx.is("SESSION") || lx.is("LOCAL")) {
        global = !(lx.is("SESSION") || lx.is("LOCAL"))
        scoped = true
        lx.next()
      }
      if (first && this.setStatementHead(global, scoped)) return
      this.assignment(global)
      // On to the next top-level ",": the value may hold calls with commas of their own.
      let depth = 0
      while (!this.atEnd && !(depth === 0 && lx.isPunct(COMMA))) {
        if (lx.isPunct(OPEN)) depth++
        else if (lx.isPunct(CLOSE)) depth--
        this.anywhere()
        lx.next()
      }
      if (lx.isPunct(COMMA)) lx.next()
    }
  }

  /** The SET statements that are not assignments: true when the statement was read here. */
  private setStatementHead(global: boolean, scoped: boolean): boolean {
    const lx = this.lx
    if (lx.is("STATEMENT")) {
      this.setStatement()
      return true
    }
    if (lx.is("NAMES") || lx.is("CHARSET") || lx.is("CHARACTER")) this.pin("SET NAMES")
    else if (lx.is("TRANSACTION")) {
      if (!global) this.pin(scoped ? "session variable" : "SET TRANSACTION")
    } else if (lx.is("ROLE")) this.pin("SET ROLE")
    // SET PASSWORD and SET DEFAULT ROLE change the account, not the session.
    else if (!lx.is("PASSWORD") && !lx.is("DEFAULT")) return false
    this.rest()
    return true
  }

  /** The target of one assignment; leaves the lexer on the token after it. */
  private assignment(global: boolean): void {
    const lx = this.lx
    if (lx.kind === Token.USER_VAR) {
      this.pin("user variable")
      lx.next()
      return
    }
    if (lx.kind === Token.SYSTEM_VAR) {
      const scope = lx.sql.slice(lx.start + 2, lx.end).toUpperCase()
      lx.next()
      const global = GLOBAL_SCOPES.has(scope)
      if ((global || scope === "SESSION" || scope === "LOCAL") && lx.isPunct(DOT)) {
        lx.next()
        if (!global) this.sessionVariable()
        if (lx.isName()) lx.next()
        return
      }
      if (scope !== "AUTOCOMMIT") this.pin("session variable")
      return
    }
    if (lx.isName()) {
      if (!global) this.sessionVariable()
      lx.next()
    }
  }

  private sessionVariable(): void {
    const lx = this.lx
    const autocommit = lx.kind === Token.IDENT ? lx.name().toUpperCase() === "AUTOCOMMIT" : lx.is("AUTOCOMMIT")
    if (!autocommit) this.pin("session variable")
  }

  /** MariaDB's SET STATEMENT var = value [, …] FOR statement: the settings last for that statement only. */
  private setStatement(): void {
    const lx = this.lx
    lx.next()
    while (!this.atEnd && !lx.is("FOR")) {
      if (lx.kind === Token.USER_VAR) this.pin("user variable")
      lx.next()
    }
    if (lx.is("FOR")) {
      lx.next()
      if (!this.atEnd) this.statement()
    }
  }

  /** CREATE …: TEMPORARY pins; a routine, trigger or event definition is skipped; anything else is read. */
  private create(): void {
    const lx = this.lx
    // Past OR REPLACE, DEFINER = account, ALGORITHM = …, SQL SECURITY …, AGGREGATE, IF NOT EXISTS, up to the object.
    for (lx.next(); !this.atEnd; lx.next()) {
      if (lx.kind !== Token.WORD) continue
      if (lx.is("TEMPORARY")) {
        this.pin("temporary table")
        lx.next()
        this.rest()
        return
      }
      if (lx.is("PROCEDURE") || lx.is("FUNCTION") || lx.is("TRIGGER") || lx.is("EVENT") || lx.is("PACKAGE")) {
        this.definition()
        return
      }
      const prelude =
        lx.is("OR") ||
        lx.is("REPLACE") ||
        lx.is("DEFINER") ||
        lx.is("ALGORITHM") ||
        lx.is("SQL") ||
        lx.is("SECURITY") ||
        lx.is("AGGREGATE") ||
        lx.is("CURRENT_USER") ||
        lx.is("UNDEFINED") ||
        lx.is("MERGE") ||
        lx.is("TEMPTABLE") ||
        lx.is("INVOKER")
      // A DEFINER's bare user name (`DEFINER = app@'%'`) comes right before its HOST token.
      if (!prelude && !(lx.kind === Token.WORD && this.peekHost())) {
        this.rest()
        return
      }
    }
  }

  private peekHost(): boolean {
    const lx = this.lx
    return lx.sql.charCodeAt(lx.end) === 0x40 && lx.sql.charCodeAt(lx.end + 1) !== 0x40
  }

  /**
   * A stored program's definition, up to the ";" that ends it: the one outside every BEGIN … END and CASE … END of
   * its body (END IF, END LOOP, END WHILE, END REPEAT and END FOR close blocks that were not counted).
   */
  private definition(): void {
    const lx = this.lx
    let depth = 0
    lx.next()
    while (lx.kind !== Token.END && !(depth <= 0 && lx.isPunct(SEMICOLON))) {
      if (lx.is("BEGIN") || lx.is("CASE")) depth++
      else if (lx.is("END")) {
        lx.next()
        if (lx.is("IF") || lx.is("LOOP") || lx.is("WHILE") || lx.is("REPEAT") || lx.is("FOR")) lx.next()
        else {
          depth--
          if (lx.is("CASE")) lx.next()
        }
        continue
      }
      lx.next()
    }
  }

  /** FLUSH TABLES … WITH READ LOCK or FOR EXPORT keeps tables locked by this session. */
  private flush(): void {
    const lx = this.lx
    while (!this.atEnd) {
      if (lx.is("LOCK")) this.pin("FLUSH TABLES WITH READ LOCK")
      else if (lx.is("EXPORT")) this.pin("FLUSH TABLES FOR EXPORT")
      this.anywhere()
      lx.next()
    }
  }
}
