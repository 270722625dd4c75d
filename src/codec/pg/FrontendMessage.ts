// Frontend → backend after the startup packet: typed messages, framed so the proxy can authenticate a client itself
// and follow its queries when it pools server connections.
import type { Decoded } from "./Decode.ts"
import { frameTypedMessage, type TypedMessage } from "./Framing.ts"
import { MAX_BACKEND_MESSAGE_LENGTH } from "./Protocol.ts"

export type FrontendMessage = TypedMessage

/** The type bytes a client sends. "p" is PasswordMessage, SASLInitialResponse or SASLResponse: the state says which. */
export const FrontendType = {
  Bind: "B",
  Close: "C",
  CopyData: "d",
  CopyDone: "c",
  CopyFail: "f",
  Describe: "D",
  Execute: "E",
  Flush: "H",
  FunctionCall: "F",
  Parse: "P",
  Password: "p",
  Query: "Q",
  Sync: "S",
  Terminate: "X"
} as const

/**
 * PostgreSQL's own bound on what it reads during authentication (PG_MAX_SASL_MESSAGE_LENGTH, 1024 bytes of body),
 * as a bound on the length word for decodeFrontendMessage.
 */
export const MAX_SASL_MESSAGE_LENGTH = 1024 + 4

/** PG_MAX_AUTH_TOKEN_LENGTH (65535 bytes of body) for a PasswordMessage, as a bound on the length word. */
export const MAX_PASSWORD_MESSAGE_LENGTH = 65535 + 4

/**
 * Frames one client message. The default bound is the server's (MaxAllocSize, as for backend messages); pass
 * MAX_SASL_MESSAGE_LENGTH or MAX_PASSWORD_MESSAGE_LENGTH while the client authenticates. Never throws.
 */
export const decodeFrontendMessage = (
  buf: Buffer,
  maxLength: number = MAX_BACKEND_MESSAGE_LENGTH
): Decoded<FrontendMessage> => frameTypedMessage(buf, maxLength, "frontend")
