// close phase of the byte listeners: the one place a connection ends. `finish` counts it and releases what it held
// (the listener's slot, the proxy's, its resource's; the drain's wait); a connection gets there refused (`refuse`:
// answered in its protocol, one log line), abandoned at shutdown (`abandon`: no answer owed), or once its relay has
// closed (`relayClosed`: the connection log line and Resolver.onDisconnect).
import type * as net from "node:net"
import { formatEndpoint } from "../domain/Endpoint.ts"
import { type ProxyError, withProps } from "../domain/ProxyError.ts"
import { cancelDial } from "../listeners/dial.ts"
import { logRefusal, newRef } from "../listeners/refusal.ts"
import type { RelayTotals } from "../relay/relay.ts"
import type { Connection } from "./Connection.ts"
import type { ListenerState, RelayState } from "./ListenerState.ts"

/** How long a refused client gets to read our error before the socket is destroyed. */
const refuseGraceMs = 2_000

// Shared: found through `this`, so a refusal allocates no closure for it.
function destroySelf(this: net.Socket) {
  this.destroy()
}

export const withResource = (e: ProxyError, resourceId: string): ProxyError => withProps(e, { resourceId })

/** Counts the connection closed with its byte totals and releases everything it held. */
export const finish = (p: ListenerState, accepted: net.Socket, fromClient: number, fromBackend: number): void => {
  p.metrics.closed(fromClient, fromBackend)
  const resource = p.open.get(accepted)
  if (resource === undefined) return
  p.open.delete(accepted)
  p.admission.leave()
  if (resource !== "") p.admission.leaveResource(resource)
  if (p.open.size === 0 && p.idleWaiters.length > 0) {
    for (const w of p.idleWaiters) w()
    p.idleWaiters = []
  }
}

/** Refused before the relay: answered in the protocol's words (the detail only in the log line, refusal.ts). */
export const refuse = (p: ListenerState, c: Connection, error: ProxyError): void => {
  p.handshaking.delete(c)
  p.metrics.refused(error.reason.toLowerCase())
  // The client's answer and the log line carry the same ref.
  const refused = withProps(error, { ref: newRef() })
  const info = c.peer()
  logRefusal(p.log, "connection refused", refused, {
    listener: p.name,
    protocol: p.label,
    client: `${info.remoteAddress}:${info.remotePort}`
  })
  const { accepted, client } = c
  finish(p, accepted, accepted.bytesRead, 0)
  if (client.destroyed || accepted.destroyed) return
  if (refused.quiet) client.end()
  else p.protocol.refuse(client, refused)
  accepted.setTimeout(refuseGraceMs, destroySelf)
}

/** Shutdown (the drain deadline passed, the handshake fiber interrupted): no answer is owed. */
export const abandon = (p: ListenerState, c: Connection): void => {
  p.handshaking.delete(c)
  if (c.peeking) {
    c.peeking = false
    clearTimeout(c.timer)
    c.cancelPeek?.()
  }
  if (c.fiber === undefined && c.backend !== undefined) cancelDial(c.backend)
  c.session?.destroy()
  c.client.destroy()
  c.accepted.destroy()
  finish(p, c.accepted, c.accepted.bytesRead, 0)
}

/** Both sockets closed before the relay could start: nothing left to relay. */
export const closedEarly = (p: ListenerState, c: Connection, client: net.Socket, backend: net.Socket): void => {
  p.handshaking.delete(c)
  client.destroy()
  backend.destroy()
  finish(p, c.accepted, client.bytesRead, backend.bytesRead)
}

/** The relay's close handler (one per listener, `ListenerState.onRelayClosed`); the facts of each ride on the relay. */
export const relayClosed = (p: ListenerState, totals: RelayTotals, state: RelayState): void => {
  const { accepted, route, who, started } = state
  state.watch?.closed()
  finish(p, accepted, totals.bytesFromClient, totals.bytesFromBackend)
  p.allMetrics.resource(route.resourceId)?.closed(totals.bytesFromClient, totals.bytesFromBackend)
  if (!p.logConnections && p.resolver.onDisconnect === undefined) return
  const durationMs = Math.round(performance.now() - started)
  const endpoint = formatEndpoint(route.endpoint)
  if (p.logConnections && (p.logSample >= 1 || Math.random() < p.logSample)) {
    p.log.info("connection closed", {
      listener: p.name,
      protocol: p.label,
      client: `${who.remoteAddress}:${who.remotePort}`,
      resource: route.resourceId,
      backend: endpoint,
      durationMs,
      bytesFromClient: totals.bytesFromClient,
      bytesFromBackend: totals.bytesFromBackend,
      close: totals.error
        ? `error: ${totals.error.message}`
        : totals.timedOut === "idle"
          ? "idle timeout"
          : totals.timedOut === "halfClose"
            ? "half-close timeout"
            : "normal"
    })
  }
  if (p.resolver.onDisconnect) {
    p.runFork(
      p.resolver.onDisconnect({
        ...who,
        resourceId: route.resourceId,
        endpoint,
        bytesFromClient: totals.bytesFromClient,
        bytesFromBackend: totals.bytesFromBackend,
        durationMs
      })
    )
  }
}
