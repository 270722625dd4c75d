// relay phase of the byte listeners, its start: from here on only plain Node sockets and shared handlers
// (src/relay/relay.ts), nothing per chunk, or for a client the protocol serves itself its session. The connection is
// counted as handshaken, the Resolver hears of it, and the relay holds the few facts the close phase needs
// (RelayState); the Connection itself is dropped.
import { formatEndpoint } from "../domain/Endpoint.ts"
import type { ConnectionInfo, Route } from "../domain/Route.ts"
import type { ServedSession } from "../listeners/Protocol.ts"
import { readIntoShared, relay } from "../relay/relay.ts"
import type { Connection } from "./Connection.ts"
import { closedEarly, finish } from "./close.ts"
import type { ListenerState } from "./ListenerState.ts"

/** What every relay start does: the connection handshaken (counted), the Resolver told. Returns who the client is. */
const relayStarts = (p: ListenerState, c: Connection, route: Route): ConnectionInfo => {
  p.handshaking.delete(c)
  const who = c.who ?? c.info ?? p.unreadPeer
  if (p.resolver.onConnect) p.runFork(p.resolver.onConnect(route.resourceId, who))
  p.metrics.handshake(performance.now() - c.started)
  p.allMetrics.resource(route.resourceId)?.connected()
  if (p.debug) {
    p.log.debug("connection relaying", {
      listener: p.name,
      protocol: p.label,
      resource: route.resourceId,
      backend: formatEndpoint(route.endpoint)
    })
  }
  // The route's copy of the resource name is shared by all its connections; the one read from this client's
  // handshake would be held per connection for its whole life.
  if (p.open.get(c.accepted) === route.resourceId) p.open.set(c.accepted, route.resourceId)
  return who
}

/** Relay start for a client the protocol serves itself (`Protocol.serves`): the session takes the client socket. */
const startServed = (p: ListenerState, c: Connection, session: ServedSession): void => {
  const { accepted, identified } = c
  const client = identified!.client
  if (client.destroyed) {
    p.handshaking.delete(c)
    session.destroy()
    finish(p, accepted, client.bytesRead, 0)
    return
  }
  const route = c.route!
  const who = relayStarts(p, c, route)
  session.start(p.onRelayClosed, { accepted, route, who, started: c.started, watch: undefined })
}

export const startRelay = (p: ListenerState, c: Connection): void => {
  if (c.session !== undefined) {
    startServed(p, c, c.session)
    return
  }
  const { accepted, identified, target } = c
  const backend = c.backend!
  const route = c.route!
  const client = identified === undefined ? accepted : identified.client
  if (client.destroyed || backend.destroyed) {
    closedEarly(p, c, client, backend)
    return
  }
  const who = relayStarts(p, c, route)
  // A fixed route's connection has nothing to watch (ListenerState.relayOnly), and no Identified of its own.
  const watch = identified === undefined ? undefined : p.protocol.relaying?.(identified, backend, target)
  // Once the handshake is done only the relay reads a plain TCP socket (through `clientData` when the watcher has
  // one), unless a watcher still listens to its `data`: those go to the shared buffer.
  const clientShared =
    client === accepted && client.listenerCount("data") === 0 && readIntoShared(client, watch?.clientData)
  if (backend.listenerCount("data") === 0) readIntoShared(backend)
  if (p.clientRelayOnly && client === accepted && !clientShared && !p.sharedReadsUnavailable) {
    p.sharedReadsUnavailable = true
    p.log.debug("client sockets read into a new buffer each (this Node has no user-buffer reads for them)", {
      listener: p.name,
      node: process.version
    })
  }
  relay(
    client,
    backend,
    p.onRelayClosed,
    p.relayOptions,
    { accepted, route, who, started: c.started, watch },
    watch?.clientData
  )
}
