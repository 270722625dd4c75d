// The commands a pooled MySQL session does not just forward (clientStream.ts hands them here, read whole):
// - USE db / COM_INIT_DB of the database it is in: forwarded. Of another one: the session moves to that database's
//   pool (home.poolFor) and the command runs there, on a connection of the new pool, which answers it; refused with
//   MySQL's 1192 while a transaction is open or session state pins the connection (that state would be lost).
// - COM_CHANGE_USER: changeUser.ts.
// - KILL <proxy id> and COM_PROCESS_KILL: translated on the issuer's own server connection (killTap.ts killCommand);
//   the target may be another worker's client, looked up through the primary meanwhile (Step.LOOKING_UP). The
//   target's server connection is claimed until the KILL's answer (killClaim.ts).
// - replication commands: refused.
// Anything that answers the client itself first waits until the server owes it nothing (Wait.SETTLE), so answers come
// in the order the commands were sent.
import {
  encodeErrPacket,
  encodeOkPacket,
  encodePacket,
  type KillTarget,
  parseKill,
  Status
} from "../../../codec/mysql/index.ts"
import { ProxyError, proxyError, withProps } from "../../../domain/ProxyError.ts"
import { killClaim } from "../killClaim.ts"
import { killCommand, killIssuer, killReaches, killsQueryOnly, nothingToKill } from "../killTap.ts"
import { isProxyId, type MysqlSessionRecord } from "../sessions.ts"
import { type CommandHandler, DROP, flush, NEED_SERVER, PASS, STOP } from "./clientStream.ts"
import { Wait } from "./holding.ts"
import type { Link } from "./link.ts"
import { type MysqlPool, poolErrPayload } from "./mysqlPool.ts"
import type { MysqlServerConn, ProxyLogin } from "./serverConn.ts"
import type { MysqlSession } from "./session.ts"

export const okPacket = (sequenceId: number, status: number): Buffer =>
  encodePacket(encodeOkPacket({ statusFlags: status }), sequenceId)

export const errPacket = (sequenceId: number, code: number, sqlState: string, message: string): Buffer =>
  encodePacket(encodeErrPacket({ code, sqlState, message }), sequenceId)

/** The client's words for a failure to get a server connection or a pool, as the answer numbered `sequenceId`. */
export const failureBytes = (error: ProxyError, sequenceId: number): Buffer =>
  encodePacket(poolErrPayload(error), sequenceId)

/** What a slow command is doing, between the callbacks that carry it on. */
export const Step = {
  /** USE: waiting for the other database's pool. */
  MOVING: 0,
  /** USE: waiting for a connection of the new pool (the old one is kept to go back to if none comes). */
  MOVED: 1,
  /** COM_CHANGE_USER: waiting for the answer's check. */
  CHECKING: 2,
  /** COM_CHANGE_USER: waiting for the client's answer to the proxy's AuthSwitchRequest. */
  ANSWERING: 3,
  /** COM_CHANGE_USER: waiting for the new user's pool, then for one of its connections. */
  SWITCHING: 4,
  SWITCHED: 5,
  /** KILL: waiting for the target's record from another worker; then it is known. */
  LOOKING_UP: 6,
  FOUND: 7
} as const

export class Slow {
  step: number
  fromPool: MysqlPool | undefined = undefined
  fromLogin: ProxyLogin | undefined = undefined
  /** COM_CHANGE_USER: the new user, its database and collation, the nonce its answer is checked with. */
  user = ""
  database = ""
  characterSet = 0
  nonce: Buffer | undefined = undefined
  login: ProxyLogin | undefined = undefined
  /** The sequence id of the proxy's answer to COM_CHANGE_USER: 1, or 3 after its AuthSwitchRequest. */
  sequenceId = 1
  /** KILL: the proxy id looked up, and what it names. */
  killId = 0
  record: MysqlSessionRecord | undefined = undefined

  constructor(step: number) {
    this.step = step
  }

  get awaitsPacket(): boolean {
    return this.step === Step.ANSWERING
  }

  /** The session got no server connection: true when handled here (else the command that waited gets the error). */
  failed(s: MysqlSession, error: ProxyError): boolean {
    s.slow = undefined
    if (this.step === Step.MOVED) s.moveTo(this.fromPool!, this.fromLogin!)
    else if (this.step === Step.SWITCHED) {
      s.moveTo(this.fromPool!, this.fromLogin!)
      s.answer(failureBytes(error, this.sequenceId))
      s.resumeHeld()
      return true
    }
    return false
  }
}

/** The server connection the session waited for came (the held bytes are read on after this). */
export const afterGrant = (s: MysqlSession, slow: Slow, conn: MysqlServerConn): void => {
  if (slow.step === Step.MOVED) s.slow = undefined
  else if (slow.step === Step.SWITCHED) {
    s.slow = undefined
    s.answer(okPacket(slow.sequenceId, conn.status))
  }
}

/**
 * Before a command the proxy answers itself: this read's bytes before it are forwarded, and while the held connection
 * owes answers the command waits for them (false: it runs again once none is owed), so answers keep their order.
 */
