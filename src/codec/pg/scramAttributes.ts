// The attribute syntax of SCRAM messages (RFC 5802 §7: `a=value` pairs separated by commas), read the way
// PostgreSQL's server reads it (auth-scram.c read_attr_value / read_any_attr), with its error texts: a client that
// sends a malformed message gets the answer the real server would give.

/** Why an exchange stops, as PostgreSQL reports it: SQLSTATE, message, detail. */
export class ScramRefusal {
  readonly message: string
  readonly code: string
  readonly detail: string | undefined

  constructor(message: string, code: string, detail?: string) {
    this.message = message
    this.code = code
    this.detail = detail
  }
}

export const PROTOCOL_VIOLATION = "08P01"
export const FEATURE_NOT_SUPPORTED = "0A000"

export const malformed = (detail: string): ScramRefusal =>
  new ScramRefusal("malformed SCRAM message", PROTOCOL_VIOLATION, detail)

/** PostgreSQL's sanitize_char: a printable character quoted, anything else (the end of the text too) in hex. */
export const showChar = (c: string): string => {
  const code = c === "" ? 0 : c.charCodeAt(0)
  return code >= 0x21 && code <= 0x7e ? `'${c}'` : `0x${code.toString(16).padStart(2, "0")}`
}

/**
 * A message's bytes as a string of the same length, one character per byte (latin1), so offsets, slices and the
 * AuthMessage bytes stay exactly what the peer sent. Throws ScramRefusal as PostgreSQL does for an empty message or
 * one with a NUL inside.
 */
export const messageText = (bytes: Buffer): string => {
  if (bytes.length === 0) throw malformed("The message is empty.")
  if (bytes.includes(0)) throw malformed("Message length does not match input length.")
  return bytes.toString("latin1")
}

const ALPHA = /^[A-Za-z]$/

/** A cursor over one message. Its methods throw ScramRefusal; the public API catches it. */
export class Attributes {
  private readonly text: string
  private pos = 0

  constructor(text: string) {
    this.text = text
  }

  /** Where the cursor is: the next attribute's letter, or the text's length at its end. */
  get offset(): number {
    return this.pos
  }

  /** The next character, "" at the end. */
  peek(): string {
    return this.text.charAt(this.pos)
  }

  skip(): void {
    this.pos++
  }

  done(): boolean {
    return this.pos >= this.text.length
  }

  /** `attr=value`, that attribute and no other; consumes the comma after it. */
  value(attr: string): string {
    const found = this.peek()
    if (found !== attr) throw malformed(`Expected attribute "${attr}" but found "${showChar(found)}".`)
    this.pos++
    return this.afterName(attr)
  }

  /** Any `x=value` with x a letter; consumes the comma after it. */
  any(): readonly [string, string] {
    const attr = this.peek()
    if (attr === "") throw malformed("Attribute expected, but found end of string.")
    if (!ALPHA.test(attr)) throw malformed(`Attribute expected, but found invalid character "${showChar(attr)}".`)
    this.pos++
    return [attr, this.afterName(attr)]
  }

  private afterName(attr: string): string {
    if (this.peek() !== "=") throw malformed(`Expected character "=" for attribute "${attr}".`)
    this.pos++
    const comma = this.text.indexOf(",", this.pos)
    const end = comma < 0 ? this.text.length : comma
    const value = this.text.slice(this.pos, end)
    this.pos = comma < 0 ? end : end + 1
    return value
  }
}

/** RFC 5802 `printable`: ASCII 0x21-0x7E except the comma. PostgreSQL accepts an empty nonce, so this does too. */
export const isPrintable = (text: string): boolean => /^[\x21-\x2b\x2d-\x7e]*$/.test(text)

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/** Strict RFC 4648 base64 (Buffer.from alone skips any junk); undefined when it is not. */
export const decodeBase64 = (text: string): Buffer | undefined =>
  BASE64.test(text) ? Buffer.from(text, "base64") : undefined
