// The handshake fiber: identify → resolve → vet → admit → connect → replay for a connection one of whose phases may
// wait (a protocol that reads and answers, a route not cached yet, a cold backend, a half-open breaker). A short
// fiber that ends once the relay can start; its exit goes to relay start or to the close phase.
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { proxyError } from "../domain/ProxyError.ts"
import type { Identified } from "../listeners/Protocol.ts"
import { admitResource } from "./admit.ts"
import type { Connection } from "./Connection.ts"
import { abandon, refuse, withResource } from "./close.ts"
import { connect } from "./connect.ts"
import { identified, identify, identifyNext } from "./identify.ts"
import type { ListenerState } from "./ListenerState.ts"
import { startRelay } from "./relay.ts"
import { replay, replayNow } from "./replay.ts"
import { resolve, resolvedNow } from "./resolve.ts"
import { serve } from "./serve.ts"

/** `peeked`: identify's answer already read on the fiber-free path, whose `next` is still to run. */
const handshake = Effect.fnUntraced(function* (p: ListenerState, c: Connection, peeked: Identified | undefined) {
  const first = peeked ?? (yield* identify(p, c))
  const found = first.next === undefined ? first : yield* identifyNext(p, first)
  identified(c, found)
  const resourceId = found.resourceId
  if (found.target === undefined) {
    const limited = admitResource(p, c.accepted, resourceId)
    if (limited !== undefined) return yield* withResource(limited, resourceId)
  }
  return yield* Effect.mapError(toBackend(p, c), (e) => (e.resourceId === undefined ? withResource(e, resourceId) : e))
})

/** resolve, vet, connect and replay of an identified connection (or the protocol's own rest of the handshake). */
const toBackend = Effect.fnUntraced(function* (p: ListenerState, c: Connection) {
  const found = c.identified!
  const { route, target } = resolvedNow(p, found) ?? (yield* resolve(p, found.resourceId, c.whoNow()))
  c.route = route
  c.target = target
  const served = p.protocol.serves?.(found, route, target, c.whoNow())
  if (served !== undefined) {
    c.session = yield* serve(p, served)
    return
  }
  const dialed = yield* connect(p, found.resourceId, route, target)
  const replayOf = p.protocol.replay
  c.backend = replayOf === undefined ? replayNow(c, dialed) : yield* replay(p, c, replayOf, dialed)
})

export const runHandshake = (p: ListenerState, c: Connection, peeked?: Identified): void => {
  const fiber = p.runFork(handshake(p, c, peeked))
  c.fiber = fiber
  fiber.addObserver((exit) => {
    if (Exit.isSuccess(exit)) return startRelay(p, c)
    const reason = exit.cause.reasons[0]
    if (reason?._tag === "Fail") refuse(p, c, reason.error)
    else if (reason?._tag === "Die") {
      refuse(p, c, proxyError("INTERNAL", "internal", String(reason.defect), { cause: reason.defect }))
    } else abandon(p, c) // Interrupted (shutdown): no answer is owed.
  })
}
