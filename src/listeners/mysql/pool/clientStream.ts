// client → server for a pooled MySQL client: frames the client's packets as they stream through (their 4-byte headers,
// and the first bytes of each command) to know when it needs a server connection (a command while it holds none),
// what the server owes it (one response per command, in order: a pipelining client may send several before the
// first answer), and what the command does to the session: a COM_QUERY's text is read (StatementEffects) for the
// state that pins the connection and for USE; USE, COM_INIT_DB, COM_CHANGE_USER and KILL go to commands.ts. A
// command is a packet with sequence id 0 that continues no 2^24-1 byte payload; other packets continue one, or are a
// LOCAL INFILE upload (the link's ResponseEnd frames those), or answer the proxy's own auth switch (commands.ts).
import { Command, KillPrefix, killPrefix, MAX_PACKET_PAYLOAD, Status } from "../../../codec/mysql/index.ts"
import { statementEffects } from "../../../codec/mysql/StatementEffects.ts"
import { authAnswer, changeUser } from "./changeUser.ts"
import { kill, refuse, use } from "./commands.ts"
import { Wait } from "./holding.ts"
import type { Link } from "./link.ts"
import type { MysqlSession } from "./session.ts"

/** COM_QUERY text read before the command passes on: its effects are judged on up to this many bytes. */
export const analyzedBytes = 1024 * 1024
/** A KILL is read whole up to this size (killTap.ts's limit); COM_INIT_DB and COM_CHANGE_USER up to `maxWhole`. */
const maxKillPacket = 4096
const maxWhole = 64 * 1024

/** What a command's handler says: forward it; it needs a server connection first; dropped (answered or not); stop. */
export const PASS = 0
export const NEED_SERVER = 1
export const DROP = 2
export const STOP = 3

const empty = Buffer.alloc(0)

/** Commands read whole before anything is decided. */
const readWhole = (command: number): boolean =>
  command === Command.INIT_DB || command === Command.CHANGE_USER || command === Command.PROCESS_KILL

/** Bytes the client sent: forwarded to its server connection, or held while it waits for one. */
export const fromClient = (s: MysqlSession, chunk: Buffer): void => {
  if (s.held !== undefined) {
    s.hold(chunk)
    return
  }
  if (s.quit) return
  const buf = s.rest.length === 0 ? chunk : Buffer.concat([s.rest, chunk])
  s.rest = empty
  const n = buf.length
  let from = 0 // the first byte not yet forwarded (or dropped)
  let i = 0
  while (i < n) {
    if (s.remaining > 0) {
      const take = Math.min(s.remaining, n - i)
      i += take
      s.remaining -= take
      if (s.skipping) from = i
      continue
    }
    const link = s.link
    if (link?.infile) {
      // A LOCAL INFILE upload: its packets pass until the empty one that ends it.
      const at = link.end.clientBytes(buf, i)
      i = at < 0 ? n : at
      if (at >= 0) link.infile = false
      continue
    }
    if (n - i < 4) break
    const length = buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16)
    if (s.slow?.awaitsPacket) {
      // The answer to the proxy's own AuthSwitchRequest (COM_CHANGE_USER); what follows waits for its check.
      if (length > maxWhole) {
        s.protocolViolation(`an auth switch response of ${length} bytes`)
        return
      }
      if (n - i - 4 < length) break
      flush(s, link, buf, from, i)
      const answer = Buffer.from(buf.subarray(i + 4, i + 4 + length))
      s.suspend(Wait.LOOKUP, buf.subarray(i + 4 + length))
      authAnswer(s, answer)
      return
    }
    if (s.continued || buf[i + 3] !== 0) {
      // Continues a command's payload (or one dropped with it).
      s.continued = length === MAX_PACKET_PAYLOAD
      if (link === undefined && !s.skipping) {
        s.protocolViolation("a packet that belongs to no command")
        return
      }
      i += 4
      s.remaining = length
      if (s.skipping) from = i
      continue
    }
    s.skipping = false
    if (length === 0) {
      s.protocolViolation("an empty command packet")
      return
    }
    if (n - i < 5) break
    const command = buf[i + 4]!
    const whole = readWhole(command)
    if (whole && length > maxWhole) {
      s.protocolViolation(`command ${command} of ${length} bytes`)
      return
    }
    const need = whole ? length : command === Command.QUERY ? Math.min(length, analyzedBytes) : 1
    if (n - i - 4 < need) break
    const act = commandAct(s, link, buf, from, i, length, command)
    if (act === PASS) {
      // Read and forwarded as a whole (`link` is set: the handlers ask for a server connection first).
      if (command !== Command.STMT_CLOSE && command !== Command.STMT_SEND_LONG_DATA) link!.expect(command)
      s.continued = length === MAX_PACKET_PAYLOAD
      i += 4
      s.remaining = length
    } else if (act === NEED_SERVER) {
      // Nothing of this read is unforwarded before it: without a server connection nothing was forwarded.
      s.waitForServer(buf.subarray(i), length)
      return
    } else if (act === DROP) {
      s.dropCommand(length)
      from = i
    } else return
  }
  if (i < n) s.rest = Buffer.from(buf.subarray(i))
  if (from < i && s.link !== undefined) s.forward(s.link, buf.subarray(from, i))
}

