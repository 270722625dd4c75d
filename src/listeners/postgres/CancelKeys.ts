// Which backend issued each (process id, secret key) pair, so a CancelRequest arriving on a fresh connection reaches
// the backend that runs the query. Entries live exactly as long as their session. With several worker processes a
// cancel often lands on another worker than its session: `shared` mirrors the table in the primary process, and the
// primary asks the worker that issued a pooled client's key where that client's query runs (pool/pooledKeys.ts).
import type { VettedEndpoint } from "../../domain/Endpoint.ts"
import { type CancelTicket, LentTicket } from "../pool/connHold.ts"

/** Process id and secret key as one flat hex string: a table key held per session, so no pieces joined by a template. */
export const cancelKeyOf = (processId: number, secretKey: Uint8Array) => {
  const b = Buffer.allocUnsafe(4 + secretKey.length)
  b.writeInt32BE(processId | 0, 0)
  b.set(secretKey, 4)
  return b.toString("hex")
}

/** Where a cancel goes: the server's address and the key to quote there. */
export interface CancelTarget {
  readonly target: VettedEndpoint
  readonly processId: number
  readonly secretKey: Uint8Array
  /** A pooled client's: the claim on its server connection, ended once the request is over (pool/connHold.ts). */
  readonly ticket?: CancelTicket | undefined
}

/**
 * What the cluster knows of another worker's key, as it crosses processes: a relayed session's backend (no key: the
 * request goes with its own), a pooled client's server connection with that connection's key (secret in hex) and the
 * number of the claim its worker took on it (`hold`, ended by SharedCancelKeys `done`), or "idle" (a pooled client
 * running nothing).
 */
export type SharedCancel =
  | {
      readonly target: VettedEndpoint
      readonly processId?: number
      readonly secretKey?: string
      readonly hold?: number
    }
  | "idle"

/** A table every worker can reach (the cluster primary's). */
export interface SharedCancelKeys {
  readonly add: (key: string, target: VettedEndpoint) => void
  readonly remove: (key: string) => void
  readonly lookup: (key: string) => Promise<SharedCancel | undefined>
  /** A request sent for `key` is over: the worker that lent the claim `hold` ends it. */
  readonly done?: ((key: string, hold: number) => void) | undefined
}

/** A pooled client's cancel target as it crosses processes (see SharedCancel). */
export const sharedCancelOf = (found: CancelTarget | "idle", hold?: number): SharedCancel =>
  found === "idle"
    ? found
    : {
        target: found.target,
        processId: found.processId,
        secretKey: Buffer.from(found.secretKey).toString("hex"),
        ...(hold === undefined ? {} : { hold })
      }

export class CancelKeys {
  private readonly table = new Map<string, VettedEndpoint>()
  private readonly shared: SharedCancelKeys | undefined

  constructor(shared?: SharedCancelKeys) {
    this.shared = shared
  }

  remember(processId: number, secretKey: Uint8Array, target: VettedEndpoint): string {
    const key = cancelKeyOf(processId, secretKey)
    this.table.set(key, target)
    this.shared?.add(key, target)
    return key
  }

  forget(key: string): void {
    this.table.delete(key)
    this.shared?.remove(key)
  }

  /**
   * This process's relayed sessions first; then, in a cluster, every worker's relayed sessions and pooled clients.
   * A relayed session's cancel keeps the key it came with.
   */
  async find(processId: number, secretKey: Uint8Array): Promise<CancelTarget | "idle" | undefined> {
    const key = cancelKeyOf(processId, secretKey)
    const mine = this.table.get(key)
    if (mine !== undefined) return { target: mine, processId, secretKey }
    const found = await this.shared?.lookup(key)
    if (found === undefined || found === "idle") return found
    const done = this.shared?.done
    if (found.processId === undefined || found.secretKey === undefined) {
      return { target: found.target, processId, secretKey }
    }
    return {
      target: found.target,
      processId: found.processId,
      secretKey: Buffer.from(found.secretKey, "hex"),
      ticket: found.hold === undefined || done === undefined ? undefined : new LentTicket(done, key, found.hold)
    }
  }

  get size(): number {
    return this.table.size
  }
}
