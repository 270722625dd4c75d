// Client → proxy: one Redis command, as RESP (an array of bulk strings, what every client library sends) or as an
// inline command (a line of words, what a person types into telnet). Pure: bytes in, Need | Frame | Invalid out.
import { type Decoded, frame, invalid, need } from "../../src/index.ts"

/** A command's arguments, the name first; empty for a blank inline line (Redis ignores those). */
export type Command = ReadonlyArray<string>

const CR = 0x0d
const LF = 0x0a
/** What a login needs and a little more: a larger command before AUTH is no client's handshake. */
const maxArgs = 64
const maxArgBytes = 16_384

/** The decimal after a type byte at `at`, up to CRLF: [value, offset after CRLF], Need, or Invalid. */
const number = (buf: Buffer, at: number, max: number, what: string): readonly [number, number] | Decoded<never> => {
  const cr = buf.indexOf(CR, at)
  if (cr < 0 || cr + 1 >= buf.length) return buf.length - at > 12 ? invalid(`invalid ${what} length`) : need(1)
  const text = buf.toString("latin1", at, cr)
  const n = Number(text)
  if (buf[cr + 1] !== LF || !/^\d{1,9}$/.test(text) || n > max) return invalid(`invalid ${what} length`)
  return [n, cr + 2]
}

const isDecoded = (v: unknown): v is Decoded<never> => !Array.isArray(v)

/** The first command of `buf`, with Redis's own words for what it refuses ("Protocol error: …"). */
export const decodeCommand = (buf: Buffer): Decoded<Command> => {
  if (buf.length === 0) return need(1)
  if (buf[0] !== 0x2a) return inline(buf)
  const count = number(buf, 1, maxArgs, "multibulk")
  if (isDecoded(count)) return count
  let [left, at] = count
  const args: Array<string> = []
  for (; left > 0; left--) {
    if (at >= buf.length) return need(1)
    if (buf[at] !== 0x24) return invalid(`expected '$', got '${String.fromCharCode(buf[at]!)}'`)
    const size = number(buf, at + 1, maxArgBytes, "bulk")
    if (isDecoded(size)) return size
    const [length, start] = size
    if (buf.length < start + length + 2) return need(start + length + 2 - buf.length)
    if (buf[start + length] !== CR || buf[start + length + 1] !== LF) return invalid("invalid bulk format")
    args.push(buf.toString("utf8", start, start + length))
    at = start + length + 2
  }
  return frame(args, at)
}

const inline = (buf: Buffer): Decoded<Command> => {
  const lf = buf.indexOf(LF)
  if (lf < 0) return buf.length > maxArgBytes ? invalid("too big inline request") : need(1)
  const line = buf.toString("utf8", 0, lf).replace(/\r$/, "")
  return frame(
    line.split(/[ \t]+/).filter((w) => w.length > 0),
    lf + 1
  )
}
