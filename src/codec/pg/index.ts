// The PostgreSQL wire codec: pure bytes ⇄ values for the Postgres listener, no I/O.
export {
  type AuthenticationRequest,
  decodeAuthentication,
  decodeFrontendMessage,
  decodePasswordMessage,
  decodeSaslInitialResponse,
  decodeSaslMechanisms,
  decodeSaslResponse,
  encodeAuthenticationCleartext,
  encodeAuthenticationMd5,
  encodeAuthenticationOk,
  encodeAuthenticationSasl,
  encodeAuthenticationSaslContinue,
  encodeAuthenticationSaslFinal,
  encodePasswordMessage,
  encodeSaslInitialResponse,
  encodeSaslResponse,
  type FrontendMessage,
  FrontendType,
  MAX_PASSWORD_MESSAGE_LENGTH,
  MAX_SASL_MESSAGE_LENGTH,
  type SaslInitialResponse
} from "./Authentication.ts"
export {
  AuthenticationCode,
  type BackendKeyData,
  type BackendMessage,
  BackendType,
  decodeAuthenticationCode,
  decodeBackendKeyData,
  decodeBackendMessage,
  decodeReadyForQuery
} from "./BackendMessage.ts"
export { encodeCancelRequest } from "./CancelRequest.ts"
export { type Decoded, type Frame, frame, type Invalid, invalid, type Need, need } from "./Decode.ts"
export {
  decodeErrorFields,
  decodeErrorResponse,
  type ErrorResponse,
  type ErrorResponseInput,
  encodeErrorResponse,
  shiftPosition
} from "./ErrorResponse.ts"
export {
  CANCEL_REQUEST_CODE,
  GSSENC_REQUEST_CODE,
  MAX_BACKEND_MESSAGE_LENGTH,
  MAX_SECRET_KEY_LENGTH,
  MAX_STARTUP_PACKET_LENGTH,
  MIN_SECRET_KEY_LENGTH,
  PROTOCOL_3_0,
  PROTOCOL_3_2,
  SSL_REQUEST_CODE
} from "./Protocol.ts"
export { SSL_REQUEST } from "./SslRequest.ts"
export { decodeSslResponse, SSL_ACCEPTED, SSL_REFUSED } from "./SslResponse.ts"
export {
  type CancelRequest,
  databaseOf,
  decodeStartup,
  detectDirectTls,
  encodeStartup,
  type GSSENCRequest,
  type SSLRequest,
  type Startup,
  type StartupMessage
} from "./StartupPacket.ts"
export {
  encodeStartupRefusal,
  type RefusedStartup,
  SECOND_GSSENC_REQUEST,
  SECOND_SSL_REQUEST,
  unencryptedData,
  unsupportedProtocol
} from "./StartupRefusal.ts"
