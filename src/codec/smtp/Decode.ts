// The shared decoder result (src/codec/Decode.ts), as the SMTP codec's files import it, plus line delimiters.
export { type Decoded, type Frame, frame, type Invalid, invalid, type Need, need } from "../Decode.ts"

export const CR = 0x0d
export const LF = 0x0a
