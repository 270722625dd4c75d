// Client → proxy: one command line (RFC 5321 §4.1.1), read line by line until the session can be routed.
import { CR, type Decoded, frame, invalid, LF, need } from "./Decode.ts"

export interface Command {
  /** Upper-cased (verbs are case-insensitive); "" for an empty line. */
  readonly verb: string
  /** What follows the verb and its separating spaces, trailing blanks removed; "" if nothing. */
  readonly argument: string
}

export interface CommandLimits {
  /**
   * Bytes per line, CRLF included. RFC 5321 §4.5.3.1.4 says 512, and lets each advertised extension add to it
   * (MAIL FROM with SIZE=, BODY=, SMTPUTF8, DSN's ENVID=...): 1000 leaves room for all of them.
   */
  readonly maxLine: number
  /** AUTH carries a SASL initial response (an OAuth token can be kilobytes): RFC 4954 §4 allows 12288. */
  readonly maxAuthLine: number
}

export const DEFAULT_COMMAND_LIMITS: CommandLimits = { maxLine: 1000, maxAuthLine: 12288 }

const SP = 0x20
const TAB = 0x09

// fatal: two different byte strings must never decode to the same routing key (U+FFFD would merge them).
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

const isAuth = (buf: Buffer): boolean =>
  buf.length >= 5 &&
  (buf[0]! | 0x20) === 0x61 && // a
  (buf[1]! | 0x20) === 0x75 && // u
  (buf[2]! | 0x20) === 0x74 && // t
  (buf[3]! | 0x20) === 0x68 && // h
  buf[4] === SP

/** Index of the first byte no command line may hold (controls but TAB, DEL), or -1. */
const firstControl = (buf: Buffer, from: number, to: number): number => {
  for (let i = from; i < to; i++) {
    const b = buf[i]!
    if ((b < 0x20 && b !== TAB) || b === 0x7f) return i
  }
  return -1
}

const hex = (b: number) => `0x${b.toString(16).padStart(2, "0")}`

/**
 * Decodes the first command line of `buf`. Lines must end with CRLF: a bare LF or CR is refused rather than
 * guessed at, because the backend will read the same bytes after routing and must not split them differently
 * (the SMTP smuggling family, CVE-2023-51764). Bytes after `size` are the next commands (pipelining).
 * Never throws.
 */
export const decodeCommand = (buf: Buffer, limits: CommandLimits = DEFAULT_COMMAND_LIMITS): Decoded<Command> => {
  const limit = isAuth(buf) ? limits.maxAuthLine : limits.maxLine
  const lf = buf.subarray(0, limit).indexOf(LF)
  if (lf < 0) {
    // A CR may be the first half of a CRLF still in flight; any other control byte is binary (say, a TLS
    // ClientHello sent to a plain port) and is refused now instead of after `limit` bytes.
    let scanTo = Math.min(buf.length, limit)
    if (scanTo > 0 && buf[scanTo - 1] === CR) scanTo--
    const bad = firstControl(buf, 0, scanTo)
    if (bad >= 0) return invalid(`binary data in a command line (byte ${hex(buf[bad]!)} at ${bad})`)
    if (buf.length >= limit) return invalid(`line too long: over ${limit} bytes`)
    return need(1)
  }
  if (lf === 0 || buf[lf - 1] !== CR) return invalid("bare LF in a command line: lines end with CRLF")
  const end = lf - 1
  const bad = firstControl(buf, 0, end)
  if (bad >= 0) {
    return invalid(
      buf[bad] === CR
        ? "bare CR in a command line: lines end with CRLF"
        : `binary data in a command line (byte ${hex(buf[bad]!)} at ${bad})`
    )
  }
  let sp = buf.indexOf(SP)
  if (sp < 0 || sp > end) sp = end
  const verb = buf.toString("latin1", 0, sp).toUpperCase()
  let start = sp
  while (start < end && buf[start] === SP) start++
  let stop = end
  while (stop > start && (buf[stop - 1] === SP || buf[stop - 1] === TAB)) stop--
  let argument = ""
  if (stop > start) {
    try {
      argument = utf8.decode(buf.subarray(start, stop))
    } catch {
      return invalid(`${verb.slice(0, 16)} argument is not valid UTF-8`)
    }
  }
  return frame({ verb, argument }, lf + 1)
}
