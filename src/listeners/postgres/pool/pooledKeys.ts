// The BackendKeyData the proxy gives each pooled client (its own, since the client has no server connection of its
// own), and the table that finds the client's session again when a CancelRequest quotes it: the cancel then goes to
// the server connection running that client's query at that moment, with that connection's key. The table is this
// process's; with `workers: N` each worker's process ids are the ones ≡ its index (mod N), so the primary, when a
// cancel lands on another worker, knows which worker to ask (`pooledKeyOwner`): PgBouncer's peers put a peer_id in
// the key the same way. The secret key stays fully random. Each answer comes with a claim on that server connection
// (pool/connHold.ts), so a request that arrives late cannot cancel the next client's query there; a claim lent to
// another worker is kept here by number until that worker says its request is over (`pooledCancelDone`).
import { randomBytes } from "node:crypto"
import { type ConnHold, LentClaims } from "../../pool/connHold.ts"
import type { CancelTarget, SharedCancel } from "../CancelKeys.ts"
import { cancelKeyOf, sharedCancelOf } from "../CancelKeys.ts"

export type { CancelTarget }

/** A pooled client's cancel target: its server connection now, claimed until the request is over. */
export interface PooledCancelTarget extends CancelTarget {
  readonly ticket: ConnHold<unknown>
}

/** What the table holds: a session, asked at cancel time (undefined: nothing of the client's is running). */
export interface Cancellable {
  cancelTarget(): PooledCancelTarget | undefined
}

export interface PooledKey {
  readonly processId: number
  readonly secretKey: Buffer
  /** The table's key (cancelKeyOf), to forget it. */
  readonly key: string
}

/** This process's place among the workers (MySQL's connection ids use the same one). */
export interface KeySlot {
  readonly index: number
  readonly count: number
}

const sessions = new Map<string, Cancellable>()
let slot: KeySlot = { index: 0, count: 1 }
/** Process ids this slot hands out: index + count × n for n in [0, span). A single process: every positive int32. */
let span = 0x80000000

/** Set once by a worker before it serves: its keys carry its index. */
export const setPooledKeySlot = (s: KeySlot): void => {
  const count = Math.max(1, s.count)
  slot = { index: s.index % count, count }
  span = Math.floor((0x7fffffff - slot.index) / count) + 1
}

/** The worker index a pooled key's process id names, of `count` workers (the table key holds it in hex, first). */
export const pooledKeyOwner = (key: string, count: number): number => Number.parseInt(key.slice(0, 8), 16) % count

/** A fresh key for `session`, remembered until `forgetPooledKey`. Process ids are positive, as a server's are. */
export const issuePooledKey = (session: Cancellable): PooledKey => {
  for (;;) {
    const bytes = randomBytes(8)
    const processId = slot.index + slot.count * ((bytes.readUInt32BE(0) & 0x7fffffff) % span)
    const secretKey = bytes.subarray(4)
    const key = cancelKeyOf(processId, secretKey)
    if (processId === 0 || sessions.has(key)) continue
    sessions.set(key, session)
    return { processId, secretKey, key }
  }
}

export const forgetPooledKey = (key: string): void => {
  sessions.delete(key)
}

/** pooledCancel by the table key (cancelKeyOf). */
const pooledCancelOf = (key: string): PooledCancelTarget | "idle" | undefined => {
  const session = sessions.get(key)
  if (session === undefined) return undefined
  return session.cancelTarget() ?? "idle"
}

/** Claims lent to other workers' requests. */
const lent = new LentClaims()

/**
 * The primary's question for a cancel another worker received (by the table key): the target as it crosses processes,
 * its claim kept here under the number that worker quotes back when its request is over.
 */
export const pooledCancelLent = (key: string): SharedCancel | undefined => {
  const found = pooledCancelOf(key)
  if (found === undefined || found === "idle") return found
  return sharedCancelOf(found, lent.lend(found.ticket))
}

/** Another worker's request for a claim lent here is over (or never came: the claim lapses by itself). */
export const pooledCancelDone = (hold: number): void => {
  lent.done(hold)
}

/**
 * The server connection a CancelRequest with this key should reach: undefined when the key is no pooled client's of
 * this process (it may be a relayed session's, or another worker's: CancelKeys), or "idle" when the client runs
 * nothing now (the server would have nothing to cancel either: silence).
 */
export const pooledCancel = (processId: number, secretKey: Uint8Array): PooledCancelTarget | "idle" | undefined =>
  pooledCancelOf(cancelKeyOf(processId, secretKey))

/** Pooled clients with a key now (for specs and stats). */
export const pooledKeyCount = (): number => sessions.size
