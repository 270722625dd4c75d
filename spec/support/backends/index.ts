export { type Certs, makeCerts, type PemPair } from "../certs.ts"
export { type MariaDbOptions, type MariaDbServer, startMariaDb } from "./mariadb.ts"
export { type MongoServer, startMongo } from "./mongo.ts"
export { type PostgresOptions, type PostgresServer, startPostgres } from "./postgres.ts"
export { type BackendProvider, backendProvider } from "./provider.ts"
export { type RedisOptions, type RedisServer, startRedis } from "./redis.ts"
export {
  type ReceivedMessage,
  type SmtpSink,
  type SmtpSinkOptions,
  type SmtpStage,
  startSmtpSink
} from "./smtp.ts"
