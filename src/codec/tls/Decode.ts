// The shared decoder result (src/codec/Decode.ts). For the ClientHello peek a Frame's `size` is information, not
// consumption: the proxy forwards every byte it read, untouched.
export { type Decoded, describeByte, type Frame, frame, type Invalid, invalid, type Need, need } from "../Decode.ts"
