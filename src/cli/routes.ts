// `polyproxy routes [FILE]`: the routes the configured resolver can list, one "id<TAB>endpoint" line each, sorted.
// static: the file's `routes`. redis: the whole hash (HGETALL), within resolver.timeout. http: a route service answers
// one id at a time and has nothing to list, so the command says so and exits 2 (the config asks what it cannot do).
import type { Config } from "../config/Config.ts"
import { formatEndpoint } from "../domain/Endpoint.ts"
import { ResolveError } from "../domain/ResolveError.ts"

export interface RoutesOutput {
  readonly out: (line: string) => void
  readonly err: (line: string) => void
}

/** Lists the routes; resolves with the exit code (0 listed, 1 the store could not be read, 2 cannot be listed). */
export const listRoutes = async (config: Config, file: string, io: RoutesOutput): Promise<number> => {
  const r = config.resolver
  switch (r.type) {
    case "static": {
      const ids = Object.keys(config.routes).sort()
      for (const id of ids) io.out(`${id}\t${config.routes[id]!.endpoint}`)
      if (ids.length === 0) io.err(`no static routes in ${file}`)
      return 0
    }
    case "http": {
      const u = new URL(r.url)
      io.err(
        `the http resolver (${u.protocol}//${u.host}${u.pathname}) answers one resource id at a time and cannot list its routes; list them in the route service itself`
      )
      return 2
    }
    case "redis":
      return listRedis(r, io)
  }
}

const listRedis = async (r: Extract<Config["resolver"], { type: "redis" }>, io: RoutesOutput): Promise<number> => {
  // Loaded here: the CLI's other commands never pay for ioredis.
  const [{ Redis }, { parseRouteValue, redactUrl }] = await Promise.all([
    import("ioredis"),
    import("../services/resolvers/RedisResolver.ts")
  ])
  const where = `redis ${redactUrl(r.url)} hash ${r.key}`
  const ms = Math.round(r.timeout * 1000)
  const client = new Redis(r.url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: ms,
    commandTimeout: ms
  })
  // ioredis reports why a connection failed (ECONNREFUSED, a TLS error) here; connect() only says it closed.
  let cause: string | undefined
  client.on("error", (e: Error) => {
    cause ??= e.message
  })
  let hash: Record<string, string>
  try {
    await client.connect()
    hash = await client.hgetall(r.key)
  } catch (e) {
    io.err(`cannot list the routes in ${where}: ${cause ?? (e as Error).message}`)
    return 1
  } finally {
    client.disconnect()
  }
  const fields = Object.keys(hash).sort()
  for (const field of fields) {
    const route = parseRouteValue(field, field, hash[field]!)
    // A cold, suspended or unreadable entry is listed with what a client would get for it.
    io.out(
      route instanceof ResolveError
        ? `${field}\t-\t${route.code}: ${route.message}`
        : `${field}\t${formatEndpoint(route.endpoint)}`
    )
  }
  if (fields.length === 0) io.err(`no routes in ${where}`)
  return 0
}
