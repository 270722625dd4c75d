// client → server for a pooled client: frames the client's messages as they stream through (only their 5-byte
// headers are read; bodies pass untouched, a COPY's included) to know when it needs a server connection (its first
// message while it holds none), what the server owes it (a ReadyForQuery per Query, Sync and FunctionCall), and to
// keep what transaction pooling cannot carry from reaching a server connection that others share. Messages that
// name a prepared statement go through statementStream.ts.
import { expect, QUERY as QUERY_REPLY, SYNC as SYNC_REPLY } from "./replies.ts"
import type { PooledSession } from "./session.ts"
import { NEED, PASS, parseWhileIdle, statementMessage } from "./statementStream.ts"

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

/** Bytes the client sent: forwarded to its server connection, or held while it waits for one. */
export const fromClient = (s: PooledSession, chunk: Buffer): void => {
  if (s.held !== undefined) {
    s.hold(chunk)
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
      // Nothing was forwarded from this chunk (from === i): hold it all until a server connection is granted; a
      // Parse+Sync of a statement the pool knows is answered at once (statementStream.ts).
      if (type === TERMINATE) s.terminate(true)
      else if (type === QUERY && s.beginWithoutServer(buf, i, length)) {
        i += 1 + length
        from = i
        continue
      } else {
        const after = type === PARSE ? parseWhileIdle(s, buf, i, length) : -1
        if (after >= 0) {
          i = after
          from = after
          continue
        }
        s.waitForServer(buf.subarray(i))
      }
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
        if (link.expects !== undefined) expect(link, QUERY_REPLY)
        break
      case SYNC:
        link.pending++
        link.batch = false
        if (link.expects !== undefined) expect(link, SYNC_REPLY)
        break
      case PARSE:
      case BIND:
      case DESCRIBE:
      case CLOSE: {
        const at = statementMessage(s, link, buf, from, i, type, length)
        if (at === NEED) break scan
        link.batch = true
        if (at === PASS) break
        // Forwarded or dropped up to `at` (statementStream.ts set what remains of the message).
        i = at
        from = at
        continue
      }
      case EXECUTE:
        link.batch = true
        break
    }
    i += 5
    s.remaining = length - 4
  }
  if (i < n) s.rest = Buffer.from(buf.subarray(i))
  if (link !== undefined && from < i) s.forward(link, from === 0 && i === n ? buf : buf.subarray(from, i))
}
