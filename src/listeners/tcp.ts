// Generic TCP. `route` picks the resource: a fixed id (nothing is read before the relay), `sni` (the TLS
// ClientHello's server name, TLS passed through) or `{ firstBytes }` (a user extractor). Whatever identify reads
// reaches the backend unchanged. Raw TCP has no error message to send, so a refusal is a close (a TLS alert for SNI).

import * as Effect from "effect/Effect"
import type { ProxyError } from "../domain/ProxyError.ts"
import type { Protocol } from "./Protocol.ts"
import type { ProtocolContext } from "./ProtocolContext.ts"
import { type FirstBytesExtractor, firstBytesIdentify, loadExtractor } from "./tcp/firstBytes.ts"
import { sniIdentify, sniIdentifyNow, sniRefuse } from "./tcp/sni.ts"

const closeRefuse: Protocol["refuse"] = (client) => {
  // Drop what the client sent and close our side; the listener destroys the socket if the client lingers.
  client.resume()
  client.end()
}

/**
 * The tcp protocol for `ctx`. `extractor` routes every connection by first bytes whatever `route` says (a program
 * that embeds polyproxy passes its own); a `route: { firstBytes }` of the config needs it loaded first
 * (`loadTcpProtocol`).
 */
export const makeTcpProtocol = (ctx: ProtocolContext, extractor?: FirstBytesExtractor): Protocol => {
  const route = ctx.listener.route
  const defaultRoute = ctx.listener.defaultRoute
  if (extractor !== undefined) {
    return {
      name: ctx.name,
      readsHandshake: true,
      identify: firstBytesIdentify(extractor, defaultRoute),
      refuse: closeRefuse
    }
  }
  if (route === "sni")
    return {
      name: ctx.name,
      readsHandshake: true,
      identify: sniIdentify(defaultRoute),
      identifyNow: sniIdentifyNow(defaultRoute),
      refuse: sniRefuse
    }
  if (route === undefined) throw new Error(`listeners.${ctx.name}.route is required`)
  if (typeof route !== "string") {
    throw new Error(`listeners.${ctx.name}.route: a firstBytes extractor must be loaded first (loadTcpProtocol)`)
  }
  return {
    name: ctx.name,
    readsHandshake: false,
    fixedRoute: route,
    identify: (conn) => Effect.succeed({ resourceId: route, client: conn.client }),
    refuse: closeRefuse
  }
}

/** At startup: imports the config's first-bytes extractor when there is one; a load failure names the key and why. */
export const loadTcpProtocol = (
  ctx: ProtocolContext,
  extractor?: FirstBytesExtractor
): Effect.Effect<Protocol, ProxyError> => {
  const route = ctx.listener.route
  if (extractor !== undefined || route === undefined || typeof route === "string") {
    return Effect.sync(() => makeTcpProtocol(ctx, extractor))
  }
  return Effect.map(loadExtractor(route.firstBytes, `listeners.${ctx.name}.route.firstBytes`), (loaded) =>
    makeTcpProtocol(ctx, loaded)
  )
}
