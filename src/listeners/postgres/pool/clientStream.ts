// client → server for a pooled client: frames the client's messages as they stream through (only their 5-byte
// headers are read; bodies pass untouched, a COPY's included) to know when it needs a server connection (its first
// message while it holds none), what the server owes it (a ReadyForQuery per Query, Sync and FunctionCall), and to
// keep what transaction pooling cannot carry from reaching a server connection that others share.
import { decodeErrorFields, encodeErrorResponse } from "../../../codec/pg/index.ts"
import { encodeExecute } from "../../../codec/pg/SessionMessages.ts"
import type { PooledSession } from "./session.ts"

const QUERY = 0x51
const SYNC = 0x53
const FUNCTION_CALL = 0x46
const PARSE = 0x50
const BIND = 0x42
const DESCRIBE = 0x44
const EXECUTE = 0x45
const CLOSE = 0x43
const TERMINATE = 0x58

const empty = Buffer.alloc(0)

/**
 * A named Parse would leave a prepared statement on a server connection the client may never see again (and a later
 * Bind of it on another one would fail at random). The server is sent, in its place, an Execute of a portal that
 * cannot exist: it fails there as a Parse would (the transaction aborted, the messages up to Sync skipped), and the
 * relay puts the proxy's words in place of the server's (serverStream.ts).
 */
const refusedPortal = "polyproxy_named_statement_refused"
const refusalProbe = encodeExecute(refusedPortal)

export const namedStatementRefusal = encodeErrorResponse({
  severity: "ERROR",
  code: "0A000", // feature_not_supported
  message: "named prepared statements are not supported in transaction pooling mode",
  hint: "Use unnamed statements (with node-postgres: no `name` on the query), or a route whose pool mode is session."
})

/** Whether an ErrorResponse body is the server's answer to `refusalProbe`. */
export const isRefusalAnswer = (body: Buffer): boolean => {
  const e = decodeErrorFields(body)
  return (
    e._tag === "Frame" && e.value.fields.get("C") === "34000" && (e.value.fields.get("M") ?? "").includes(refusedPortal)
  )
}

/** Bytes the client sent: forwarded to its server connection, or held while it waits for one. */
export const fromClient = (s: PooledSession, chunk: Buffer): void => {
  if (s.held !== undefined) {
    s.held.push(chunk)
    return
  }
  if (s.terminated) return
  const buf = s.rest.length === 0 ? chunk : Buffer.concat([s.rest, chunk])
  s.rest = empty
  const n = buf.length
  const link = s.link
  let from = 0 // the first byte not yet forwarded (or skipped)
  let i = 0
  scan: while (i < n) {
    if (s.remaining > 0) {
      const take = Math.min(s.remaining, n - i)
      i += take
      s.remaining -= take
      if (s.skipping) {
        from = i
        if (s.remaining === 0) s.skipping = false
      }
      continue
    }
    if (n - i < 5) break
    const type = buf[i]!
    const length = buf.readInt32BE(i + 1)
    if (length < 4) {
      s.protocolViolation(`invalid message length ${length}`)
      return
    }
    if (link === undefined) {
      // Nothing was forwarded from this chunk (from === i): hold it all until a server connection is granted.
      if (type === TERMINATE) s.terminate(true)
      else s.waitForServer(buf.subarray(i))
      return
    }
    switch (type) {
      case TERMINATE:
        s.forward(link, buf.subarray(from, i))
        s.terminate(true)
        return
      case QUERY:
      case FUNCTION_CALL:
        link.pending++
        break
      case SYNC:
        link.pending++
        link.batch = false
        break
      case PARSE:
        // The statement name comes first: empty (one NUL) for the unnamed statement.
        if (n - i < 6) break scan
        link.batch = true
        if (length > 4 && buf[i + 5] !== 0) {
          s.forward(link, buf.subarray(from, i))
          s.forward(link, refusalProbe)
          link.refused++
          s.skipping = true
          i += 5
          from = i
          s.remaining = length - 4
          continue
        }
        break
      case BIND:
      case DESCRIBE:
      case EXECUTE:
      case CLOSE:
        link.batch = true
        break
    }
    i += 5
    s.remaining = length - 4
  }
  if (i < n) s.rest = Buffer.from(buf.subarray(i))
  if (link !== undefined && from < i) s.forward(link, buf.subarray(from, i))
}
