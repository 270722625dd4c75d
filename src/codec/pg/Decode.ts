// The shared decoder result (src/codec/Decode.ts), as the PostgreSQL codec's files import it.
export { type Decoded, describeByte, type Frame, frame, type Invalid, invalid, type Need, need } from "../Decode.ts"
