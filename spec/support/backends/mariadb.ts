import { rmSync } from "node:fs"
import { userInfo } from "node:os"
import { join } from "node:path"
import { type Certs, makeCerts } from "../certs.ts"
import { launch, makeTempDir, randomSecret, removeTempDir, run } from "./local.ts"
import { backendProvider } from "./provider.ts"

export interface MariaDbOptions {
  /** Serve TLS with `certs.server`; `tlsUser` can only log in over TLS. */
  readonly tls?: boolean
  /** Default ["appdb"]; both users get every privilege on each. */
  readonly databases?: readonly string[]
  /**
   * More statements run as the server's admin once the users and databases exist (CREATE USER, GRANT …), since no
   * spec holds an admin login. Plain statements without the trailing semicolon.
   */
  readonly setup?: readonly string[]
}

/**
 * Both users authenticate with mysql_native_password, the only password plugin MariaDB has in common with MySQL.
 * caching_sha2_password does not exist in MariaDB; that path needs a MySQL 8 container.
 */
export interface MariaDbServer {
  readonly host: string
  readonly port: number
  readonly user: "app"
  readonly password: string
  readonly databases: readonly string[]
  /** Created with REQUIRE SSL: a cleartext login as this user is refused. */
  readonly tlsUser: "app_tls"
  readonly tlsPassword: string
  readonly certs?: Certs
  readonly stop: () => Promise<void>
}

interface Setup {
  readonly databases: readonly string[]
  readonly setup: readonly string[]
  readonly password: string
  readonly tlsPassword: string
  readonly certs: Certs | undefined
}

export const startMariaDb = async (opts: MariaDbOptions = {}): Promise<MariaDbServer> => {
  const setup: Setup = {
    databases: opts.databases ?? ["appdb"],
    setup: opts.setup ?? [],
    password: randomSecret(),
    tlsPassword: randomSecret(),
    certs: opts.tls ? await makeCerts() : undefined
  }
  return (await backendProvider()) === "containers" ? startContainer(setup) : startLocal(setup)
}

const ident = (name: string): string => `\`${name.replaceAll("`", "``")}\``
const literal = (value: string): string => `'${value.replaceAll("\\", "\\\\").replaceAll("'", "''")}'`

const setupSql = (s: Setup): string =>
  [
    ...s.databases.map((db) => `CREATE DATABASE ${ident(db)}`),
    `CREATE USER 'app'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD(${literal(s.password)})`,
    `CREATE USER 'app_tls'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD(${literal(s.tlsPassword)}) REQUIRE SSL`,
    ...s.databases.flatMap((db) => [
      `GRANT ALL PRIVILEGES ON ${ident(db)}.* TO 'app'@'%'`,
      `GRANT ALL PRIVILEGES ON ${ident(db)}.* TO 'app_tls'@'%'`
    ]),
    ...s.setup,
    ""
  ].join(";\n")

const tlsArgs = (certs: { ca: string; cert: string; key: string } | undefined): string[] =>
  certs ? [`--ssl-ca=${certs.ca}`, `--ssl-cert=${certs.cert}`, `--ssl-key=${certs.key}`] : []

