// Generic TCP: every connection goes to one configured resource. Nothing is read from the client before the relay,
// and a refusal is a plain close, since raw TCP has no error message to send.

import * as Effect from "effect/Effect"
import type { Protocol } from "./Protocol.ts"
import type { ProtocolContext } from "./ProtocolContext.ts"

export const tcpProtocol = (ctx: ProtocolContext): Protocol => ({
  name: ctx.name,
  readsHandshake: false,
  identify: (conn) => Effect.succeed({ resourceId: ctx.listener.route!, client: conn.client }),
  refuse: (client) => {
    // Drop what the client sent and close our side; the listener destroys the socket if the client lingers.
    client.resume()
    client.end()
  }
})
