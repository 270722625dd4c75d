// Proxy → client: a command's answer in the shape its request came in (OP_REPLY to a legacy OP_QUERY, OP_MSG
// otherwise), and the error document drivers raise as a server error.
import { type Document, Double } from "bson"
import { encodeOpMsg } from "./OpMsg.ts"
import { encodeOpReply } from "./OpReply.ts"

export interface ReplyTo {
  /** The proxy's own id for the reply. */
  readonly requestId: number
  /** The client's requestId: drivers match the reply to their request by it. */
  readonly responseTo: number
  /** The request was an OP_QUERY. */
  readonly legacy: boolean
}

export const encodeReply = (doc: Document, to: ReplyTo): Buffer =>
  to.legacy
    ? encodeOpReply({ requestId: to.requestId, responseTo: to.responseTo, documents: [doc] })
    : encodeOpMsg({ requestId: to.requestId, responseTo: to.responseTo, body: doc })

export interface CommandError {
  readonly errmsg: string
  /** A server error code (src/mongo/base/error_codes.yml) and its name. */
  readonly code: number
  readonly codeName: string
  readonly errorLabels?: ReadonlyArray<string> | undefined
}

/** `ok` is a double in every server reply; some drivers compare its type. */
export const OK = new Double(1)
const NOT_OK = new Double(0)

export const okDocument = (fields: Document = {}): Document => ({ ...fields, ok: OK })

export const errorDocument = (error: CommandError): Document => ({
  ok: NOT_OK,
  errmsg: error.errmsg,
  code: error.code,
  codeName: error.codeName,
  ...(error.errorLabels && error.errorLabels.length > 0 ? { errorLabels: [...error.errorLabels] } : {})
})
