// COM_CHANGE_USER for a pooled MySQL session (clientStream.ts hands it over read whole): checked by the proxy
// (home.checkUser) against the greeting's nonce, which clients hash it with (mysql2 does), and else, as MariaDB does,
// after an AuthSwitchRequest with a fresh nonce; then the session moves to the new user's pool, its state gone as the
// server's would be. A wrong answer: 1045 and, as on MariaDB, the old user stays but its state is gone. Without a
// database in the packet the current one stays (MariaDB would leave none: a pool needs one).
import { AuthPlugin, Capability, encodeAuthSwitchRequest, encodePacket } from "../../../codec/mysql/index.ts"
import { Reader } from "../../../codec/mysql/Reader.ts"
import { ProxyError } from "../../../domain/ProxyError.ts"
import { mysqlErrorFor } from "../errPacket.ts"
import { accessDenied, clientHost, lookupFailed, newScramble } from "../proxyLogin.ts"
import { type CommandHandler, STOP } from "./clientStream.ts"
import { failureBytes, Slow, Step, settled, unexpected } from "./commands.ts"
import { Wait } from "./holding.ts"
import type { MysqlPool } from "./mysqlPool.ts"
import type { ProxyLogin } from "./serverConn.ts"
import type { MysqlSession } from "./session.ts"

interface ChangeUser {
  readonly user: string
  readonly answer: Buffer
  readonly database: string
  readonly characterSet: number | undefined
  readonly plugin: string | undefined
}

/** COM_CHANGE_USER's payload (command byte first), with the flags the client negotiated. */
const parseChangeUser = (payload: Buffer, flags: number): ChangeUser | undefined => {
  const r = new Reader(payload, 1)
  const user = r.nulTerminated()
  if (user === undefined) return undefined
  let answer: Buffer | undefined
  if (flags & Capability.SECURE_CONNECTION) {
    const n = r.u8()
    answer = n === undefined ? undefined : r.bytes(n)
  } else answer = r.nulTerminated()
  if (answer === undefined) return undefined
  const database = r.remaining > 0 ? r.nulTerminatedOrRest().toString("utf8") : ""
  const characterSet = r.remaining >= 2 ? r.u16() : undefined
  const plugin = flags & Capability.PLUGIN_AUTH && r.remaining > 0 ? r.nulTerminatedOrRest().toString() : undefined
  return { user: user.toString("utf8"), answer: Buffer.from(answer), database, characterSet, plugin }
}

export const changeUser: CommandHandler<undefined> = (s, link, buf, from, i, length) => {
  if (!settled(s, link, buf, from, i)) return STOP
  const parsed = parseChangeUser(buf.subarray(i + 4, i + 4 + length), s.login.flags)
  if (parsed === undefined) {
    s.protocolViolation("a malformed COM_CHANGE_USER")
    return STOP
  }
  s.suspend(Wait.LOOKUP, buf.subarray(i + 4 + length))
  const slow = new Slow(Step.CHECKING)
  slow.user = parsed.user
  slow.database = parsed.database === "" ? s.login.database : parsed.database
  slow.characterSet = parsed.characterSet ?? s.login.characterSet
  slow.nonce = s.nonce
  s.slow = slow
  // An answer of another plugin's is not worth a check: the switch comes at once.
  if (parsed.plugin !== undefined && parsed.plugin !== AuthPlugin.NATIVE) checked(s, slow, undefined)
  else check(s, slow, parsed.answer)
  return STOP
}

const check = (s: MysqlSession, slow: Slow, answer: Buffer): void => {
  if (answer.length === 0) {
    denied(s, slow, false)
    return
  }
  s.home.checkUser(slow.user, answer, slow.nonce!).then(
    (stage1) => checked(s, slow, stage1),
    (e: unknown) => {
      if (s.slow !== slow) return
      s.slow = undefined
      const error = lookupFailed(e)
      s.home.log.warn("mysql COM_CHANGE_USER could not be checked", { listener: s.home.listener, error: error.message })
      s.answer(mysqlErrorFor(error, slow.sequenceId))
      s.resumeHeld()
    }
  )
}

const checked = (s: MysqlSession, slow: Slow, stage1: Buffer | undefined): void => {
  if (s.slow !== slow) return
  if (stage1 !== undefined) {
    switchUser(s, slow, stage1)
    return
  }
  if (slow.step === Step.ANSWERING || slow.sequenceId !== 1) {
    denied(s, slow, true)
    return
  }
  // Not an answer to the greeting's nonce with this user's password: ask for one to a fresh nonce, as MariaDB does.
  slow.nonce = newScramble()
  slow.step = Step.ANSWERING
  slow.sequenceId = 3
  s.answer(encodePacket(encodeAuthSwitchRequest(AuthPlugin.NATIVE, Buffer.concat([slow.nonce, Buffer.from([0])])), 1))
  s.resumeHeld()
}

/** The client's answer to the proxy's AuthSwitchRequest (clientStream.ts, which holds what follows it). */
export const authAnswer = (s: MysqlSession, answer: Buffer): void => {
  const slow = s.slow!
  slow.step = Step.CHECKING
  check(s, slow, answer)
}

/** Refused: MariaDB's 1045; as on MariaDB the session keeps its user, but its state is gone. */
const denied = (s: MysqlSession, slow: Slow, withPassword: boolean): void => {
  s.slow = undefined
  s.home.log.info("mysql COM_CHANGE_USER refused", { listener: s.home.listener, user: slow.user })
  s.resetState()
  s.answer(encodePacket(accessDenied(slow.user, clientHost(s.client.remoteAddress), withPassword), slow.sequenceId))
  s.resumeHeld()
}

const switchUser = (s: MysqlSession, slow: Slow, stage1: Buffer): void => {
  slow.step = Step.SWITCHING
  const login: ProxyLogin = {
    ...s.login,
    user: slow.user,
    stage1,
    database: slow.database,
    characterSet: slow.characterSet
  }
  slow.login = login
  s.home.poolFor(slow.database, login).then(
    (found) => switching(s, slow, found),
    (e: unknown) => switching(s, slow, unexpected(e))
  )
}

const switching = (s: MysqlSession, slow: Slow, found: MysqlPool | ProxyError): void => {
  if (s.slow !== slow) return
  s.resetState()
  if (found instanceof ProxyError) {
    s.slow = undefined
    s.answer(failureBytes(found, slow.sequenceId))
    s.resumeHeld()
    return
  }
  slow.step = Step.SWITCHED
  slow.fromPool = s.pool
  slow.fromLogin = s.login
  s.moveTo(found, slow.login!)
  s.acquire()
}
