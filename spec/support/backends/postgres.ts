import { existsSync, readdirSync } from "node:fs"
import { join } from "node:path"
import pg from "pg"
import { type Certs, makeCerts } from "../certs.ts"
import { launch, makeTempDir, randomSecret, removeTempDir, run, unprivilegedAccount, writeOwnedFile } from "./local.ts"
import { backendProvider } from "./provider.ts"

export interface PostgresOptions {
  /** Serve TLS with `certs.server` (clients may still connect in clear unless `requireTls`). */
  readonly tls?: boolean
  /** Default ["appdb"]; every database is owned by `user`. */
  readonly databases?: readonly string[]
  /** Only `hostssl` lines in pg_hba.conf: a cleartext login is refused. Implies `tls`. */
  readonly requireTls?: boolean
  /** pg_hba.conf lines read before the scram-sha-256 ones, e.g. "host all some_role 127.0.0.1/32 trust" (or md5). */
  readonly hba?: readonly string[]
  /** max_connections (default 300: specs open 100+ concurrent sessions through the proxy). */
  readonly maxConnections?: number
}

export interface PostgresServer {
  readonly host: string
  readonly port: number
  readonly superuser: "postgres"
  readonly password: string
  readonly user: "app"
  readonly userPassword: string
  readonly databases: readonly string[]
  readonly certs?: Certs
  readonly stop: () => Promise<void>
}

interface Setup {
  readonly tls: boolean
  readonly requireTls: boolean
  readonly hba: readonly string[]
  readonly databases: readonly string[]
  readonly password: string
  readonly userPassword: string
  readonly certs: Certs | undefined
  readonly maxConnections: number
}

export const startPostgres = async (opts: PostgresOptions = {}): Promise<PostgresServer> => {
  const requireTls = opts.requireTls ?? false
  const tls = (opts.tls ?? false) || requireTls
  const setup: Setup = {
    tls,
    requireTls,
    hba: opts.hba ?? [],
    databases: opts.databases ?? ["appdb"],
    password: randomSecret(),
    userPassword: randomSecret(),
    certs: tls ? await makeCerts() : undefined,
    maxConnections: opts.maxConnections ?? 300
  }
  return (await backendProvider()) === "containers" ? startContainer(setup) : startLocal(setup)
}

const ident = (name: string): string => `"${name.replaceAll('"', '""')}"`
const literal = (value: string): string => `'${value.replaceAll("'", "''")}'`

const setupSql = (s: Setup): string[] => [
  `CREATE ROLE app LOGIN PASSWORD ${literal(s.userPassword)}`,
  ...s.databases.map((db) => `CREATE DATABASE ${ident(db)} OWNER app`)
]

// Inside a container only the image's own init scripts use the unix socket, and they log in without a password.
const hbaConf = (s: Setup, socketAuth: "scram-sha-256" | "trust"): string => {
  const host = s.requireTls ? "hostssl" : "host"
  return [
    `local all all ${socketAuth}`,
    ...s.hba,
    `${host} all all 127.0.0.1/32 scram-sha-256`,
    `${host} all all ::1/128 scram-sha-256`,
    // Containers see the host through a bridge, never from loopback.
    `${host} all all 0.0.0.0/0 scram-sha-256`,
    `${host} all all ::/0 scram-sha-256`,
    ""
  ].join("\n")
}

/** Debian keeps the server binaries off PATH, one directory per major version; prefer the 15 the specs target. */
const pgBinDir = (): string | undefined => {
  const debianRoot = "/usr/lib/postgresql"
  let versions: string[] = []
  try {
    versions = readdirSync(debianRoot).sort((a, b) => Number(b) - Number(a))
  } catch {}
  const candidates = [process.env.PG_BINDIR, ...["15", ...versions].map((v) => join(debianRoot, v, "bin"))]
  return candidates.find((dir) => dir !== undefined && existsSync(join(dir, "postgres")))
}

