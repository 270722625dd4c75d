// Shared by every decoder in this folder: the result of looking at the bytes received so far.

/** Not enough bytes yet. `bytes` (> 0) is a lower bound on what is still missing. */
export interface Need {
  readonly _tag: "Need"
  readonly bytes: number
}

/**
 * The message is whole. `size` is how many bytes of the input it spans. For a peek (the ClientHello) this is
 * information, not consumption: the proxy forwards every byte it read, untouched.
 */
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

/** For reasons: a byte as hex plus its character when printable, so a log line shows what actually arrived. */
export const describeByte = (byte: number): string => {
  const hex = `0x${byte.toString(16).padStart(2, "0")}`
  return byte >= 0x20 && byte < 0x7f ? `${hex} ('${String.fromCharCode(byte)}')` : hex
}