export const settled = (s: MysqlSession, link: Link | undefined, buf: Buffer, from: number, i: number): boolean => {
  flush(s, link, buf, from, i)
  if (link === undefined || link.settled) return true
  s.suspend(Wait.SETTLE, buf.subarray(i))
  return false
}

// --- USE, COM_INIT_DB ---

const ER_LOCK_OR_ACTIVE_TRANSACTION = 1192

export const use: CommandHandler<string> = (s, link, buf, from, i, length, database) => {
  if (database === s.login.database) return link === undefined ? NEED_SERVER : PASS
  if (!settled(s, link, buf, from, i)) return STOP
  const pinnedBy = s.pinnedBy
  const detail =
    link !== undefined && link.conn.status & Status.IN_TRANS
      ? "the transaction ends"
      : pinnedBy === undefined
        ? undefined
        : `it releases its session state (${pinnedBy}) or resets`
  if (detail !== undefined) {
    s.answer(
      errPacket(
        1,
        ER_LOCK_OR_ACTIVE_TRANSACTION,
        "HY000",
        "Can't execute the given command because you have active locked tables or an active transaction " +
          `(polyproxy: database '${database}' is served by other server connections; this session keeps its own ` +
          `until ${detail})`
      )
    )
    return DROP
  }
  // Held from the command on: once the pool is known, the command is read again and runs there.
  s.suspend(Wait.LOOKUP, buf.subarray(i))
  const slow = new Slow(Step.MOVING)
  s.slow = slow
  const login: ProxyLogin = { ...s.login, database }
  s.home.poolFor(database, login).then(
    (found) => moving(s, slow, database, length, found),
    (e: unknown) => moving(s, slow, database, length, unexpected(e))
  )
  return STOP
}

export const unexpected = (e: unknown): ProxyError =>
  proxyError("INTERNAL", "internal", e instanceof Error ? e.message : String(e))

const moving = (s: MysqlSession, slow: Slow, database: string, length: number, found: MysqlPool | ProxyError) => {
  if (s.slow !== slow) return
  s.slow = undefined
  if (found instanceof ProxyError) {
    s.home.log.info("mysql pooled client's USE refused", {
      listener: s.home.listener,
      database,
      reason: found.reason,
      error: found.message
    })
    s.answer(failureBytes(withProps(found, { resourceId: database }), 1))
    s.dropCommand(length)
  } else if (found !== s.pool) {
    const back = new Slow(Step.MOVED)
    back.fromPool = s.pool
    back.fromLogin = s.login
    s.dropServer()
    s.moveTo(found, { ...s.login, database })
    s.slow = back
  } else {
    // Another name for the same pool's database (as the route sees it): the server is told as it was asked.
    s.moveTo(found, { ...s.login, database })
  }
  s.resumeHeld()
}

// --- KILL ---

export const kill: CommandHandler<undefined> = (s, link, buf, from, i, length) => {
  const payload = buf.subarray(i + 4, i + 4 + length)
  const target: KillTarget | undefined = parseKill(payload)
  // Not a proxy id: the server's own (CONNECTION_ID()), or an expression it evaluates.
  if (target === undefined || !isProxyId(target.id)) return link === undefined ? NEED_SERVER : PASS
  if (link === undefined) return NEED_SERVER
  let record: MysqlSessionRecord | undefined
  const slow = s.slow
  if (slow?.step === Step.FOUND && slow.killId === target.id) {
    record = slow.record
    s.slow = undefined
  } else {
    const found = s.home.sessions.find(target.id, killIssuer(payload, target, s, true))
    if (found instanceof Promise) {
      flush(s, link, buf, from, i)
      s.suspend(Wait.LOOKUP, buf.subarray(i))
      const lookup = new Slow(Step.LOOKING_UP)
      lookup.killId = target.id
      s.slow = lookup
      const done = (r: MysqlSessionRecord | undefined) => {
        if (s.slow !== lookup) return
        lookup.step = Step.FOUND
        lookup.record = r
        s.resumeHeld()
      }
      found.then(done, () => done(undefined))
      return STOP
    }
    record = found
  }
  flush(s, link, buf, from, i)
  // The target's server connection serves nobody else until this KILL is answered (killClaim.ts); a claim another
  // worker lent that lapsed meanwhile: that connection may serve another client now, so nothing is killed.
  const connection = !killsQueryOnly(payload, target)
  const ticket = killClaim(s.home.sessions, target.id, record, killReaches(record, s), connection)
  if (ticket?.expired()) {
    ticket.done()
    s.send(link, nothingToKill)
    return DROP
  }
  s.send(link, killCommand(payload, target.id, record, target, s))
  if (ticket !== undefined) link.claimUntilAnswered(ticket)
  return DROP
}

// --- refused ---

const ER_NOT_SUPPORTED_YET = 1235

export const refuse: CommandHandler<string> = (s, link, buf, from, i, _length, what) => {
  if (!settled(s, link, buf, from, i)) return STOP
  s.answer(errPacket(1, ER_NOT_SUPPORTED_YET, "42000", `polyproxy does not serve ${what} commands to pooled clients`))
  return DROP
}
