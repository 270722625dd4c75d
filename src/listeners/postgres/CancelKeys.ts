// Which backend issued each (process id, secret key) pair, so a CancelRequest arriving on a fresh connection reaches
// the backend that runs the query. Entries live exactly as long as their session. With several worker processes a
// cancel often lands on another worker than its session: `shared` mirrors the table in the primary process.
import type { VettedEndpoint } from "../../domain/Endpoint.ts"

/** Process id and secret key as one flat hex string: a table key held per session, so no pieces joined by a template. */
export const cancelKeyOf = (processId: number, secretKey: Uint8Array) => {
  const b = Buffer.allocUnsafe(4 + secretKey.length)
  b.writeInt32BE(processId | 0, 0)
  b.set(secretKey, 4)
  return b.toString("hex")
}

/** A table every worker can reach (the cluster primary's). */
export interface SharedCancelKeys {
  readonly add: (key: string, target: VettedEndpoint) => void
  readonly remove: (key: string) => void
  readonly lookup: (key: string) => Promise<VettedEndpoint | undefined>
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

  /** This process's own sessions first; then, in a cluster, every worker's. */
  async find(processId: number, secretKey: Uint8Array): Promise<VettedEndpoint | undefined> {
    const key = cancelKeyOf(processId, secretKey)
    return this.table.get(key) ?? this.shared?.lookup(key)
  }

  get size(): number {
    return this.table.size
  }
}
