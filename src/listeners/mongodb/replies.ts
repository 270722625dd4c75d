// proxy → client: every refusal as a command error reply (`{ ok: 0, errmsg, code, codeName }`) to the request the
// client is waiting on, which drivers raise as a MongoServerError carrying our code; and the ids of our replies.
//
// Codes are chosen for what the driver does with them, not only for their names:
// - never a "state change" code (91 ShutdownInProgress, 189 PrimarySteppedDown, 10107 NotWritablePrimary, 11600,
//   11602, 13435, 13436): those mark the server Unknown and clear the client's whole connection pool;
// - never 26 NamespaceNotFound: drivers swallow it on drop() and listIndexes, so an unknown tenant would look fine;
// - 6 HostUnreachable and 89 NetworkTimeout are retryable: the driver retries a read at once, on the same connection,
//   which answers with the same error (refusing.ts), so the user sees our message either way.

import {
  encodeReply,
  errorDocument,
  HEADER_LENGTH,
  MAX_MESSAGE_SIZE,
  OP_COMPRESSED,
  OP_MSG,
  OP_QUERY
} from "../../codec/mongo/index.ts"
import type { ProxyError, Reason } from "../../domain/ProxyError.ts"
import { clientText } from "../refusal.ts"

export const mongoCodeOf: Readonly<Record<Reason, { readonly code: number; readonly codeName: string }>> = {
  // The proxy routes databases to backends as a mongos routes them to shards: "no shard for this database".
  NOT_FOUND: { code: 70, codeName: "ShardNotFound" },
  FORBIDDEN: { code: 13, codeName: "Unauthorized" },
  UNAVAILABLE: { code: 6, codeName: "HostUnreachable" },
  TIMEOUT: { code: 89, codeName: "NetworkTimeout" },
  CONNECT_FAILED: { code: 6, codeName: "HostUnreachable" },
  HANDSHAKE_TIMEOUT: { code: 89, codeName: "NetworkTimeout" },
  BAD_REQUEST: { code: 17, codeName: "ProtocolError" },
  INTERNAL: { code: 1, codeName: "InternalError" }
}

/** The request a refusal answers. */
export interface Pending {
  readonly requestId: number
  /** It was an OP_QUERY: the answer must be an OP_REPLY. */
  readonly legacy: boolean
  /** Bytes of the request the client has yet to send (a request refused before its end); 0 when whole or unknown. */
  readonly unread?: number
}

let lastRequestId = 0

/** Ids for the proxy's own messages (replies and its hello to backends): positive int32, wrapping. */
export const nextRequestId = (): number => {
  lastRequestId = lastRequestId >= 0x7fffffff ? 1 : lastRequestId + 1
  return lastRequestId
}

/**
 * The request whose header is at the front of `buf`, if 16 bytes of it are there (for refusing a malformed one). Its
 * unread rest counts only for a request a driver could have sent, with a length a server accepts: a foreign stream's
 * "length" means nothing.
 */
export const pendingAt = (buf: Buffer): Pending | undefined => {
  if (buf.length < HEADER_LENGTH) return undefined
  const length = buf.readInt32LE(0)
  const opCode = buf.readInt32LE(12)
  const request = opCode === OP_MSG || opCode === OP_QUERY || opCode === OP_COMPRESSED
  const plausible = request && length >= HEADER_LENGTH && length <= MAX_MESSAGE_SIZE
  return {
    requestId: buf.readInt32LE(4),
    legacy: opCode === OP_QUERY,
    unread: plausible ? Math.max(0, length - buf.length) : 0
  }
}

export const refusalFor = (error: ProxyError, pending: Pending | undefined): Buffer => {
  const { code, codeName } = mongoCodeOf[error.reason]
  return encodeReply(errorDocument({ errmsg: clientText(error), code, codeName }), {
    requestId: nextRequestId(),
    // No header was readable (a few bytes of garbage): 0.
    responseTo: pending?.requestId ?? 0,
    legacy: pending?.legacy ?? false
  })
}
