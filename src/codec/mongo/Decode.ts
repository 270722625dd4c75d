// Shared by every decoder in this folder: the result of looking at the bytes received so far.

/** Not enough bytes yet. `bytes` (> 0) is a lower bound on what is still missing, never more than the frame needs. */
export interface Need {
  readonly _tag: "Need"
  readonly bytes: number
}

/** Enough to act on. `size` is how many bytes of the input it took: the caller slices them off and decodes the rest. */
export interface Frame<A> {
  readonly _tag: "Frame"
  readonly value: A
  readonly size: number
}

/** The bytes can never become a valid message, however many more arrive: answer with an error and close. */
export interface Invalid {
  readonly _tag: "Invalid"
  readonly reason: string
}

export type Decoded<A> = Need | Frame<A> | Invalid

export const need = (bytes: number): Need => ({ _tag: "Need", bytes })

export const frame = <A>(value: A, size: number): Frame<A> => ({ _tag: "Frame", value, size })

export const invalid = (reason: string): Invalid => ({ _tag: "Invalid", reason })