const startLocal = async (s: Setup): Promise<MariaDbServer> => {
  const dir = makeTempDir("mariadb")
  const data = join(dir, "data")
  const socket = join(dir, "mysqld.sock")
  const asRoot = process.getuid?.() === 0
  try {
    const installArgs = [
      "--no-defaults",
      `--datadir=${data}`,
      ...(asRoot ? ["--user=root"] : []),
      // Only the OS user running us can become the admin (through the socket): no admin password exists at all.
      "--auth-root-authentication-method=socket",
      "--skip-test-db",
      "--skip-name-resolve"
    ]
    // Seen once while two specs initialised at the same moment: the bootstrap server failed with
    // "Unknown table 'mysql.tmp_user_sys'" and the spec passed when rerun. One more try on an empty data directory.
    try {
      await run("mariadb-install-db", installArgs)
    } catch {
      rmSync(data, { recursive: true, force: true })
      await run("mariadb-install-db", installArgs)
    }
    const server = await launch((port) => ({
      name: "mariadbd",
      file: "mariadbd",
      args: [
        "--no-defaults",
        ...(asRoot ? ["--user=root"] : []),
        `--datadir=${data}`,
        `--port=${port}`,
        "--bind-address=127.0.0.1",
        `--socket=${socket}`,
        `--pid-file=${join(dir, "mariadbd.pid")}`,
        "--skip-name-resolve",
        "--skip-log-bin",
        "--innodb-buffer-pool-size=64M",
        "--innodb-log-file-size=16M",
        // Throwaway data: durability only costs time.
        "--innodb-flush-log-at-trx-commit=0",
        "--innodb-doublewrite=0",
        // The readiness and port-clash patterns below are matched against English messages.
        "--lc-messages=en_US",
        ...tlsArgs(s.certs && { ca: s.certs.ca.certPath, cert: s.certs.server.certPath, key: s.certs.server.keyPath })
      ],
      cwd: dir,
      ready: /ready for connections/,
      portTaken: /Address already in use|Do you already have another (mysqld|mariadbd) server running/,
      stopSignal: "SIGTERM"
    }))
    let stopped: Promise<void> | undefined
    const stop = (): Promise<void> =>
      (stopped ??= (async () => {
        await server.kill()
        removeTempDir(dir)
      })())
    try {
      await run("mariadb", ["--no-defaults", `--socket=${socket}`, `--user=${userInfo().username}`, "--batch"], {
        input: setupSql(s)
      })
    } catch (error) {
      await stop()
      throw error
    }
    return {
      host: "127.0.0.1",
      port: server.port,
      user: "app",
      password: s.password,
      databases: s.databases,
      tlsUser: "app_tls",
      tlsPassword: s.tlsPassword,
      ...(s.certs ? { certs: s.certs } : {}),
      stop
    }
  } catch (error) {
    removeTempDir(dir)
    throw error
  }
}

const startContainer = async (s: Setup): Promise<MariaDbServer> => {
  const { GenericContainer, Wait } = await import("testcontainers")
  const files = [{ content: setupSql(s), target: "/docker-entrypoint-initdb.d/10-polyproxy.sql", mode: 0o644 }]
  if (s.certs) {
    // mariadbd runs as mysql and must read the key; the container is thrown away, so 0644 costs nothing.
    files.push(
      { content: s.certs.ca.cert, target: "/etc/polyproxy/ca.crt", mode: 0o644 },
      { content: s.certs.server.cert, target: "/etc/polyproxy/server.crt", mode: 0o644 },
      { content: s.certs.server.key, target: "/etc/polyproxy/server.key", mode: 0o644 }
    )
  }
  const started = await new GenericContainer("mariadb:10.11")
    .withEnvironment({ MARIADB_ROOT_PASSWORD: randomSecret() })
    .withExposedPorts(3306)
    .withCopyContentToContainer(files)
    .withCommand([
      "--skip-name-resolve",
      "--skip-log-bin",
      "--innodb-flush-log-at-trx-commit=0",
      ...tlsArgs(
        s.certs && { ca: "/etc/polyproxy/ca.crt", cert: "/etc/polyproxy/server.crt", key: "/etc/polyproxy/server.key" }
      )
    ])
    // The image's init server runs with networking off ("port: 0"); only the final one listens on 3306.
    .withWaitStrategy(Wait.forAll([Wait.forLogMessage(/ready for connections.*port: 3306/), Wait.forListeningPorts()]))
    .start()
  return {
    host: started.getHost(),
    port: started.getMappedPort(3306),
    user: "app",
    password: s.password,
    databases: s.databases,
    tlsUser: "app_tls",
    tlsPassword: s.tlsPassword,
    ...(s.certs ? { certs: s.certs } : {}),
    stop: async () => {
      await started.stop()
    }
  }
}
