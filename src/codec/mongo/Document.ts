// Both directions: the frame of one BSON document inside a message (int32 length, elements, NUL), and its encoding.
import { type Document, serialize } from "bson"

/**
 * The document starting at `offset`, as a view into `buf`, if it fits before `end`; otherwise why not. Only the frame
 * is checked here: the elements are the backend's business, or read by Command.ts when the proxy needs them.
 */
export const documentAt = (buf: Buffer, offset: number, end: number): Buffer | string => {
  if (offset + 4 > end) return "BSON document length runs past the end of its section"
  const size = buf.readInt32LE(offset)
  if (size < 5) return `invalid BSON document length ${size} (at least 5)`
  if (size > end - offset) return `BSON document of ${size} bytes runs past the end of its section`
  if (buf[offset + size - 1] !== 0) return "BSON document does not end with a NUL byte"
  return buf.subarray(offset, offset + size)
}

/** A document to write: already-encoded bytes are taken as they are. Throws what bson throws on unencodable values. */
export const documentBytes = (doc: Document | Uint8Array): Uint8Array =>
  doc instanceof Uint8Array ? doc : serialize(doc)

/** Fatal: a name decoded two ways must never compare equal (U+FFFD would merge them). */
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

/** UTF-8 text of `buf[start, end)`, or undefined when it is not valid UTF-8. */
export const decodeUtf8 = (buf: Uint8Array, start: number, end: number): string | undefined => {
  try {
    return utf8.decode(buf.subarray(start, end))
  } catch {
    return undefined
  }
}

/** The NUL-terminated string at `offset` inside `buf[.., end)`: its text and where the next field starts. */
export const cstringAt = (
  buf: Buffer,
  offset: number,
  end: number
): { readonly text: string; readonly next: number } | string => {
  const nul = buf.indexOf(0, offset)
  if (nul < 0 || nul >= end) return "string is not NUL-terminated"
  const text = decodeUtf8(buf, offset, nul)
  if (text === undefined) return "string is not valid UTF-8"
  return { text, next: nul + 1 }
}
