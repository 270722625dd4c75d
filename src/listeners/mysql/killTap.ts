// client → backend, relayed through a tap: every command packet's first bytes are looked at, so that a KILL naming
// one of the proxy's connection ids (the one a client reads in its greeting) reaches the session it stands for.
//
// The tap takes the relay's place on the client's `data` (src/relay/relay.ts, `clientData`) and follows the packet
// framing: a 4-byte header per packet, a command being a packet with sequence id 0 that does not continue a 2^24-1
// byte one (LOAD DATA LOCAL contents and auth exchanges have other sequence ids). Chunks in which no command could be
// a KILL are written on as they came, in one write. A COM_QUERY of up to `maxKillPacket` bytes whose text starts (after
// whitespace and comments) with KILL, and a COM_PROCESS_KILL, are held back until whole and then:
//   - translated when the id is a live proxy id of a session of the same user on the same backend server (what that
//     server lets a user without KILL rights end; the resource may differ, as for the mariadb CLI's Ctrl-C, which
//     logs in without a database): the same command with the backend's id goes to this client's own backend
//     connection, which answers it (OK, or its own error) in order with any command the client pipelined before
//     it, with the sequence id the client expects;
//   - refused when the id is in the proxy's range but names no session this client may end: a SIGNAL goes to the
//     backend instead, which answers with MySQL's own error, ER_NO_SUCH_THREAD (1094, "Unknown thread id: N", also
//     for a session on another server: this connection cannot reach it, and the proxy holds no credentials to) or
//     ER_KILL_DENIED_ERROR (1095, "You are not owner of thread N": another user's, even for a user the server would
//     let end it; such users can KILL by the backend's ids), again in order;
//   - passed on untouched otherwise: ids outside the proxy's range are the backend's own (CONNECTION_ID(), SHOW
//     PROCESSLIST), and so are expressions (KILL CONNECTION_ID()), which the backend evaluates.
// A pooled client (pool/session.ts) has no tap: its session reads its commands and translates a KILL the same way
// (`killCommand`); its record's backend id is that of the server connection it holds at the time, 0 when it holds
// none, so a KILL of it then has nothing to reach: KILL QUERY does nothing, KILL CONNECTION closes that client. With
// several workers, a KILL of a pooled client greeted by another worker is asked of that worker through the primary:
// it answers the record of that moment and, for a KILL CONNECTION of a client that holds no server connection,
// closes the client itself (`killAskedElsewhere`); the issuer's side then goes on as for a client of its own.
// The proxy never answers a command itself: a pipelining client (the `mariadb` connector pipelines by default) would
// otherwise get the answer ahead of those of earlier commands. Compression would hide the commands, but the listener
// never offers CLIENT_COMPRESS.
//
// One small object per connection, found through a field of the client socket, and one shared handler: a closure per
// connection would keep its scope for the session's life.
import type * as net from "node:net"
import {
  Command,
  encodePacket,
  KillPrefix,
  type KillTarget,
  killPrefix,
  MAX_PACKET_PAYLOAD,
  parseKill,
  rewriteKill,
  signalPayload
} from "../../codec/mysql/index.ts"
import type { VettedEndpoint } from "../../domain/Endpoint.ts"
import type { RelayWatch } from "../Protocol.ts"
import { lendKillClaim } from "./killClaim.ts"
import { isProxyId, type KillIssuer, type MysqlSessionRecord, type MysqlSessions } from "./sessions.ts"

/** Payload bytes of a COM_QUERY read whole to find a KILL's id; a longer command passes untouched. */
const maxKillPacket = 4096

type Tapped = net.Socket & { _killTap?: KillTap | undefined }

const ER_NO_SUCH_THREAD = 1094
const ER_KILL_DENIED_ERROR = 1095

class KillTap implements RelayWatch, MysqlSessionRecord {
  readonly proxyId: number
  readonly backendId: number
  readonly ip: string
  readonly port: number
  readonly user: string
  readonly sessions: MysqlSessions
  readonly backend: net.Socket
  /** Payload bytes of the current packet still to pass before the next header. */
  left = 0
  /** The last header announced 2^24-1 bytes: the next packet continues that payload and is no command. */
  continued = false
  /** Bytes held back from a packet boundary on: a header or a KILL cut by a read, or what came during a lookup. */
  held: Buffer | undefined = undefined
  /** A lookup in the cluster primary's table is under way: the client stays paused and its bytes wait in `held`. */
  waiting = false
  ended = false

