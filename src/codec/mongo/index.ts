// The MongoDB wire codec: pure bytes ⇄ values for the MongoDB listener, no I/O.
export {
  type ClientCommand,
  type ClientCompressed,
  type ClientLimits,
  type ClientMessage,
  type ClientOversized,
  defaultClientLimits,
  peekClientMessage
} from "./ClientMessage.ts"
export { type CommandPeek, type HelloRequest, peekCommand, readHello } from "./Command.ts"
export { type Decoded, type Frame, frame, type Invalid, invalid, type Need, need } from "./Decode.ts"
export {
  type BackendHelloReply,
  backendHello,
  decodeBackendHelloReply,
  type HelloReplyInput,
  helloReply
} from "./Hello.ts"
export { decodeHeader, type MessageHeader, writeHeader } from "./MessageHeader.ts"
export {
  decodeOpCompressed,
  encodeOpCompressed,
  OP_COMPRESSED_PREFIX,
  type OpCompressed
} from "./OpCompressed.ts"
export {
  type DocumentSequence,
  decodeOpMsg,
  encodeOpMsg,
  flagBitsProblem,
  MIN_OP_MSG_LENGTH,
  type OpMsg,
  type OpMsgInput
} from "./OpMsg.ts"
export { decodeOpQuery, encodeOpQuery, type OpQuery, type OpQueryInput } from "./OpQuery.ts"
export { decodeOpReply, encodeOpReply, type OpReply, type OpReplyInput } from "./OpReply.ts"
export {
  compressorName,
  HEADER_LENGTH,
  HELLO_COMMANDS,
  LOGICAL_SESSION_TIMEOUT_MINUTES,
  MAX_BSON_OBJECT_SIZE,
  MAX_COMMAND_BODY,
  MAX_HANDSHAKE_MESSAGE,
  MAX_MESSAGE_SIZE,
  MAX_ROUTING_COMMAND,
  MAX_WIRE_VERSION,
  MAX_WRITE_BATCH_SIZE,
  MIN_WIRE_VERSION,
  OP_COMPRESSED,
  OP_MSG,
  OP_QUERY,
  OP_REPLY,
  OpMsgFlags,
  opcodeName
} from "./Protocol.ts"
export { type CommandError, encodeReply, errorDocument, OK, okDocument, type ReplyTo } from "./Reply.ts"
