// The shared decoder result (src/codec/Decode.ts), as the MongoDB codec's files import it.
export { type Decoded, type Frame, frame, type Invalid, invalid, type Need, need } from "../Decode.ts"
