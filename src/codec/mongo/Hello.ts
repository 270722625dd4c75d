// Proxy → client: the proxy's own answer to hello / isMaster; proxy → backend: the hello it opens each backend
// connection with. The client sees one standalone server, the proxy: no replica-set members to discover behind it,
// no compression, no topologyVersion (so drivers poll with plain hellos instead of holding a streaming one open).
import { type Document, deserialize, type ObjectId } from "bson"
import { type Decoded, frame, invalid } from "./Decode.ts"
import { decodeOpMsg } from "./OpMsg.ts"
import {
  LOGICAL_SESSION_TIMEOUT_MINUTES,
  MAX_BSON_OBJECT_SIZE,
  MAX_MESSAGE_SIZE,
  MAX_WIRE_VERSION,
  MAX_WRITE_BATCH_SIZE,
  MIN_WIRE_VERSION
} from "./Protocol.ts"
import { OK } from "./Reply.ts"

export interface HelloReplyInput {
  /** The request's spelling: "hello" gets isWritablePrimary, the legacy spellings ismaster. */
  readonly command: string
  readonly helloOk: boolean
  /** Per client connection, as a server numbers its connections. */
  readonly connectionId: number
  /** Only when the driver is in load-balanced mode, which requires it. */
  readonly serviceId?: ObjectId | undefined
  readonly now: Date
}

export const helloReply = (input: HelloReplyInput): Document => ({
  ...(input.command === "hello" ? { isWritablePrimary: true } : { ismaster: true }),
  ...(input.helloOk ? { helloOk: true } : {}),
  maxBsonObjectSize: MAX_BSON_OBJECT_SIZE,
  maxMessageSizeBytes: MAX_MESSAGE_SIZE,
  maxWriteBatchSize: MAX_WRITE_BATCH_SIZE,
  localTime: input.now,
  logicalSessionTimeoutMinutes: LOGICAL_SESSION_TIMEOUT_MINUTES,
  connectionId: input.connectionId,
  minWireVersion: MIN_WIRE_VERSION,
  maxWireVersion: MAX_WIRE_VERSION,
  readOnly: false,
  ...(input.serviceId ? { serviceId: input.serviceId } : {}),
  ok: OK
})

/** The hello sent to a backend: the client's metadata, nothing that would start compression or authentication. */
export const backendHello = (client: Document | undefined): Document => ({
  hello: 1,
  ...(client ? { client } : {}),
  $db: "admin"
})

export interface BackendHelloReply {
  readonly ok: boolean
  readonly errmsg: string | undefined
  readonly maxWireVersion: number | undefined
}

/** The backend's answer to `backendHello`, which must be an OP_MSG replying to `requestId`. Never throws. */
export const decodeBackendHelloReply = (
  buf: Buffer,
  requestId: number,
  maxLength: number
): Decoded<BackendHelloReply> => {
  const msg = decodeOpMsg(buf, maxLength)
  if (msg._tag !== "Frame") return msg
  if (msg.value.header.responseTo !== requestId) {
    return invalid(`reply to request ${msg.value.header.responseTo}, expected ${requestId}`)
  }
  let doc: Document
  try {
    doc = deserialize(msg.value.body)
  } catch (e) {
    return invalid(`malformed hello reply: ${(e as Error).message}`)
  }
  return frame(
    {
      ok: Number(doc.ok) === 1,
      errmsg: typeof doc.errmsg === "string" ? doc.errmsg : undefined,
      maxWireVersion: typeof doc.maxWireVersion === "number" ? doc.maxWireVersion : undefined
    },
    msg.size
  )
}
