// server → client for a pooled MySQL client: the server connection's bytes go to the client as they come, each read
// whole and untouched; the link's ResponseEnd frames them on the side (it reads the first bytes of each packet only,
// keeping at most a packet head of its own across reads) to tell where the response to each command ends. When the
// last one owed ends, the session may give the connection back (session.ts `answered`), before it writes the bytes.
import type { Link } from "./link.ts"
import type { MysqlSession } from "./session.ts"

/** Bytes from the server connection `link` holds. */
export const fromServer = (s: MysqlSession, link: Link, chunk: Buffer): void => {
  const end = link.end
  const n = chunk.length
  let i = 0
  let over = false
  // Once nothing is owed, what is left (an ERR before a hang-up: a KILL's 1927, a shutdown's 1053) just passes.
  while (i < n && link.pending > 0 && !link.infile) {
    const at = end.serverBytes(chunk, i)
    if (at < 0) break
    i = at
    if (end.turn === "client") {
      // LOCAL INFILE: the client sends the file now (clientStream.ts), then the server answers.
      link.infile = true
      break
    }
    link.conn.status = end.status
    over = !link.answered()
  }
  if (over) s.answered(link, chunk)
  else s.toClient(link, chunk)
}