  constructor(
    proxyId: number,
    backendId: number,
    target: VettedEndpoint,
    user: string,
    sessions: MysqlSessions,
    backend: net.Socket
  ) {
    this.proxyId = proxyId
    this.backendId = backendId
    this.ip = target.ip
    this.port = target.port
    this.user = user
    this.sessions = sessions
    this.backend = backend
  }

  /** Takes the relay's place on the client's `data`. */
  get clientData(): (this: net.Socket, chunk: Buffer) => void {
    return onClientData
  }

  closed(): void {
    this.ended = true
    this.held = undefined
    this.sessions.remove(this.proxyId)
  }

  write(client: net.Socket, bytes: Buffer): void {
    if (!this.backend.write(bytes)) client.pause()
  }

  /** Passes `buf` on, holding back from the first packet that may be a KILL until it can be told. */
  feed(client: net.Socket, buf: Buffer): void {
    const end = buf.length
    let pos = 0
    let from = 0 // first byte not yet written
    while (pos < end) {
      if (this.left > 0) {
        const n = Math.min(this.left, end - pos)
        pos += n
        this.left -= n
        continue
      }
      if (end - pos < 4) break // the rest of the header comes with the next read
      const length = buf[pos]! | (buf[pos + 1]! << 8) | (buf[pos + 2]! << 16)
      if (buf[pos + 3] === 0 && !this.continued && length > 0 && length <= maxKillPacket) {
        if (end - pos < 5) break // and the command byte
        const command = buf[pos + 4]
        const whole = end - pos - 4 >= length
        const look =
          command === Command.PROCESS_KILL
            ? length === 5
              ? KillPrefix.KILL
              : KillPrefix.NO
            : command === Command.QUERY
              ? killPrefix(buf, pos + 5, Math.min(end, pos + 4 + length), whole)
              : KillPrefix.NO
        if (look !== KillPrefix.NO) {
          if (!whole) break
          if (from < pos) this.write(client, buf.subarray(from, pos))
          from = pos + 4 + length
          if (!this.command(client, buf.subarray(pos + 4, from), buf.subarray(from))) return
          pos = from
          continue
        }
      }
      this.continued = length === MAX_PACKET_PAYLOAD
      this.left = length
      pos += 4
    }
    if (from === 0 && pos === end) this.write(client, buf)
    else if (from < pos) this.write(client, buf.subarray(from, pos))
    // A copy: the chunk itself is not kept past this call.
    if (pos < end) this.held = Buffer.from(buf.subarray(pos))
  }

  /**
   * Sends what stands for one whole KILL command. Returns false when the answer waits on a lookup in another
   * process: `rest` (the bytes after it) is then held, and fed on once the command has gone.
   */
  command(client: net.Socket, payload: Buffer, rest: Buffer): boolean {
    const target = parseKill(payload)
    if (target === undefined || !isProxyId(target.id)) {
      this.write(client, encodePacket(payload, 0))
      return true
    }
    const found = this.sessions.find(target.id, killIssuer(payload, target, this))
    if (!(found instanceof Promise)) {
      this.write(client, this.answer(payload, target.id, found, target))
      return true
    }
    this.waiting = true
    this.held = rest.length > 0 ? Buffer.from(rest) : undefined
    client.pause()
    void found.then((record) => {
      this.waiting = false
      if (this.ended || this.backend.writableEnded) return
      this.write(client, this.answer(payload, target.id, record, target))
      const held = this.held
      this.held = undefined
      if (held !== undefined) this.feed(client, held)
      if (!this.waiting && !this.backend.writableNeedDrain) client.resume()
    })
    return false
  }

  /** The packet that goes to the backend for a KILL of proxy id `id`. */
  answer(payload: Buffer, id: number, record: MysqlSessionRecord | undefined, target: KillTarget): Buffer {
    return encodePacket(killCommand(payload, id, record, target, this), 0)
  }
}

const hungUp = (record: MysqlSessionRecord) =>
  record instanceof KillTap && (record.ended || record.backend.readableEnded || record.backend.destroyed)

/** A statement the server answers with a plain OK: what a KILL that has nothing to kill on the server stands for. */
export const nothingToKill = Buffer.from("\x03DO 0", "latin1")

/**
 * The command payload that stands for KILL `payload` (of proxy id `id`, at `target`) on the issuer's own backend
 * connection, which is on server `here` as user `here.user` (see the top of this file). A pooled client that holds no
 * server connection (backendId 0) runs no query: KILL QUERY of it does nothing, KILL CONNECTION closes it; either way
 * the issuer's server answers OK in order.
 */
