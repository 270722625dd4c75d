// The fiber-free path (issue 11: the handshake fiber was ≈ 16 % of a new tcp connection's CPU): the same phases as
// the handshake fiber, called as callbacks, for a connection none of whose phases has anything to wait for. Taken
// only for a protocol that reads nothing (a fixed route) or only peeks (`identifyNow`: tcp `route: sni`), and only
// when the route is cached and vetted already, not wakeable, its backend's breaker closed and the resource under its
// limit. Anything else (first connection, expired or failed entry, open or half-open breaker, cold start, limit)
// goes through the handshake fiber, which counts and refuses as the fiber does.
import type * as net from "node:net"
import type { ProxyError } from "../domain/ProxyError.ts"
import type { Identified } from "../listeners/Protocol.ts"
import { admitResource } from "./admit.ts"
import type { Connection } from "./Connection.ts"
import { refuse, withResource } from "./close.ts"
import { connectNow, connectTimeoutMs } from "./connect.ts"
import { runHandshake } from "./handshake.ts"
import { identified, peek } from "./identify.ts"
import type { ListenerState } from "./ListenerState.ts"
import { startRelay } from "./relay.ts"
import { replayNow } from "./replay.ts"

/** resolve, vet, admit and connect for `resourceId` now, if nothing would wait; false (nothing done) otherwise. */
export const connectFast = (p: ListenerState, c: Connection, resourceId: string): boolean => {
  // resolve and vet: the cache's answer, vetted when it was resolved (counted as a hit only once used).
  const cached = p.cache.peekNow(resourceId)
  if (cached === undefined) return false
  const { route, target } = cached
  if (route.metadata.wakeable === true) return false
  // admit: a breaker that is not closed may refuse or wants a trial; a resource at its limit is refused: the fiber's.
  const key = p.keyOf(target)
  if (!p.breaker.isClosed(key)) return false
  if (admitResource(p, c.accepted, resourceId) !== undefined) return false
  p.cache.hit(resourceId)
  p.fastConnections++
  c.route = route
  c.target = target
  c.key = key
  const refused = connectNow(c, connectTimeoutMs(p, route))
  // A closed breaker admits (checked above): this is the fiber's refusal, should the breaker ever say otherwise.
  if (refused !== undefined) refuse(p, c, withResource(refused, resourceId))
  return true
}

/** The dial's answer (Connection.connected; the breaker has been told): replay, then relay, or the refusal. */
export const dialedFast = (c: Connection, backend: net.Socket | undefined, error: ProxyError | undefined): void => {
  const p = c.p
  if (backend === undefined) {
    refuse(p, c, withResource(error!, c.route!.resourceId))
    return
  }
  c.backend = replayNow(c, backend)
  startRelay(p, c)
}

/** identify's answer on the fiber-free path: a cached route is dialed at once; anything else goes to the fiber. */
const peeked = (c: Connection, found: Identified | undefined, error: ProxyError | undefined): void => {
  const p = c.p
  if (found === undefined) {
    refuse(p, c, error!)
    return
  }
  // Logged in, not routed yet: the idle wait for its routing key is the fiber's (identifyNext).
  if (found.next !== undefined) {
    runHandshake(p, c, found)
    return
  }
  identified(c, found)
  if (found.target === undefined && connectFast(p, c, found.resourceId)) return
  // The fiber reads and decodes the same bytes again (its own deadline starts now).
  if (found.replay !== undefined) c.accepted.unshift(found.replay)
  runHandshake(p, c)
}

/** A connection accepted: the fiber-free path while it can be taken, else the handshake fiber. */
export const startConnection = (p: ListenerState, c: Connection): void => {
  const fixedRoute = p.fixedRoute
  if (fixedRoute !== undefined) {
    if (connectFast(p, c, fixedRoute)) return
    c.peer()
    runHandshake(p, c)
  } else if (p.identifyNow !== undefined) peek(p, c, peeked)
  else runHandshake(p, c)
}
