// The shared decoder result (src/codec/Decode.ts), as the MySQL codec's files import it.
export {
  type Decoded,
  describeByte,
  type Frame,
  frame,
  type Invalid,
  invalid,
  isInvalid,
  type Need,
  need
} from "../Decode.ts"
