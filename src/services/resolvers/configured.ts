// The Resolver layer a config file names: its `routes` (static, the embedded default), a Redis hash, or an HTTP route
// service. The Redis and HTTP resolvers are loaded only when named.
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { Config } from "../../config/Config.ts"
import { Resolver } from "../Resolver.ts"

/** The resolver from the config file's `routes`: the embedded default. */
export const staticResolver = (config: Config): Layer.Layer<Resolver> => Resolver.layerStatic(config.routes)

/** The resolver the config's `resolver` section names (static when absent). */
export const configuredResolver = (config: Config): Layer.Layer<Resolver, unknown> => {
  const r = config.resolver
  switch (r?.type) {
    case "redis":
      // Loaded on demand: ioredis is not worth its memory in every worker of a proxy that never talks to Redis.
      return Layer.unwrap(
        Effect.map(
          Effect.promise(() => import("./RedisResolver.ts")),
          (m) => m.layer({ url: r.url, key: r.key, commandTimeout: r.timeout })
        )
      )
    case "http":
      return Layer.unwrap(
        Effect.map(
          Effect.promise(() => import("./HttpResolver.ts")),
          (m) =>
            m.layer({
              url: r.url,
              token: r.token,
              timeout: r.timeout,
              retries: r.retries,
              failureThreshold: r.failureThreshold,
              cooldown: r.cooldown,
              wakeUrl: r.wakeUrl
            })
        )
      )
    default:
      return staticResolver(config)
  }
}
