// Which backend issued each (process id, secret key) pair, so a CancelRequest arriving on a fresh connection reaches
// the backend that runs the query. One table per process; entries live exactly as long as their session.
import type { VettedEndpoint } from "../../domain/Endpoint.ts"

const keyOf = (processId: number, secretKey: Uint8Array) => `${processId}:${Buffer.from(secretKey).toString("hex")}`

export class CancelKeys {
  private readonly table = new Map<string, VettedEndpoint>()

  remember(processId: number, secretKey: Uint8Array, target: VettedEndpoint): string {
    const key = keyOf(processId, secretKey)
    this.table.set(key, target)
    return key
  }

  forget(key: string): void {
    this.table.delete(key)
  }

  find(processId: number, secretKey: Uint8Array): VettedEndpoint | undefined {
    return this.table.get(keyOf(processId, secretKey))
  }

  get size(): number {
    return this.table.size
  }
}
