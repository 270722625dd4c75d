import { join } from "node:path"
import { launch, makeTempDir, removeTempDir, writeOwnedFile } from "./local.ts"
import { backendProvider } from "./provider.ts"

export interface RedisOptions {
  /** Sets `requirepass`: clients must AUTH with it (as the default user). */
  readonly password?: string
}

export interface RedisServer {
  readonly host: string
  readonly port: number
  readonly password?: string
  /** redis://[:password@]host:port */
  readonly url: string
  readonly stop: () => Promise<void>
}

export const startRedis = async (opts: RedisOptions = {}): Promise<RedisServer> =>
  (await backendProvider()) === "containers" ? startContainer(opts.password) : startLocal(opts.password)

const redisServer = (
  host: string,
  port: number,
  password: string | undefined,
  stop: () => Promise<void>
): RedisServer => {
  const auth = password === undefined ? "" : `:${encodeURIComponent(password)}@`
  return {
    host,
    port,
    ...(password === undefined ? {} : { password }),
    url: `redis://${auth}${host}:${port}`,
    stop
  }
}

// Redis' config syntax takes double-quoted strings with C-style escapes.
const quoted = (value: string): string => `"${value.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`

const startLocal = async (password: string | undefined): Promise<RedisServer> => {
  const dir = makeTempDir("redis")
  try {
    const server = await launch((port) => {
      const conf = join(dir, "redis.conf")
      writeOwnedFile(
        conf,
        [
          "bind 127.0.0.1",
          `port ${port}`,
          `dir ${quoted(dir)}`,
          // Nothing is worth keeping: no RDB snapshots, no AOF.
          'save ""',
          "appendonly no",
          "daemonize no",
          'logfile ""',
          ...(password === undefined ? [] : [`requirepass ${quoted(password)}`]),
          ""
        ].join("\n"),
        0o600
      )
      return {
        name: "redis-server",
        file: "redis-server",
        args: [conf],
        cwd: dir,
        ready: /Ready to accept connections/,
        portTaken: /Address already in use/,
        stopSignal: "SIGTERM"
      }
    })
    let stopped: Promise<void> | undefined
    return redisServer(
      "127.0.0.1",
      server.port,
      password,
      () =>
        (stopped ??= (async () => {
          await server.kill()
          removeTempDir(dir)
        })())
    )
  } catch (error) {
    removeTempDir(dir)
    throw error
  }
}

const startContainer = async (password: string | undefined): Promise<RedisServer> => {
  const { GenericContainer, Wait } = await import("testcontainers")
  const started = await new GenericContainer("redis:7")
    .withExposedPorts(6379)
    .withCommand([
      "redis-server",
      "--save",
      "",
      "--appendonly",
      "no",
      ...(password === undefined ? [] : ["--requirepass", password])
    ])
    .withWaitStrategy(Wait.forLogMessage(/Ready to accept connections/))
    .start()
  return redisServer(started.getHost(), started.getMappedPort(6379), password, async () => {
    await started.stop()
  })
}
