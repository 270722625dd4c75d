// Constants of the MongoDB wire protocol shared by the messages in this folder, and the server the proxy claims to be.

export const OP_REPLY = 1
export const OP_QUERY = 2004
export const OP_COMPRESSED = 2012
export const OP_MSG = 2013

/** Opcodes of MongoDB before 3.6, gone from servers since 5.1 (OP_QUERY stays for the legacy handshake only). */
const legacyOpcodes: Readonly<Record<number, string>> = {
  2001: "OP_UPDATE",
  2002: "OP_INSERT",
  2005: "OP_GET_MORE",
  2006: "OP_DELETE",
  2007: "OP_KILL_CURSORS",
  1000: "OP_MSG (pre-3.6)"
}

export const opcodeName = (opCode: number): string => {
  switch (opCode) {
    case OP_REPLY:
      return "OP_REPLY"
    case OP_QUERY:
      return "OP_QUERY"
    case OP_COMPRESSED:
      return "OP_COMPRESSED"
    case OP_MSG:
      return "OP_MSG"
  }
  return legacyOpcodes[opCode] ?? `unknown opcode ${opCode}`
}

export const isRemovedOpcode = (opCode: number): boolean => legacyOpcodes[opCode] !== undefined

/** OP_MSG flag bits. Bits 0-15 are "required": a parser must refuse one it does not know. */
export const OpMsgFlags = {
  checksumPresent: 1 << 0,
  moreToCome: 1 << 1,
  exhaustAllowed: 1 << 16
} as const

export const HEADER_LENGTH = 16

/** maxMessageSizeBytes of every mongod since 2.6: no server accepts a longer message. */
export const MAX_MESSAGE_SIZE = 48_000_000
/** maxBsonObjectSize: 16 MiB. */
export const MAX_BSON_OBJECT_SIZE = 16 * 1024 * 1024
/** A command body may exceed a user document by the server's 16 KiB allowance for the command's own fields. */
export const MAX_COMMAND_BODY = MAX_BSON_OBJECT_SIZE + 16 * 1024
/**
 * The handshake messages answered without a backend (hello, ping, endSessions) are tiny: client metadata is at most
 * 512 bytes by the handshake spec. A larger one is not a driver's handshake, and is not buffered.
 */
export const MAX_HANDSHAKE_MESSAGE = 64 * 1024
/**
 * What the proxy reads of a command before its connection is routed: the bytes up to the end of its command document,
 * where `$db` is (drivers write it last, after the documents of an insert). Document sequences after the command
 * document are not read. The commands that route a connection are small (saslStart is under 1 KB, a find a few
 * hundred bytes), so 64 KiB, as for the handshake, keeps what an unrouted connection can make the proxy hold to what
 * other listeners allow (10-16 KB), while a first command with a document of tens of KB still routes. The listener
 * makes it configurable (listeners.mongodb.maxRoutingCommand).
 */
export const MAX_ROUTING_COMMAND = 64 * 1024
export const MAX_WRITE_BATCH_SIZE = 100_000

/**
 * The wire version the proxy's own hello reports: MongoDB 7.0. The driver gates features on it before any backend is
 * known, so it is a promise about every backend; 7.0 is what the test server speaks and the oldest release still
 * supported. A backend older than this may refuse a command the driver chose because of it.
 */
export const MAX_WIRE_VERSION = 21
export const MIN_WIRE_VERSION = 0
export const LOGICAL_SESSION_TIMEOUT_MINUTES = 30

/** OP_COMPRESSED compressor ids (the handshake spec's table). */
export const compressorName = (id: number): string =>
  ["noop", "snappy", "zlib", "zstd"][id] ?? `unknown compressor id ${id}`

/** The commands of the connection handshake, in their three spellings. */
export const HELLO_COMMANDS: ReadonlySet<string> = new Set(["hello", "isMaster", "ismaster"])
