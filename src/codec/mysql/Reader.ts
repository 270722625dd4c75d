// Bounded readers and writers for the protocol's basic types (int<n>, int<lenenc>, string<NUL>, string<lenenc>).
// Every read answers undefined past the end instead of throwing, so a decoder can turn short input into Invalid.

export class Reader {
  offset: number
  readonly buf: Buffer
  constructor(buf: Buffer, offset = 0) {
    this.buf = buf
    this.offset = offset
  }

  get remaining(): number {
    return this.buf.length - this.offset
  }

  u8(): number | undefined {
    if (this.remaining < 1) return undefined
    return this.buf[this.offset++]!
  }

  u16(): number | undefined {
    if (this.remaining < 2) return undefined
    const v = this.buf.readUInt16LE(this.offset)
    this.offset += 2
    return v
  }

  u24(): number | undefined {
    if (this.remaining < 3) return undefined
    const v = this.buf.readUIntLE(this.offset, 3)
    this.offset += 3
    return v
  }

  u32(): number | undefined {
    if (this.remaining < 4) return undefined
    const v = this.buf.readUInt32LE(this.offset)
    this.offset += 4
    return v
  }

  bytes(n: number): Buffer | undefined {
    if (n < 0 || this.remaining < n) return undefined
    const v = this.buf.subarray(this.offset, this.offset + n)
    this.offset += n
    return v
  }

  /** string<NUL>: undefined when no NUL follows. */
  nulTerminated(): Buffer | undefined {
    const end = this.buf.indexOf(0, this.offset)
    if (end < 0) return undefined
    const v = this.buf.subarray(this.offset, end)
    this.offset = end + 1
    return v
  }

  /** string<NUL>, or string<EOF> when the NUL is missing (some servers and clients omit the last one). */
  nulTerminatedOrRest(): Buffer {
    const end = this.buf.indexOf(0, this.offset)
    const stop = end < 0 ? this.buf.length : end
    const v = this.buf.subarray(this.offset, stop)
    this.offset = end < 0 ? stop : end + 1
    return v
  }

  rest(): Buffer {
    const v = this.buf.subarray(this.offset)
    this.offset = this.buf.length
    return v
  }

  /** int<lenenc>. 0xFB (NULL) and 0xFF are not integers; values above 2^53 are refused rather than rounded. */
  lenencInt(): number | undefined {
    const first = this.u8()
    if (first === undefined) return undefined
    if (first < 0xfb) return first
    if (first === 0xfc) return this.u16()
    if (first === 0xfd) return this.u24()
    if (first === 0xfe) {
      if (this.remaining < 8) return undefined
      const v = this.buf.readBigUInt64LE(this.offset)
      if (v > BigInt(Number.MAX_SAFE_INTEGER)) return undefined
      this.offset += 8
      return Number(v)
    }
    return undefined
  }

  /** string<lenenc>. */
  lenencBytes(): Buffer | undefined {
    const n = this.lenencInt()
    return n === undefined ? undefined : this.bytes(n)
  }
}

/** Bytes an int<lenenc> takes. */
export const lenencIntSize = (n: number): number => (n < 0xfb ? 1 : n <= 0xffff ? 3 : n <= 0xffffff ? 4 : 9)

/** Writes an int<lenenc> at `offset`; returns the offset after it. `n` must be a non-negative safe integer. */
export const writeLenencInt = (out: Buffer, n: number, offset: number): number => {
  if (n < 0xfb) {
    out[offset] = n
    return offset + 1
  }
  if (n <= 0xffff) {
    out[offset] = 0xfc
    out.writeUInt16LE(n, offset + 1)
    return offset + 3
  }
  if (n <= 0xffffff) {
    out[offset] = 0xfd
    out.writeUIntLE(n, offset + 1, 3)
    return offset + 4
  }
  out[offset] = 0xfe
  out.writeBigUInt64LE(BigInt(n), offset + 1)
  return offset + 9
}

/** int<lenenc> followed by the bytes. */
export const lenencBytes = (bytes: Uint8Array): Buffer => {
  const out = Buffer.allocUnsafe(lenencIntSize(bytes.length) + bytes.length)
  out.set(bytes, writeLenencInt(out, bytes.length, 0))
  return out
}

// fatal: two different byte strings must never decode to the same routing key (U+FFFD would merge them).
// ignoreBOM: a leading U+FEFF is part of the name, not a marker to drop.
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

/** UTF-8 text, or undefined when the bytes are not valid UTF-8. */
export const utf8OrUndefined = (bytes: Uint8Array): string | undefined => {
  try {
    return strictUtf8.decode(bytes)
  } catch {
    return undefined
  }
}

// Not fatal: for texts meant for people (error messages, versions), where U+FFFD beats losing the message.
const lenientUtf8 = new TextDecoder("utf-8", { ignoreBOM: true })

export const utf8Lenient = (bytes: Uint8Array): string => lenientUtf8.decode(bytes)