export const killCommand = (
  payload: Buffer,
  id: number,
  record: MysqlSessionRecord | undefined,
  target: KillTarget,
  here: Issuer
): Buffer => {
  if (!reachable(record, here)) return signalPayload(ER_NO_SUCH_THREAD, `Unknown thread id: ${id}`)
  if (record.user !== here.user) return signalPayload(ER_KILL_DENIED_ERROR, `You are not owner of thread ${id}`)
  if (record.backendId !== 0) return rewriteKill(payload, target, record.backendId)
  if (!killsQueryOnly(payload, target)) record.killed?.()
  return nothingToKill
}

/** Whether killCommand sends the KILL on to `record`'s backend thread (rather than an error, or nothing to kill). */
export const killReaches = (record: MysqlSessionRecord | undefined, here: Issuer): record is MysqlSessionRecord =>
  reachable(record, here) && record.user === here.user && record.backendId !== 0

/** Where a KILL is issued from: the issuing client's server and user. */
export type Issuer = { readonly ip: string; readonly port: number; readonly user: string }

/**
 * Whether the issuer's server knows `record`'s session. A session on another server is as unknown to it as a closed
 * one; so is one of this process whose backend has hung up, before the relay has closed (its client may have seen
 * the close already).
 */
const reachable = (record: MysqlSessionRecord | undefined, here: Issuer): record is MysqlSessionRecord =>
  record !== undefined && record.ip === here.ip && record.port === here.port && !hungUp(record)

/**
 * The issuer of KILL `payload` (see `killAskedElsewhere`); made for a KILL of a proxy id only. `claims`: it tells when
 * the KILL has been answered (a pooled client; the tap relays the answer unread).
 */
export const killIssuer = (payload: Buffer, target: KillTarget, here: Issuer, claims = false): KillIssuer => ({
  ip: here.ip,
  port: here.port,
  user: here.user,
  connection: !killsQueryOnly(payload, target),
  ...(claims ? { claims } : {})
})

/**
 * Another worker's client KILLs session `proxyId` of this process (asked through the primary: the id is this
 * worker's, and no mirrored record had it, so it is a pooled client's or none). Answers what the issuer's worker
 * translates the KILL with (killCommand): the record as of now, a copy the message can carry, with the number of the
 * claim taken on the server connection it names when the issuer says when its KILL is answered (killClaim.ts). A KILL
 * CONNECTION of a pooled client that holds no server connection closes it here, as killCommand does in one process.
 */
export const killAskedElsewhere = (
  sessions: MysqlSessions,
  proxyId: number,
  issuer: KillIssuer
): MysqlSessionRecord | undefined => {
  const record = sessions.mine(proxyId)
  if (record === undefined || hungUp(record)) return undefined
  if (record.backendId === 0 && issuer.connection && reachable(record, issuer) && record.user === issuer.user) {
    record.killed?.()
  }
  const { backendId, ip, port, user } = record
  // The KILL will reach that server connection: claimed, and the claim lent to the issuer's worker.
  const hold = issuer.claims && killReaches(record, issuer) ? lendKillClaim(record, issuer.connection) : undefined
  return hold === undefined ? { backendId, ip, port, user } : { backendId, ip, port, user, lentHold: hold }
}

/** KILL [HARD|SOFT] QUERY <id> (not COM_PROCESS_KILL, which ends the connection). */
export const killsQueryOnly = (payload: Buffer, target: KillTarget): boolean =>
  payload[0] === Command.QUERY && /\bquery\b/i.test(payload.toString("latin1", 1, target.at))

function onClientData(this: Tapped, chunk: Buffer) {
  const tap = this._killTap!
  const held = tap.held
  if (held !== undefined) {
    chunk = Buffer.concat([held, chunk])
    tap.held = undefined
  }
  if (tap.waiting) {
    // The backend's `drain` resumes the client even while a lookup runs: keep what came, in order. A copy: the chunk
    // may be a view of the relay's shared slab.
    tap.held = held === undefined ? Buffer.from(chunk) : chunk
    this.pause()
    return
  }
  tap.feed(this, chunk)
}

/**
 * Registers the session under `proxyId` and taps the client's commands; the relay calls `closed()` on the result when
 * the session ends. Pass `clientData` of the result to the relay in place of its own forwarding.
 */
export const tapKills = (
  client: net.Socket,
  backend: net.Socket,
  target: VettedEndpoint,
  session: { readonly proxyId: number; readonly backendId: number; readonly user: string },
  sessions: MysqlSessions
): RelayWatch => {
  const tap = new KillTap(session.proxyId, session.backendId, target, session.user, sessions, backend)
  sessions.add(tap.proxyId, tap)
  ;(client as Tapped)._killTap = tap
  return tap
}
