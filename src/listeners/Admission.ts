// admit phase, limits part: connections held at once by this process, overall and per resource. Plain counters: the
// check happens on every accept, so it must cost next to nothing.
import { type ProxyError, proxyError } from "../domain/ProxyError.ts"

/** A limit's refusal: the proxy's own words, nothing internal in them, so the client reads them too. */
export const limitReached = (message: string): ProxyError =>
  proxyError("UNAVAILABLE", "internal", message, { retryAfter: 1, clientMessage: message })

export class Admission {
  private maxConnections: number
  private perResource: number
  private total = 0
  private readonly byResource = new Map<string, number>()

  constructor(limits: { readonly maxConnections: number; readonly perResource: number }) {
    this.maxConnections = limits.maxConnections
    this.perResource = limits.perResource
  }

  /** Hot reload: new limits apply to the next connections; open ones are never closed for it. */
  update(limits: { readonly maxConnections: number; readonly perResource: number }): void {
    if (limits.perResource === 0) this.byResource.clear()
    this.maxConnections = limits.maxConnections
    this.perResource = limits.perResource
  }

  /** At accept. Undefined = admitted (release with `leave`). */
  enter(): ProxyError | undefined {
    if (this.maxConnections > 0 && this.total >= this.maxConnections) {
      return limitReached(`the proxy is at its limit of ${this.maxConnections} connections`)
    }
    this.total++
    return undefined
  }

  leave(): void {
    this.total--
  }

  /** Once the resource is known. Undefined = admitted (release with `leaveResource`). */
  enterResource(resourceId: string): ProxyError | undefined {
    if (this.perResource === 0) return undefined
    const n = this.byResource.get(resourceId) ?? 0
    if (n >= this.perResource) {
      return limitReached(`${resourceId} is at its limit of ${this.perResource} connections`)
    }
    this.byResource.set(resourceId, n + 1)
    return undefined
  }

  leaveResource(resourceId: string): void {
    if (this.perResource === 0) return
    const n = (this.byResource.get(resourceId) ?? 1) - 1
    if (n <= 0) this.byResource.delete(resourceId)
    else this.byResource.set(resourceId, n)
  }

  get open(): number {
    return this.total
  }
}
