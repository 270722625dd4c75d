// The MySQL/MariaDB wire codec: pure bytes ⇄ values for the MySQL listener, no I/O.
export {
  type AuthMoreData,
  CachingSha2,
  decodeAuthMoreData,
  encodeAuthMoreData,
  parseAuthMoreData
} from "./AuthMoreData.ts"
export { type AuthReply, classifyAuthReply } from "./AuthReply.ts"
export {
  type AuthSwitchRequest,
  decodeAuthSwitchRequest,
  encodeAuthSwitchRequest,
  parseAuthSwitchRequest
} from "./AuthSwitchRequest.ts"
export { type Decoded, type Frame, frame, type Invalid, invalid, isInvalid, type Need, need } from "./Decode.ts"
export { decodeErrPacket, type ErrPacket, type ErrPacketInput, encodeErrPacket, parseErrPacket } from "./ErrPacket.ts"
export {
  type AttributeList,
  type ClientHandshake,
  decodeAttributes,
  decodeClientHandshake,
  encodeAttributes,
  encodeHandshakeResponse41,
  type HandshakeResponse41,
  type HandshakeResponse41Input,
  parseClientHandshake,
  parseHandshakeResponse41
} from "./HandshakeResponse41.ts"
export {
  decodeHandshakeV10,
  encodeHandshakeV10,
  type HandshakeV10,
  type HandshakeV10Input,
  parseHandshakeV10
} from "./HandshakeV10.ts"
export {
  Command,
  KillPrefix,
  type KillTarget,
  killPrefix,
  parseKill,
  rewriteKill,
  signalPayload
} from "./Kill.ts"
export {
  mockNativeHash,
  nativeAnswer,
  nativeHashOf,
  nativeStage1,
  parseNativeHash,
  recoverStage1
} from "./NativePassword.ts"
export {
  decodeEofPacket,
  decodeOkPacket,
  type EofPacket,
  encodeOkPacket,
  type OkPacket,
  parseEofPacket,
  parseOkPacket
} from "./OkPacket.ts"
export {
  DEFAULT_MAX_PAYLOAD,
  decodeMessage,
  decodePacket,
  encodePacket,
  type Framed,
  nextSequenceId,
  PACKET_TOO_LARGE,
  type Packet
} from "./Packet.ts"
export {
  AuthPlugin,
  Capability,
  type CapabilityName,
  capabilityNames,
  hasCapability,
  MAX_PACKET_PAYLOAD,
  MariaDbCapability,
  type MariaDbCapabilityName,
  Marker,
  mariadbCapabilityNames,
  PACKET_HEADER,
  SCRAMBLE_LENGTH,
  Status,
  UTF8MB4_GENERAL_CI
} from "./Protocol.ts"
export { ResponseEnd, type ServerVerdict, type Turn } from "./ResponseEnd.ts"
export {
  encodeSslRequest,
  parseSslRequest,
  type ResponseHeadInput,
  SSL_REQUEST_LENGTH,
  type SslRequest
} from "./SslRequest.ts"
export { RELEASES, type StatementEffects, statementEffects } from "./StatementEffects.ts"