/**
 * What reads one command: the session, its held link, the read, its first byte not yet forwarded (`from`), where the
 * command's packet starts (`i`), its payload length, and what else the handler needs; returns PASS, NEED_SERVER…
 */
export type CommandHandler<X> = (
  s: MysqlSession,
  link: Link | undefined,
  buf: Buffer,
  from: number,
  i: number,
  length: number,
  x: X
) => number

/** Bytes of this read not yet forwarded, before a command that answers or waits: they go first. */
export const flush = (s: MysqlSession, link: Link | undefined, buf: Buffer, from: number, i: number): void => {
  if (link !== undefined && from < i) s.forward(link, buf.subarray(from, i))
}

/** One command, its first `need` bytes at hand: what to do with it (and what it does to the session). */
const commandAct: CommandHandler<number> = (s, link, buf, from, i, length, command) => {
  switch (command) {
    case Command.QUERY:
      return query(s, link, buf, from, i, length, undefined)
    case Command.INIT_DB:
      return use(s, link, buf, from, i, length, buf.toString("utf8", i + 5, i + 4 + length))
    case Command.CHANGE_USER:
      return changeUser(s, link, buf, from, i, length, undefined)
    case Command.PROCESS_KILL:
      return kill(s, link, buf, from, i, length, undefined)
    case Command.QUIT:
      flush(s, link, buf, from, i)
      s.terminate(true)
      return STOP
    case Command.RESET_CONNECTION:
      // The server forgets the client's state: nothing pins any more. Held: the server answers (and is clean after);
      // not held: there is nothing to forget, the proxy answers as the server would.
      s.unpin()
      if (link === undefined) {
        s.answerOk()
        return DROP
      }
      // Clean after it, on MariaDB; MySQL's reset also sets the character set back to the server's (serverConn.ts).
      link.conn.dirty = !link.conn.mariadb
      return PASS
    case Command.STMT_CLOSE:
    case Command.STMT_SEND_LONG_DATA:
      // No answer comes; without a server connection there is no statement to close or feed.
      return link === undefined ? DROP : PASS
    case Command.STMT_PREPARE:
      // v1: a prepared statement lives on its server connection until the client resets or leaves.
      if (link === undefined) return NEED_SERVER
      s.pin("prepared statement")
      return PASS
    case Command.SET_OPTION:
      if (link === undefined) return NEED_SERVER
      s.pin("COM_SET_OPTION")
      return PASS
    case Command.BINLOG_DUMP:
    case Command.BINLOG_DUMP_GTID:
    case Command.REGISTER_SLAVE:
    case Command.TABLE_DUMP:
      return refuse(s, link, buf, from, i, length, "replication")
    default:
      return link === undefined ? NEED_SERVER : PASS
  }
}

/** COM_QUERY: a KILL, a USE, or a statement whose effects on the session are noted as it passes. */
const query: CommandHandler<undefined> = (s, link, buf, from, i, length) => {
  const stop = i + 4 + Math.min(length, analyzedBytes)
  if (length <= maxKillPacket && killPrefix(buf, i + 5, stop, true) === KillPrefix.KILL) {
    return kill(s, link, buf, from, i, length, undefined)
  }
  // Judged once: a command that waited for a server connection is read again when it comes.
  const effects =
    s.effects ?? statementEffects(buf.toString("utf8", i + 5, stop), (s.status & Status.NO_BACKSLASH_ESCAPES) !== 0)
  s.effects = undefined
  if (effects.use !== undefined) return use(s, link, buf, from, i, length, effects.use)
  if (link === undefined) {
    s.effects = effects
    return NEED_SERVER
  }
  // Releases first: each kind is as the last statement of the text that touched it left it (StatementEffects).
  if (effects.unpins !== undefined) s.release(effects.unpins)
  if (effects.pins !== undefined) for (const kind of effects.pins) s.pin(kind)
  return PASS
}
