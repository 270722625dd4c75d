// An ioredis client as the Redis specs use it: logs in as `username` when asked to connect, never retries, and is
// kept in `clients` for the spec's afterAll to disconnect.
import { Redis } from "ioredis"

export const redisClient = (clients: Array<Redis>, port: number, username: string, password: string): Redis => {
  const c = new Redis({
    host: "127.0.0.1",
    port,
    username,
    password,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null
  })
  c.on("error", () => {})
  clients.push(c)
  return c
}
