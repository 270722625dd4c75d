// The BackendKeyData the proxy gives each pooled client (its own, since the client has no server connection of its
// own), and the table that finds the client's session again when a CancelRequest quotes it: the cancel then goes to
// the server connection running that client's query at that moment, with that connection's key. Per process, as
// CancelKeys is without a cluster (multi-worker cancel of pooled sessions is not done yet).
import { randomBytes } from "node:crypto"
import type { VettedEndpoint } from "../../../domain/Endpoint.ts"
import { cancelKeyOf } from "../CancelKeys.ts"

/** Where a cancel for a pooled client goes now: the server connection's address and its own key. */
export interface CancelTarget {
  readonly target: VettedEndpoint
  readonly processId: number
  readonly secretKey: Buffer
}

/** What the table holds: a session, asked at cancel time (undefined: nothing of the client's is running). */
export interface Cancellable {
  cancelTarget(): CancelTarget | undefined
}

export interface PooledKey {
  readonly processId: number
  readonly secretKey: Buffer
  /** The table's key (cancelKeyOf), to forget it. */
  readonly key: string
}

const sessions = new Map<string, Cancellable>()

/** A fresh key for `session`, remembered until `forgetPooledKey`. Process ids are positive, as a server's are. */
export const issuePooledKey = (session: Cancellable): PooledKey => {
  for (;;) {
    const bytes = randomBytes(8)
    const processId = bytes.readUInt32BE(0) & 0x7fffffff
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

/**
 * The server connection a CancelRequest with this key should reach: undefined when the key is no pooled client's
 * (it may be a relayed session's: CancelKeys), or the client runs nothing now (the server would have nothing to
 * cancel either: silence).
 */
export const pooledCancel = (processId: number, secretKey: Uint8Array): CancelTarget | "idle" | undefined => {
  const session = sessions.get(cancelKeyOf(processId, secretKey))
  if (session === undefined) return undefined
  return session.cancelTarget() ?? "idle"
}

/** Pooled clients with a key now (for specs and stats). */
export const pooledKeyCount = (): number => sessions.size
