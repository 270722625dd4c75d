// The package subpath `polyproxy/resolvers/redis`: the shipped Redis resolver, for a program that builds its own
// Resolver layer (e.g. Redis in front of a fallback). Its own entry so that importing `polyproxy` never loads ioredis.
export {
  defaultKey,
  layer,
  makeRedisResolver as make,
  type RedisResolverOptions,
  type RedisResolverShape
} from "../services/resolvers/RedisResolver.ts"
