// The tokens of MySQL/MariaDB SQL text, as far as the proxy needs them to tell what a query does to its session:
// words, quoted names, strings and variables, with whitespace and comments skipped the way the server skips them.
// Executable comments (`/*! … */`, `/*!50700 … */`, MariaDB's `/*M! … */`) are code to the server, so their content
// is read as code here too; other comments, optimizer hints (`/*+ … */`) included, are skipped. Never throws; every
// call to `next` consumes input until END.

export const Token = {
  END: 0,
  /** A bare word: keyword, name or number. */
  WORD: 1,
  /** A `backtick-quoted` name. */
  IDENT: 2,
  /** A 'single-' or "double-quoted" literal (a name under ANSI_QUOTES: the proxy needs neither). */
  STRING: 3,
  /** `@name`, `@'name'`, @`name`: a user variable. */
  USER_VAR: 4,
  /** `@@name` (a scope such as `@@session` is followed by a "." token and the name). */
  SYSTEM_VAR: 5,
  /** The `@host` of an account name written `user@host` or `'user'@'host'`: no variable at all. */
  HOST: 6,
  /** Any other single character: ( ) , ; = . and operators. */
  PUNCT: 7
} as const
export type Token = (typeof Token)[keyof typeof Token]

export const isSpace = (c: number) => c === 0x20 || (c >= 0x09 && c <= 0x0d)
export const isDigit = (c: number) => c >= 0x30 && c <= 0x39
/** Characters (bytes, in UTF-8 text) that continue an identifier, or a number into one: `12abc` is a name to MySQL. */
export const isWordChar = (c: number) =>
  (c >= 0x30 && c <= 0x39) ||
  (c >= 0x41 && c <= 0x5a) ||
  (c >= 0x61 && c <= 0x7a) ||
  c === 0x5f ||
  c === 0x24 ||
  c >= 0x80

const BACKTICK = 0x60
const SINGLE = 0x27
const DOUBLE = 0x22

export class SqlLexer {
  kind: Token = Token.END
  /** The current token is `sql.slice(start, end)`. */
  start = 0
  end = 0
  private pos = 0
  private executable = false
  readonly sql: string
  /** False under sql_mode NO_BACKSLASH_ESCAPES (the server says so in its status flags). */
  readonly backslashEscapes: boolean

  constructor(sql: string, backslashEscapes = true) {
    this.sql = sql
    this.backslashEscapes = backslashEscapes
  }

  next(): Token {
    const previous = this.kind
    const previousEnd = this.end
    this.skip()
    const sql = this.sql
    const at = this.pos
    this.start = at
    if (at >= sql.length) return this.token(Token.END, at)
    const c = sql.charCodeAt(at)
    if (isWordChar(c)) {
      let i = at + 1
      while (i < sql.length && isWordChar(sql.charCodeAt(i))) i++
      return this.token(Token.WORD, i)
    }
    if (c === BACKTICK) return this.token(Token.IDENT, this.quoted(at, BACKTICK))
    if (c === SINGLE || c === DOUBLE) return this.token(Token.STRING, this.quoted(at, c))
    if (c === 0x40 /* @ */) {
      const adjacent =
        at === previousEnd && (previous === Token.WORD || previous === Token.IDENT || previous === Token.STRING)
      if (!adjacent && sql.charCodeAt(at + 1) === 0x40) {
        let i = at + 2
        while (i < sql.length && isWordChar(sql.charCodeAt(i))) i++
        return this.token(Token.SYSTEM_VAR, i)
      }
      const q = sql.charCodeAt(at + 1)
      let i = at + 1
      if (q === BACKTICK || q === SINGLE || q === DOUBLE) i = this.quoted(at + 1, q)
      else while (i < sql.length && (isWordChar(sql.charCodeAt(i)) || sql.charCodeAt(i) === 0x2e)) i++
      return this.token(adjacent ? Token.HOST : Token.USER_VAR, i)
    }
    return this.token(Token.PUNCT, at + 1)
  }

  /** The current token is the word `upper` (given in upper case), in any case. */
  is(upper: string): boolean {
    if (this.kind !== Token.WORD || this.end - this.start !== upper.length) return false
    for (let i = 0; i < upper.length; i++) {
      const c = this.sql.charCodeAt(this.start + i)
      if ((c >= 0x61 && c <= 0x7a ? c - 0x20 : c) !== upper.charCodeAt(i)) return false
    }
    return true
  }

  /** The current token is a WORD or an IDENT. */
  isName(): boolean {
    return this.kind === Token.WORD || this.kind === Token.IDENT
  }

  /** The current token is the punctuation character `c`. */
  isPunct(c: number): boolean {
    return this.kind === Token.PUNCT && this.sql.charCodeAt(this.start) === c
  }

  /** A WORD or IDENT as the name it stands for (backticks removed, doubled ones undone). */
  name(): string {
    if (this.kind !== Token.IDENT) return this.sql.slice(this.start, this.end)
    const closed = this.end - this.start >= 2 && this.sql.charCodeAt(this.end - 1) === BACKTICK
    return this.sql.slice(this.start + 1, closed ? this.end - 1 : this.end).replaceAll("``", "`")
  }

  private token(kind: Token, end: number): Token {
    this.kind = kind
    this.end = end
    this.pos = end
    return kind
  }

  /** The end of the quoted text opening at `at` (past its closing quote, or the end of input). */
  private quoted(at: number, q: number): number {
    const sql = this.sql
    let i = at + 1
    while (i < sql.length) {
      const c = sql.charCodeAt(i)
      if (c === 0x5c /* \ */ && q !== BACKTICK && this.backslashEscapes) i += 2
      else if (c !== q) i++
      else if (sql.charCodeAt(i + 1) === q) i += 2
      else return i + 1
    }
    return sql.length
  }

  private skip(): void {
    const sql = this.sql
    let i = this.pos
    for (;;) {
      const c = sql.charCodeAt(i)
      if (isSpace(c)) {
        i++
        continue
      }
      const d = sql.charCodeAt(i + 1)
      if (c === 0x2f /* / */ && d === 0x2a /* * */) {
        const e = sql.charCodeAt(i + 2)
        const mariadbOnly = e === 0x4d /* M */ && sql.charCodeAt(i + 3) === 0x21
        if (e === 0x21 /* ! */ || mariadbOnly) {
          // The server runs what follows (when its version is at least the optional one): read it as code.
          i += mariadbOnly ? 4 : 3
          while (isDigit(sql.charCodeAt(i))) i++
          this.executable = true
          continue
        }
        const close = sql.indexOf("*/", i + 2)
        i = close < 0 ? sql.length : close + 2
        continue
      }
      if (c === 0x2a /* * */ && d === 0x2f && this.executable) {
        i += 2
        this.executable = false
        continue
      }
      // "--" starts a comment only when whitespace or a control character follows; "#" always does.
      if (c === 0x23 /* # */ || (c === 0x2d && d === 0x2d && !(sql.charCodeAt(i + 2) > 0x20))) {
        const newline = sql.indexOf("\n", i)
        i = newline < 0 ? sql.length : newline + 1
        continue
      }
      break
    }
    this.pos = i
  }
}
