import type { AddressInfo, Server } from "node:net"
import { backendProvider } from "./provider.ts"

/**
 * Locally this is CongoDB (in-process, in memory, wire-compatible): no real mongod can be installed here.
 * It has no TLS, no real SCRAM, no unique-index enforcement and no rollback of aborted transactions; specs that
 * depend on those need the "containers" provider (a real mongod).
 */
export interface MongoServer {
  readonly host: string
  readonly port: number
  /** mongodb://host:port/?directConnection=true, no credentials */
  readonly uri: string
  readonly stop: () => Promise<void>
}

export const startMongo = async (): Promise<MongoServer> =>
  (await backendProvider()) === "containers" ? startContainer() : startLocal()

const mongoServer = (host: string, port: number, stop: () => Promise<void>): MongoServer => ({
  host,
  port,
  // A single server, not a replica set: without directConnection the driver would try to discover one.
  uri: `mongodb://${host}:${port}/?directConnection=true`,
  stop
})

const startLocal = async (): Promise<MongoServer> => {
  // Loaded lazily so that specs which never touch Mongo do not pay for CongoDB's dependency tree.
  const { CongoServer } = await import("@push.rocks/smartmongo/dist_ts/congodb/index.js")
  const congo = new CongoServer({ port: 0, host: "127.0.0.1" })
  await congo.start()
  // CongoServer.port echoes the option (0); the bound port is only on its private net.Server.
  const address = (congo as unknown as { server: Server }).server.address() as AddressInfo
  let stopped: Promise<void> | undefined
  return mongoServer("127.0.0.1", address.port, () => (stopped ??= congo.stop()))
}

const startContainer = async (): Promise<MongoServer> => {
  const { GenericContainer, Wait } = await import("testcontainers")
  const started = await new GenericContainer("mongo:7")
    .withExposedPorts(27017)
    .withWaitStrategy(Wait.forAll([Wait.forLogMessage(/waiting for connections/i), Wait.forListeningPorts()]))
    .start()
  return mongoServer(started.getHost(), started.getMappedPort(27017), async () => {
    await started.stop()
  })
}
