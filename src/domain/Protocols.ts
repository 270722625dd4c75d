// The protocol label every listener carries in metrics and logs: what the bytes are, as opposed to how the listener
// routes them (a raw `tcp` listener in front of Redis is labelled "redis").

/** The 28 labels, by display name. An object rather than a TS enum: the build only strips types. */
export const ProtocolLabel = {
  PostgreSQL: "postgresql",
  MySQL: "mysql",
  MongoDB: "mongodb",
  Redis: "redis",
  Memcached: "memcached",
  Kafka: "kafka",
  AMQP: "amqp",
  ClickHouse: "clickhouse",
  Cassandra: "cassandra",
  NATS: "nats",
  MSSQL: "mssql",
  Oracle: "oracle",
  Elasticsearch: "elasticsearch",
  MQTT: "mqtt",
  GRPC: "grpc",
  ZooKeeper: "zookeeper",
  Etcd: "etcd",
  Neo4j: "neo4j",
  Couchbase: "couchbase",
  CockroachDB: "cockroachdb",
  TiDB: "tidb",
  Pulsar: "pulsar",
  FTP: "ftp",
  LDAP: "ldap",
  RethinkDB: "rethinkdb",
  HTTP: "http",
  SMTP: "smtp",
  TCP: "tcp"
} as const
export type ProtocolLabel = (typeof ProtocolLabel)[keyof typeof ProtocolLabel]

export interface ProtocolInfo {
  readonly label: ProtocolLabel
  readonly name: string
  /** Its registered port first, then well-known alternates (TLS variants); empty for plain TCP. */
  readonly ports: ReadonlyArray<number>
}

export const protocolTable: ReadonlyArray<ProtocolInfo> = [
  { label: "postgresql", name: "PostgreSQL", ports: [5432] },
  { label: "mysql", name: "MySQL", ports: [3306] },
  { label: "mongodb", name: "MongoDB", ports: [27017] },
  { label: "redis", name: "Redis", ports: [6379] },
  { label: "memcached", name: "Memcached", ports: [11211] },
  { label: "kafka", name: "Kafka", ports: [9092] },
  { label: "amqp", name: "AMQP", ports: [5672, 5671] },
  { label: "clickhouse", name: "ClickHouse", ports: [9000, 9440] },
  { label: "cassandra", name: "Cassandra", ports: [9042] },
  { label: "nats", name: "NATS", ports: [4222] },
  { label: "mssql", name: "MSSQL", ports: [1433] },
  { label: "oracle", name: "Oracle", ports: [1521] },
  { label: "elasticsearch", name: "Elasticsearch", ports: [9200] },
  { label: "mqtt", name: "MQTT", ports: [1883, 8883] },
  { label: "grpc", name: "gRPC", ports: [50051] },
  { label: "zookeeper", name: "ZooKeeper", ports: [2181] },
  { label: "etcd", name: "etcd", ports: [2379] },
  { label: "neo4j", name: "Neo4j", ports: [7687] },
  { label: "couchbase", name: "Couchbase", ports: [11210] },
  { label: "cockroachdb", name: "CockroachDB", ports: [26257] },
  { label: "tidb", name: "TiDB", ports: [4000] },
  { label: "pulsar", name: "Pulsar", ports: [6650] },
  { label: "ftp", name: "FTP", ports: [21] },
  { label: "ldap", name: "LDAP", ports: [389, 636] },
  { label: "rethinkdb", name: "RethinkDB", ports: [28015] },
  { label: "http", name: "HTTP", ports: [80, 443, 8080, 8443] },
  { label: "smtp", name: "SMTP", ports: [25, 465, 587] },
  { label: "tcp", name: "plain TCP", ports: [] }
]

export const protocolLabels: ReadonlyArray<ProtocolLabel> = protocolTable.map((p) => p.label)

const byPort = new Map<number, ProtocolLabel>(protocolTable.flatMap((p) => p.ports.map((port) => [port, p.label])))

/** The protocol registered on `port`, if any. */
export const protocolForPort = (port: number): ProtocolLabel | undefined => byPort.get(port)

export const isProtocolLabel = (v: unknown): v is ProtocolLabel =>
  typeof v === "string" && protocolLabels.includes(v as ProtocolLabel)

/** The label of a protocol listener's own protocol (listener names are config keys, labels are the table's). */
const byListener: Readonly<Record<string, ProtocolLabel>> = {
  postgres: "postgresql",
  mysql: "mysql",
  mongodb: "mongodb",
  smtp: "smtp",
  http: "http"
}

/** A listener's label when its config sets none: its protocol, or for raw TCP the port's, else "tcp". */
export const defaultProtocolLabel = (listener: string, port: number): ProtocolLabel =>
  byListener[listener] ?? protocolForPort(port) ?? "tcp"
