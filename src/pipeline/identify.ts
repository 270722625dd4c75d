// identify phase of the byte listeners: a trusted load balancer's PROXY header (accept.ts reads it), then the
// protocol's codec reads just enough to find the routing key; it may answer the client and upgrade to TLS. The
// pipeline bounds the whole phase by timeouts.handshake (a slow-loris, a client that never speaks), in both forms: the
// handshake fiber's `identify`, and `peek` (Protocol.identifyNow) on the fiber-free path. A protocol that logs the
// client in before it names its routing key (MySQL's `USE db` after a login without one) returns `next`: that idle
// wait is bounded by timeouts.idle (`identifyNext`, in the fiber whichever path identified).
import * as Effect from "effect/Effect"
import type { ProxyError } from "../domain/ProxyError.ts"
import type { ConnectionInfo } from "../domain/Route.ts"
import type { Identified } from "../listeners/Protocol.ts"
import { readProxyHeader } from "./accept.ts"
import type { Connection } from "./Connection.ts"
import type { ListenerState } from "./ListenerState.ts"

/** identify for the handshake fiber, within timeouts.handshake. Sets `c.who` when a PROXY header names the client. */
export const identify = (p: ListenerState, c: Connection): Effect.Effect<Identified, ProxyError> => {
  c.who = undefined
  const read =
    p.pp === undefined
      ? p.protocol.identify(c)
      : Effect.flatMap(readProxyHeader(c.accepted, c.peer()), (info) => {
          c.who = info
          return p.protocol.identify(c)
        })
  return p.handshakeMs <= 0 ? read : Effect.timeoutOrElse(read, p.identifyDeadline)
}

/**
 * The rest of identify when the protocol's answer says it is not over (`Identified.next`: the client is logged in and
 * idle until it names its routing key), each step within timeouts.idle instead of timeouts.handshake.
 */
export const identifyNext = (p: ListenerState, found: Identified): Effect.Effect<Identified, ProxyError> => {
  const next = found.next
  if (next === undefined) return Effect.succeed(found)
  const step = p.nextDeadline === undefined ? next : Effect.timeoutOrElse(next, p.nextDeadline)
  return Effect.flatMap(step, (more) => identifyNext(p, more))
}

/** Takes identify's answer: who the client is now (TLS terminated here adds its facts for the Resolver). */
export const identified = (c: Connection, found: Identified): void => {
  c.identified = found
  const info: ConnectionInfo = c.who ?? c.peer()
  c.who =
    found.tlsSubject === undefined && found.sni === undefined
      ? info
      : { ...info, tlsSubject: found.tlsSubject, sni: found.sni }
}

/** What the fiber-free path does with a peek's answer (fast.ts). */
export type Peeked = (c: Connection, found: Identified | undefined, error: ProxyError | undefined) => void

/**
 * identify in the callback form (`Protocol.identifyNow`): `then` gets the answer once, or the handshake timeout;
 * `abandon` (close.ts) cancels it.
 */
export const peek = (p: ListenerState, c: Connection, then: Peeked): void => {
  c.peeking = true
  c.cancelPeek = p.identifyNow!(c.accepted, (found, error) => {
    if (!c.peeking) return
    c.peeking = false
    clearTimeout(c.timer)
    then(c, found, error)
  })
  if (p.handshakeMs > 0 && c.peeking) c.timer = setTimeout(peekTimedOut, p.handshakeMs, c, then)
}

// Shared: the timer gets the connection as its argument, so a peek allocates no closure for it.
function peekTimedOut(c: Connection, then: Peeked) {
  if (!c.peeking) return
  c.peeking = false
  c.cancelPeek?.()
  then(c, undefined, c.p.handshakeTimeout)
}
