// The SMTP wire codec: pure bytes ⇄ values for the SMTP listener, no I/O.
export { type Command, type CommandLimits, DEFAULT_COMMAND_LIMITS, decodeCommand } from "./Command.ts"
export { type Decoded, type Frame, frame, type Invalid, invalid, type Need, need } from "./Decode.ts"
export { type HeloDomain, hasCapability, keywordOf, parseHeloDomain, withoutCapabilities } from "./Ehlo.ts"
export { recipientDomain } from "./Recipient.ts"
export { DEFAULT_REPLY_LIMITS, decodeReply, encodeReply, type Reply, type ReplyLimits } from "./Reply.ts"
