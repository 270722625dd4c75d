// admit phase of the byte listeners: the connection limits (the listener's, the proxy's, each resource's) and the
// backend's circuit breaker. Each check is one function that the handshake fiber and the fiber-free path both call;
// they answer at once (plain counters and one map lookup), so the accept loop pays next to nothing for them. The
// cold-start wait, admit's third part, is in coldStart.ts.
import type * as net from "node:net"
import { formatEndpoint, type VettedEndpoint } from "../domain/Endpoint.ts"
import { type ProxyError, proxyError } from "../domain/ProxyError.ts"
import { limitReached } from "../listeners/Admission.ts"
import { untrustedSender } from "./accept.ts"
import type { ListenerState } from "./ListenerState.ts"

/**
 * At accept: the listener's own limit, then the proxy's (entered: `finish` releases it), then whether the sender may
 * send a PROXY header at all. Undefined = admitted; else the refusal, and nothing entered.
 */
export const admitAccepted = (p: ListenerState, socket: net.Socket): ProxyError | undefined => {
  const max = p.config.maxConnections
  const overLimit =
    max > 0 && p.open.size >= max
      ? limitReached(`listener ${p.name} is at its limit of ${max} connections`)
      : p.admission.enter()
  if (overLimit !== undefined || p.pp === undefined) return overLimit
  const untrusted = untrustedSender(p.pp, socket)
  if (untrusted !== undefined) p.admission.leave()
  return untrusted
}

/**
 * Once identify found the resource: its limit. Admitted (undefined), the connection is counted under the resource
 * until `finish` releases it.
 */
export const admitResource = (p: ListenerState, accepted: net.Socket, resourceId: string): ProxyError | undefined => {
  const limited = p.admission.enterResource(resourceId)
  if (limited === undefined && p.open.has(accepted)) p.open.set(accepted, resourceId)
  return limited
}

/** Before the dial: the backend's breaker (`key`: ListenerState.keyOf). A half-open one lets this dial be its trial. */
export const admitBackend = (p: ListenerState, key: string, target: VettedEndpoint): ProxyError | undefined => {
  const gate = p.breaker.admit(key)
  return gate.ok
    ? undefined
    : proxyError("UNAVAILABLE", "backend", `backend ${formatEndpoint(target)} is failing (circuit open)`, {
        retryAfter: gate.retryAfter
      })
}
