// Starts one configured listener, by name: its type's manifest, its context (TLS files loaded once), and metrics
// labelled with its name, type and protocol.
import * as fs from "node:fs"
import * as Effect from "effect/Effect"
import type { Config, ListenerName } from "../config/Config.ts"
import { proxyError } from "../domain/ProxyError.ts"
import { Metrics, type MetricsShape } from "../services/Metrics.ts"
import type { Admission } from "./Admission.ts"
import type { ProtocolContext } from "./ProtocolContext.ts"
import { ListenerRegistry } from "./registry.ts"
import { loadServerTls } from "./tls.ts"

/** The context a listener gets for one configured listener, its TLS files loaded once. */
export const contextFor = Effect.fnUntraced(function* (
  name: ListenerName,
  config: Config,
  shared: ProtocolContext["shared"]
) {
  const listener = config.listeners[name]!
  const tlsFiles = listener.tls ?? config.tls
  const upstream = listener.upstreamTls
  const upstreamCa = upstream?.ca
  return {
    name,
    type: listener.type,
    listener,
    config,
    tls: tlsFiles ? yield* loadServerTls(tlsFiles, `listeners.${name}.tls`, listener.http?.certificates) : undefined,
    upstreamTls: upstream && {
      rejectUnauthorized: upstream.rejectUnauthorized,
      minVersion: upstream.minVersion,
      ca:
        upstreamCa === undefined
          ? undefined
          : yield* Effect.try({
              try: () => fs.readFileSync(upstreamCa),
              catch: (e) =>
                proxyError("INTERNAL", "internal", `listeners.${name}.upstreamTls.ca: ${(e as Error).message}`)
            })
    },
    shared
  } satisfies ProtocolContext
})

/**
 * Metrics whose listener series carry `type` too, when the name is not the type (`pg-alt`, not `postgres`): a listener
 * (a program's own included) labels its series by name and protocol only, and short-form listeners keep the series
 * they always had.
 */
const typed = (metrics: MetricsShape, name: string, type: string): MetricsShape =>
  name === type ? metrics : { ...metrics, listener: (n, protocol) => metrics.listener(n, protocol, type) }

/** Starts the listener `name` of `config` with its type's manifest; also returns the TLS it serves (for reload). */
export const startNamed = Effect.fnUntraced(function* (
  name: ListenerName,
  config: Config,
  shared: ProtocolContext["shared"],
  admission: Admission
) {
  const type = config.listeners[name]!.type
  const manifest = (yield* ListenerRegistry).find(type)
  if (manifest === undefined) {
    return yield* proxyError(
      "INTERNAL",
      "internal",
      `listeners.${name}: no listener type "${type}" in this proxy (a program's own type goes in runProxy's options.listeners)`
    )
  }
  const ctx = yield* contextFor(name, config, shared)
  const metrics = typed(yield* Metrics, name, type)
  const running = yield* manifest.start(ctx, admission).pipe(Effect.provideService(Metrics, metrics))
  return { running, tls: ctx.tls }
})
