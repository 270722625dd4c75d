// The HTTP/1.x wire codec: pure bytes ⇄ values for the HTTP listener, no I/O.
export { type Authority, parseAuthority } from "./Authority.ts"
export {
  CHUNK_INVALID,
  CHUNK_MORE,
  ChunkedReader,
  type ChunkSink,
  chunkHeader,
  LAST_CHUNK,
  MAX_CHUNK_LINE,
  MAX_TRAILERS,
  parseTrailerText
} from "./Chunked.ts"
export { type Decoded, type Frame, headEnd, type Invalid, latin1, NEED, type Need } from "./Decode.ts"
export { FIELD_STRIDE, type FieldFacts, type FieldList, hasToken, MAX_FIELDS } from "./Fields.ts"
export {
  decodeRequestHead,
  H2_PREFACE,
  isH2Preface,
  partialHeadError,
  type RequestHead,
  skipEmptyLines
} from "./RequestHead.ts"
export { decodeResponseHead, Framing, type ResponseHead, responseFraming, responseKeepsAlive } from "./ResponseHead.ts"
