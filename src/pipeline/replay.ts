// replay phase of the byte listeners: what the backend gets first, once dialed. The route's PROXY header (the
// backend wants to know who the client is), then identify's bytes as they came (`replayNow`, both paths), or the
// protocol's own replay (a rewritten startup, upstream TLS, the backend's login: `replay`, the handshake fiber's),
// which the pipeline bounds by timeouts.handshake whatever the protocol does.
import type * as net from "node:net"
import * as Effect from "effect/Effect"
import { encodeProxyHeader } from "../codec/proxy/ProxyHeader.ts"
import type { VettedEndpoint } from "../domain/Endpoint.ts"
import { type ProxyError, proxyError } from "../domain/ProxyError.ts"
import type { ConnectionInfo, Route } from "../domain/Route.ts"
import { writeDirect } from "../relay/directWrite.ts"
import type { Connection } from "./Connection.ts"
import type { ListenerState } from "./ListenerState.ts"

/** The same header a load balancer would have sent us, when the route asks for one (`metadata.proxyProtocol`). */
const sendProxyHeader = (dialed: net.Socket, route: Route, target: VettedEndpoint, who: ConnectionInfo) => {
  const pp = route.metadata.proxyProtocol
  if (pp !== 1 && pp !== 2) return
  dialed.write(
    encodeProxyHeader(
      pp,
      { address: who.remoteAddress, port: who.remotePort },
      { address: dialed.remoteAddress ?? target.ip, port: target.port }
    )
  )
}

const header = (c: Connection, route: Route, dialed: net.Socket) => {
  // Read only when the route asks: on the fiber-free path it may cost the peer's address (ListenerState.peerRead).
  if (route.metadata.proxyProtocol !== undefined) sendProxyHeader(dialed, route, c.target, c.whoNow())
}

/** replay for a protocol without one of its own: the header, then what identify read. Returns the socket to relay. */
export const replayNow = (c: Connection, dialed: net.Socket): net.Socket => {
  header(c, c.route!, dialed)
  const replay = c.identified?.replay
  // Past Node's Writable (relay/directWrite.ts), as the relay writes what follows; behind a PROXY header still in
  // Node's buffer it takes socket.write itself, so the order holds.
  if (replay !== undefined && replay.length > 0) writeDirect(dialed, replay)
  return dialed
}

/**
 * The protocol's replay, for the handshake fiber, bounded by timeouts.handshake, so a backend that accepts and never
 * answers (never says 'S', never finishes TLS, never sends its greeting) cannot hold the client for ever. A protocol
 * that bounds each of its waits itself, with words that say which (`boundsReplay`), gets this only as a backstop
 * behind them (timeouts.handshake + the dial's timeout). The dialed socket is destroyed if replay fails.
 */
export const replay = (
  p: ListenerState,
  c: Connection,
  replayOf: NonNullable<ListenerState["protocol"]["replay"]>,
  dialed: net.Socket
): Effect.Effect<net.Socket, ProxyError> => {
  const route = c.route!
  header(c, route, dialed)
  const run = replayOf(c.identified!, route, dialed)
  const seconds = p.protocol.boundsReplay
    ? p.timeouts.handshake + (route.timeout ?? p.timeouts.connect)
    : p.timeouts.handshake
  const bounded =
    p.handshakeMs <= 0
      ? run
      : Effect.timeoutOrElse(run, {
          duration: seconds * 1000,
          orElse: () => {
            const message = `backend did not complete its handshake within ${seconds}s`
            return Effect.fail(proxyError("CONNECT_FAILED", "backend", message, { clientMessage: message }))
          }
        })
  return Effect.onError(bounded, () => Effect.sync(() => dialed.destroy()))
}
