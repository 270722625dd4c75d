// A client the protocol serves itself (`Protocol.serves`: Postgres transaction pooling): its rest of the handshake,
// bounded by timeouts.handshake as identify is. Its relay phase is relay.ts's `startServed`.
import * as Effect from "effect/Effect"
import { type ProxyError, proxyError } from "../domain/ProxyError.ts"
import type { ServedSession } from "../listeners/Protocol.ts"
import type { ListenerState } from "./ListenerState.ts"

/** The protocol's rest of the handshake (authentication, a first server login), within timeouts.handshake. */
export const serve = (
  p: ListenerState,
  run: Effect.Effect<ServedSession, ProxyError>
): Effect.Effect<ServedSession, ProxyError> =>
  p.handshakeMs <= 0
    ? run
    : Effect.timeoutOrElse(run, {
        duration: p.handshakeMs,
        orElse: () => {
          const message = `login did not complete within ${p.timeouts.handshake} s`
          return Effect.fail(proxyError("CONNECT_FAILED", "backend", message, { clientMessage: message }))
        }
      })
