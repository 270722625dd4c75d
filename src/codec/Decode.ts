// What every decoder in src/codec answers about the bytes received so far: need more, one frame, or never valid.

/** Not enough bytes yet. `bytes` (> 0) is a lower bound on what is still missing, never more than the frame needs. */
export interface Need {
  readonly _tag: "Need"
  readonly bytes: number
}

/** One whole message. `size` is how many bytes of the input it took: the caller slices them off and decodes the rest. */
export interface Frame<A> {
  readonly _tag: "Frame"
  readonly value: A
  readonly size: number
}

/** The bytes can never become a valid message, however many more arrive: close the connection. */
export interface Invalid {
  readonly _tag: "Invalid"
  readonly reason: string
}

export type Decoded<A> = Need | Frame<A> | Invalid

export const need = (bytes: number): Need => ({ _tag: "Need", bytes })

export const frame = <A>(value: A, size: number): Frame<A> => ({ _tag: "Frame", value, size })

export const invalid = (reason: string): Invalid => ({ _tag: "Invalid", reason })

export const isInvalid = (value: unknown): value is Invalid =>
  typeof value === "object" && value !== null && (value as { _tag?: unknown })._tag === "Invalid"

/** For reasons: a byte as hex plus its character when printable, so a log line shows what actually arrived. */
export const describeByte = (byte: number): string => {
  const hex = `0x${byte.toString(16).padStart(2, "0")}`
  return byte >= 0x20 && byte < 0x7f ? `${hex} ('${String.fromCharCode(byte)}')` : hex
}
