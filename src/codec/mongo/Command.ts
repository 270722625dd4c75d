// Client → proxy: the command inside an OP_MSG body or an OP_QUERY on "db.$cmd": its name (the first field, by the
// protocol's rule) and its database, found at the top level of the document without decoding any value; and, for the
// handshake, the few fields of hello the proxy acts on.
import { type Document, deserialize, onDemand } from "bson"
import { decodeUtf8 } from "./Document.ts"
import { HELLO_COMMANDS } from "./Protocol.ts"

export interface CommandPeek {
  readonly name: string
  /** `$db`; absent from OP_QUERY commands, whose database is in the collection name. */
  readonly db: string | undefined
}

const BSON_STRING = 2

/**
 * Name and `$db` of a command document. Walks the top-level elements only (a 10 MB insert costs a few comparisons,
 * not a decode). Returns why not when the document is malformed. Never throws.
 */
export const peekCommand = (doc: Uint8Array): CommandPeek | string => {
  let name: string | undefined
  let db: string | undefined
  try {
    for (const [type, nameOffset, nameLength, offset, length] of onDemand.parseToElements(doc)) {
      const key = decodeUtf8(doc, nameOffset, nameOffset + nameLength)
      if (key === undefined) return "command field name is not valid UTF-8"
      name ??= key
      if (key !== "$db") continue
      // Two $db could be read one way here and the other way by the server: refuse the ambiguity.
      if (db !== undefined) return "command has two $db fields"
      if (type !== BSON_STRING) return "$db is not a string"
      // int32 byte count (the NUL included), the bytes, NUL.
      const count = Buffer.from(doc.buffer, doc.byteOffset, doc.byteLength).readInt32LE(offset)
      if (count !== length - 4 || doc[offset + length - 1] !== 0) return "$db is not a well-formed BSON string"
      db = decodeUtf8(doc, offset + 4, offset + length - 1)
      if (db === undefined) return "$db is not valid UTF-8"
    }
  } catch (e) {
    return `malformed BSON command: ${(e as Error).message}`
  }
  if (name === undefined) return "empty command document"
  return { name, db }
}

export interface HelloRequest {
  /** "hello", "isMaster" or "ismaster": the reply's primary field follows the spelling. */
  readonly name: string
  /** The driver accepts `hello` for its later checks (it then stops using the legacy OP_QUERY). */
  readonly helloOk: boolean
  /** loadBalanced=true in the URI: the reply must carry a serviceId. */
  readonly loadBalanced: boolean
  /** The driver's metadata (driver, os, platform, application): passed on to the backend. */
  readonly client: Document | undefined
  /** client.application.name, the `appName` of the URI. */
  readonly appName: string | undefined
  /** Compressors the driver offers; the proxy accepts none. */
  readonly compression: ReadonlyArray<string>
}

const isDocument = (v: unknown): v is Document => typeof v === "object" && v !== null && !Array.isArray(v)

/** The fields of a hello / isMaster the proxy needs. The document is small (the caller bounds it). Never throws. */
export const readHello = (doc: Uint8Array): HelloRequest | string => {
  let value: Document
  try {
    value = deserialize(doc)
  } catch (e) {
    return `malformed hello: ${(e as Error).message}`
  }
  const name = Object.keys(value)[0]
  if (name === undefined || !HELLO_COMMANDS.has(name)) return `expected hello, got ${JSON.stringify(name ?? "")}`
  const client = value.client
  if (client !== undefined && !isDocument(client)) return "hello: client metadata is not a document"
  const application = client?.application
  const appName = isDocument(application) && typeof application.name === "string" ? application.name : undefined
  const compression = Array.isArray(value.compression)
    ? value.compression.filter((c: unknown): c is string => typeof c === "string")
    : []
  return {
    name,
    helloOk: value.helloOk === true || value.helloOk === 1,
    loadBalanced: value.loadBalanced === true,
    client,
    appName,
    compression
  }
}
