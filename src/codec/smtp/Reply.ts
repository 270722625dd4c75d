// Server → client: a reply (RFC 5321 §4.2): the backend's, decoded by the proxy; the proxy's own, encoded for the client.
import { CR, type Decoded, frame, invalid, LF, need } from "./Decode.ts"

export interface Reply {
  /** The three-digit code, the same on every line. */
  readonly code: number
  /** Each line's text after "NNN-" or "NNN ", in order: at least one, possibly "". */
  readonly lines: ReadonlyArray<string>
}

export interface ReplyLimits {
  /** Bytes per line, CRLF included. RFC 5321 says 512; backends are trusted a little further. */
  readonly maxLine: number
  /** Lines per reply: an EHLO reply has a dozen. */
  readonly maxLines: number
}

export const DEFAULT_REPLY_LIMITS: ReplyLimits = { maxLine: 2048, maxLines: 256 }

/** What fits in one line of our own replies: "NNN-" + text + CRLF stays within RFC 5321's 512 bytes. */
const MAX_TEXT = 506

const isDigit = (b: number | undefined) => b !== undefined && b >= 0x30 && b <= 0x39

const textDecoder = new TextDecoder("utf-8")

/** The first bytes of a line must be a code: checked as they arrive, so garbage is refused without waiting for LF. */
const badStart = (buf: Buffer, from: number, to: number): string | undefined => {
  for (let i = from; i < Math.min(to, from + 3); i++) {
    if (!isDigit(buf[i]))
      return `not a reply line: byte 0x${buf[i]!.toString(16).padStart(2, "0")} where a code digit belongs`
  }
  if (to > from && (buf[from]! < 0x32 || buf[from]! > 0x35))
    return `reply code must start with 2 to 5, got ${String.fromCharCode(buf[from]!)}`
  if (
    to > from + 3 &&
    buf[from + 3] !== 0x20 &&
    buf[from + 3] !== 0x2d &&
    buf[from + 3] !== CR &&
    buf[from + 3] !== LF
  ) {
    return "reply code not followed by a space or a hyphen"
  }
  return undefined
}

/**
 * Decodes one whole reply, multi-line ("250-..." lines, then "250 ...") or not. A bare LF ends a line too: the
 * backend is the tenant's own server and some are sloppy. Never throws.
 */
export const decodeReply = (buf: Buffer, limits: ReplyLimits = DEFAULT_REPLY_LIMITS): Decoded<Reply> => {
  let offset = 0
  let code = -1
  const lines: Array<string> = []
  for (;;) {
    const window = buf.subarray(offset, offset + limits.maxLine)
    const rel = window.indexOf(LF)
    if (rel < 0) {
      const why = badStart(buf, offset, buf.length)
      if (why !== undefined) return invalid(why)
      if (buf.length - offset >= limits.maxLine) return invalid(`reply line too long: over ${limits.maxLine} bytes`)
      return need(1)
    }
    const lf = offset + rel
    const end = lf > offset && buf[lf - 1] === CR ? lf - 1 : lf
    const why = badStart(buf, offset, end)
    if (why !== undefined) return invalid(why)
    if (end - offset < 3) return invalid("reply line shorter than its code")
    const lineCode = (buf[offset]! - 0x30) * 100 + (buf[offset + 1]! - 0x30) * 10 + (buf[offset + 2]! - 0x30)
    if (code === -1) code = lineCode
    else if (lineCode !== code) return invalid(`reply code changed from ${code} to ${lineCode} within one reply`)
    const last = end - offset === 3 || buf[offset + 3] === 0x20
    lines.push(end - offset > 4 ? textDecoder.decode(buf.subarray(offset + 4, end)) : "")
    offset = lf + 1
    if (last) return frame({ code, lines }, offset)
    if (lines.length >= limits.maxLines) return invalid(`reply longer than ${limits.maxLines} lines`)
  }
}

// Text from a resolver or a backend must not break out of its line and forge another reply.
const clean = (text: string): string => {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point here
  const flat = text.replace(/[\u0000-\u001f\u007f]/g, " ")
  return flat.length > MAX_TEXT ? `${flat.slice(0, MAX_TEXT - 3)}...` : flat
}

/** Encodes a reply, one line per text ("NNN-a", ..., "NNN z"). Control characters in the texts become spaces. */
export const encodeReply = (code: number, text: string | ReadonlyArray<string>): Buffer => {
  const lines = typeof text === "string" ? [text] : text.length === 0 ? [""] : text
  let out = ""
  for (let i = 0; i < lines.length; i++) out += `${code}${i === lines.length - 1 ? " " : "-"}${clean(lines[i]!)}\r\n`
  return Buffer.from(out, "utf8")
}