const startLocal = async (s: Setup): Promise<PostgresServer> => {
  const bin = pgBinDir()
  const exe = (name: string): string => (bin ? join(bin, name) : name)
  // PostgreSQL refuses to run as root; as anyone else it runs as that user.
  const account = unprivilegedAccount("postgres")
  const dir = makeTempDir("pg", account)
  const data = join(dir, "data")
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir, LANG: "C.UTF-8", LC_ALL: "C.UTF-8" }
  try {
    writeOwnedFile(join(dir, "pw"), `${s.password}\n`, 0o600, account)
    await run(
      exe("initdb"),
      [
        "-D",
        data,
        "-U",
        "postgres",
        `--pwfile=${join(dir, "pw")}`,
        "--auth=scram-sha-256",
        "--encoding=UTF8",
        "--locale=C.UTF-8",
        "--no-sync",
        "--no-instructions"
      ],
      { account, env }
    )
    writeOwnedFile(join(data, "pg_hba.conf"), hbaConf(s, "scram-sha-256"), 0o600, account)
    const tlsArgs: string[] = []
    if (s.certs) {
      writeOwnedFile(join(dir, "server.crt"), s.certs.server.cert, 0o644, account)
      // PostgreSQL refuses a key that is group- or world-readable.
      writeOwnedFile(join(dir, "server.key"), s.certs.server.key, 0o600, account)
      tlsArgs.push("-c", "ssl=on", "-c", `ssl_cert_file=${join(dir, "server.crt")}`)
      tlsArgs.push("-c", `ssl_key_file=${join(dir, "server.key")}`)
    }
    const server = await launch((port) => ({
      name: "postgres",
      file: exe("postgres"),
      args: [
        "-D",
        data,
        "-p",
        String(port),
        "-k",
        dir,
        "-c",
        "listen_addresses=127.0.0.1",
        // Throwaway data: durability only costs time.
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        // The readiness and port-clash patterns below are matched against English messages.
        "-c",
        "lc_messages=C",
        // Specs open 100+ concurrent sessions through the proxy (Postgres' default is 100, 3 kept for superusers).
        "-c",
        `max_connections=${s.maxConnections}`,
        ...tlsArgs
      ],
      account,
      cwd: dir,
      env,
      ready: /database system is ready to accept connections/,
      portTaken: /could not bind IPv4 address|Address already in use|could not create any TCP\/IP sockets/,
      // SIGQUIT is immediate shutdown; SIGTERM would wait for every client to disconnect.
      stopSignal: "SIGQUIT",
      // SIGKILL would leave the postmaster's shared memory segments behind in /dev/shm and SysV IPC.
      exitSignal: "SIGQUIT"
    }))
    let stopped: Promise<void> | undefined
    const stop = (): Promise<void> =>
      (stopped ??= (async () => {
        await server.kill()
        removeTempDir(dir)
      })())
    try {
      // The unix socket in the temp dir works whether or not TCP demands TLS.
      const client = new pg.Client({
        host: dir,
        port: server.port,
        user: "postgres",
        password: s.password,
        database: "postgres"
      })
      await client.connect()
      try {
        for (const sql of setupSql(s)) await client.query(sql)
      } finally {
        await client.end()
      }
    } catch (error) {
      await stop()
      throw error
    }
    return {
      host: "127.0.0.1",
      port: server.port,
      superuser: "postgres",
      password: s.password,
      user: "app",
      userPassword: s.userPassword,
      databases: s.databases,
      ...(s.certs ? { certs: s.certs } : {}),
      stop
    }
  } catch (error) {
    removeTempDir(dir)
    throw error
  }
}

const startContainer = async (s: Setup): Promise<PostgresServer> => {
  const { GenericContainer, Wait } = await import("testcontainers")
  const files = [
    { content: hbaConf(s, "trust"), target: "/etc/polyproxy/pg_hba.conf", mode: 0o644 },
    // psql runs each statement of an init script on its own, which CREATE DATABASE needs.
    {
      content: setupSql(s).join(";\n") + ";\n",
      target: "/docker-entrypoint-initdb.d/10-polyproxy.sql",
      mode: 0o644
    }
  ]
  const args = ["postgres", "-c", "hba_file=/etc/polyproxy/pg_hba.conf", "-c", "fsync=off"]
  args.push("-c", `max_connections=${s.maxConnections}`)
  let container = new GenericContainer("postgres:15")
    .withEnvironment({ POSTGRES_PASSWORD: s.password, POSTGRES_USER: "postgres" })
    .withExposedPorts(5432)
    .withWaitStrategy(
      // The image starts a temporary server for its init scripts first, hence the second "ready".
      Wait.forAll([Wait.forLogMessage(/database system is ready to accept connections/, 2), Wait.forListeningPorts()])
    )
  if (s.certs) {
    files.push(
      { content: s.certs.server.cert, target: "/etc/polyproxy/server.crt", mode: 0o644 },
      { content: s.certs.server.key, target: "/etc/polyproxy/server.key.in", mode: 0o644 }
    )
    args.push("-c", "ssl=on", "-c", "ssl_cert_file=/etc/polyproxy/server.crt")
    args.push("-c", "ssl_key_file=/var/lib/postgresql/server.key")
    // Copied files belong to root, but the key must belong to postgres with mode 0600.
    container = container.withEntrypoint([
      "sh",
      "-c",
      'install -o postgres -g postgres -m 600 /etc/polyproxy/server.key.in /var/lib/postgresql/server.key && exec docker-entrypoint.sh "$@"',
      "sh"
    ])
  }
  const started = await container.withCopyContentToContainer(files).withCommand(args).start()
  return {
    host: started.getHost(),
    port: started.getMappedPort(5432),
    superuser: "postgres",
    password: s.password,
    user: "app",
    userPassword: s.userPassword,
    databases: s.databases,
    ...(s.certs ? { certs: s.certs } : {}),
    stop: async () => {
      await started.stop()
    }
  }
}
