// Shared by every decoder in this folder: the result of looking at the bytes received so far.

/** The head is not complete yet: feed more bytes (the caller finds the end with `headEnd` before decoding). */
export interface Need {
  readonly _tag: "Need"
}

/** One whole head. `size` is how many bytes of the input it took, up to and including the blank line. */
export interface Frame<A> {
  readonly _tag: "Frame"
  readonly value: A
  readonly size: number
}

/**
 * The bytes can never become a valid message: answer `status` and close. Requests get 400, 431 (too large),
 * 501 (a transfer coding we do not relay) or 505 (an HTTP version we do not speak); for responses the status is
 * what the proxy tells its client (502).
 */
export interface Invalid {
  readonly _tag: "Invalid"
  readonly status: number
  readonly reason: string
}

export type Decoded<A> = Need | Frame<A> | Invalid

export const NEED: Need = Object.freeze({ _tag: "Need" })

export const frame = <A>(value: A, size: number): Frame<A> => ({ _tag: "Frame", value, size })

export const invalid = (status: number, reason: string): Invalid => ({ _tag: "Invalid", status, reason })

export const CR = 0x0d
export const LF = 0x0a
export const SP = 0x20
export const HTAB = 0x09
export const COLON = 0x3a

/** RFC 9110 tchar: the bytes of a method or a field name. */
export const TCHAR: Uint8Array = (() => {
  const t = new Uint8Array(256)
  for (const c of "!#$%&'*+-.^_`|~") t[c.charCodeAt(0)] = 1
  for (let c = 0x30; c <= 0x39; c++) t[c] = 1
  for (let c = 0x41; c <= 0x5a; c++) t[c] = 1
  for (let c = 0x61; c <= 0x7a; c++) t[c] = 1
  return t
})()

/** Bytes allowed inside a field value: HTAB, SP, VCHAR and obs-text. No NUL, no CR or LF, no other control. */
export const FIELD_BYTE: Uint8Array = (() => {
  const t = new Uint8Array(256)
  t[HTAB] = 1
  for (let c = 0x20; c <= 0x7e; c++) t[c] = 1
  for (let c = 0x80; c <= 0xff; c++) t[c] = 1
  return t
})()

/** For reasons: a byte as hex plus its character when printable, so a log line shows what actually arrived. */
export const describeByte = (byte: number): string => {
  const hex = `0x${byte.toString(16).padStart(2, "0")}`
  return byte >= 0x21 && byte < 0x7f ? `${hex} ('${String.fromCharCode(byte)}')` : hex
}

const CRLFCRLF = Buffer.from("\r\n\r\n", "latin1")

/**
 * Where the head that starts at `start` ends (the index after its blank line), or -1. `from` lets a caller that
 * received the head in pieces resume the search instead of rescanning (a slow client must not cost O(n²)).
 */
export const headEnd = (buf: Buffer, start: number, end: number, from = start): number => {
  const at = buf.indexOf(CRLFCRLF, Math.max(start, from - 3))
  return at < 0 || at + 4 > end ? -1 : at + 4
}

type Latin1Slicer = { latin1Slice(start: number, end: number): string }

/**
 * `buf.toString("latin1", start, end)` without its argument checks: a head is sliced into a dozen strings per request.
 * Latin-1 maps each byte to one code unit, so no byte sequence is lost or merged.
 */
export const latin1 = (buf: Buffer, start: number, end: number): string =>
  (buf as unknown as Latin1Slicer).latin1Slice(start, end)
