// client → server: the commands that end another session, `KILL [HARD|SOFT] [CONNECTION|QUERY] <id>` in a COM_QUERY
// and COM_PROCESS_KILL, read just far enough to find the id and rewrite it; and the SIGNAL that makes a server answer
// with an error of the proxy's choosing, in order with the session's other answers. The mysql listener's KILL tap
// (src/listeners/mysql/killTap.ts) uses them on the relayed client → backend bytes.

import { Command } from "./Protocol.ts"
import { isDigit, isSpace, isWordChar } from "./SqlLexer.ts"

export { Command }

/** What the first bytes of a COM_QUERY's text say: not a KILL, a KILL, or not enough bytes yet to tell. */
export const KillPrefix = { NO: 0, KILL: 1, MORE: 2 } as const
export type KillPrefix = (typeof KillPrefix)[keyof typeof KillPrefix]

/** A KILL whose id is a plain decimal literal: where that literal sits in the payload (for COM_PROCESS_KILL, 1..5). */
export interface KillTarget {
  readonly id: number
  readonly at: number
  readonly end: number
}

/**
 * Skips whitespace and comments from `pos`. Returns the next byte's offset (`end` when nothing else follows), or
 * -1 when `complete` is false and the bytes stop before that can be told (inside a comment, or at a `/` or `-` that
 * may start one), or when a block comment is never closed; -2 at an executable comment (`/*!…*​/`, `/*M!…*​/`),
 * whose content the server runs: the proxy does not read inside it.
 */
const skipSpace = (buf: Uint8Array, pos: number, end: number, complete = true): number => {
  while (pos < end) {
    const c = buf[pos]!
    if (isSpace(c)) {
      pos++
      continue
    }
    const next = pos + 1 < end ? buf[pos + 1] : undefined
    if (c === 0x2f /* / */ && (next === 0x2a /* * */ || (next === undefined && !complete))) {
      if (pos + 3 >= end && !complete) return -1
      const d = buf[pos + 2]
      if (d === 0x21 /* ! */ || (d === 0x4d /* M */ && buf[pos + 3] === 0x21)) return -2
      let i = pos + 2
      while (i + 1 < end && !(buf[i] === 0x2a && buf[i + 1] === 0x2f)) i++
      if (i + 1 >= end) return -1
      pos = i + 2
      continue
    }
    // "--" starts a comment only when a space or a control character follows; "#" always does.
    const dashes = c === 0x2d && next === 0x2d
    if (dashes && pos + 2 >= end && !complete) return -1
    if (c === 0x2d && next === undefined && !complete) return -1
    if (c === 0x23 /* # */ || (dashes && pos + 2 < end && buf[pos + 2]! <= 0x20)) {
      let i = pos + 1
      while (i < end && buf[i] !== 0x0a) i++
      if (i >= end) return complete ? end : -1
      pos = i + 1
      continue
    }
    return pos
  }
  return pos
}

/** Whether `word` (upper case ASCII) stands at `pos`, any case, followed by a byte that ends it (or by `end`). */
const wordAt = (buf: Uint8Array, pos: number, end: number, word: string): boolean => {
  if (pos + word.length > end) return false
  for (let i = 0; i < word.length; i++) if ((buf[pos + i]! & 0xdf) !== word.charCodeAt(i)) return false
  return pos + word.length === end || !isWordChar(buf[pos + word.length]!)
}

/**
 * Whether the COM_QUERY text in `buf[from, to)` starts with KILL (after whitespace and comments). `complete` says
 * whether `to` is the end of the text; when it is not, an answer that needs bytes past `to` is MORE.
 */
export const killPrefix = (buf: Uint8Array, from: number, to: number, complete: boolean): KillPrefix => {
  const pos = skipSpace(buf, from, to, complete)
  if (pos === -2) return KillPrefix.NO
  if (pos === -1) return complete ? KillPrefix.NO : KillPrefix.MORE
  if (pos === to) return complete ? KillPrefix.NO : KillPrefix.MORE
  if ((buf[pos]! | 0x20) !== 0x6b /* k */) return KillPrefix.NO
  // "KILL" and the byte after it, which must end the word.
  if (!complete && pos + 5 > to) return KillPrefix.MORE
  return wordAt(buf, pos, to, "KILL") ? KillPrefix.KILL : KillPrefix.NO
}

/** Ids up to 2^32 - 1 fit the greeting; longer literals are never the proxy's. */
const maxIdDigits = 10

/**
 * The target of a whole KILL command payload (command byte first), when it names a session by a plain decimal
 * literal: `KILL [HARD|SOFT] [CONNECTION|QUERY] <digits>` followed by nothing but whitespace, comments or `;` (and
 * whatever statements come after it), or COM_PROCESS_KILL. Anything else (an expression such as CONNECTION_ID(),
 * `QUERY ID`, `USER`) is undefined: the caller passes it on untouched.
 */
export const parseKill = (payload: Uint8Array): KillTarget | undefined => {
  if (payload[0] === Command.PROCESS_KILL) {
    if (payload.length !== 5) return undefined
    const id = (payload[1]! | (payload[2]! << 8) | (payload[3]! << 16) | (payload[4]! << 24)) >>> 0
    return { id, at: 1, end: 5 }
  }
  if (payload[0] !== Command.QUERY) return undefined
  const end = payload.length
  let pos = skipSpace(payload, 1, end)
  if (pos < 0 || !wordAt(payload, pos, end, "KILL")) return undefined
  pos = skipSpace(payload, pos + 4, end)
  for (const words of [
    ["HARD", "SOFT"],
    ["CONNECTION", "QUERY"]
  ]) {
    if (pos < 0) return undefined
    const word = words.find((w) => wordAt(payload, pos, end, w))
    if (word !== undefined) pos = skipSpace(payload, pos + word.length, end)
  }
  if (pos < 0) return undefined
  const at = pos
  while (pos < end && isDigit(payload[pos]!)) pos++
  if (pos === at || (pos < end && (isWordChar(payload[pos]!) || payload[pos] === 0x2e)) /* . */) return undefined
  const digits = Buffer.from(payload.subarray(at, pos))
    .toString("latin1")
    .replace(/^0+(?=\d)/, "")
  if (digits.length > maxIdDigits) return undefined
  const after = skipSpace(payload, pos, end)
  if (after !== end && !((after >= 0 && payload[after] === 0x3b) /* ; */)) return undefined
  return { id: Number(digits), at, end: pos }
}

/** `payload` with its target's id replaced by `id`: the rest of the command, comments and later statements stay. */
export const rewriteKill = (payload: Uint8Array, target: KillTarget, id: number): Buffer => {
  if (payload[0] === Command.PROCESS_KILL) {
    const out = Buffer.allocUnsafe(5)
    out[0] = Command.PROCESS_KILL
    out.writeUInt32LE(id >>> 0, 1)
    return out
  }
  return Buffer.concat([
    payload.subarray(0, target.at),
    Buffer.from(String(id), "latin1"),
    payload.subarray(target.end)
  ])
}

/**
 * A COM_QUERY payload whose answer is the ERR packet `code`/HY000/`message`: SIGNAL at top level (MySQL 5.5+,
 * MariaDB 5.5+; "SIGNAL can also appear in a query" in MySQL's own tests). The message must be plain ASCII without
 * quotes, as the proxy's are.
 */
export const signalPayload = (code: number, message: string): Buffer =>
  Buffer.from(`\x03SIGNAL SQLSTATE 'HY000' SET MYSQL_ERRNO = ${code}, MESSAGE_TEXT = '${message}'`, "latin1")
