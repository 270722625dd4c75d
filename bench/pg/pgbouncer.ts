// PgBouncer as a baseline: session or transaction mode, its own ini and userlist in a temp dir, on a free 127.0.0.1
// port; with `processes` above 1, that many PgBouncers sharing the port (`so_reuseport`, the kernel spreading the
// clients), each with its own pools: how PgBouncer, one thread by design, is run on more than one core.
// PgBouncer refuses to run as root, so (like PostgreSQL in spec/support/backends) it is spawned directly with the
// postgres account's uid/gid: the child's pid is PgBouncer itself, which the CPU accounting needs.
import { join } from "node:path"
import {
  type LaunchSpec,
  launch,
  launchAt,
  makeTempDir,
  removeTempDir,
  unprivilegedAccount,
  writeOwnedFile
} from "../../spec/support/backends/local.ts"
import { versionOf } from "../support/process.ts"

export interface PgBouncer {
  readonly host: string
  readonly port: number
  readonly pid: number
  /** Every process's (`pid` first). */
  readonly pids: readonly number[]
  readonly version: string
  readonly settings: Readonly<Record<string, string | number>>
  readonly stop: () => Promise<void>
}

export interface PgBouncerOptions {
  /** The PostgreSQL server behind it. */
  readonly backendHost: string
  readonly backendPort: number
  readonly database: string
  readonly user: string
  readonly password: string
  /** Server connections per (database, user); must cover the largest client count in session mode. */
  readonly poolSize: number
  readonly maxClientConn: number
  /** Default session. */
  readonly poolMode?: "session" | "transaction"
  /**
   * Look client secrets up through this login (`auth_user`, the default `auth_query` on pg_shadow: a superuser), as
   * polyproxy's pooled routes do, instead of the userlist holding `user`'s password: the userlist then holds only this
   * login's, and PgBouncer logs in to the server with SCRAM keys taken from the client's proof (pass-through).
   */
  readonly authUser?: { readonly user: string; readonly password: string }
  /** PgBouncers on the one port (so_reuseport), each with `poolSize` per pool. Default 1. */
  readonly processes?: number
}

const quote = (s: string): string => `"${s.replaceAll('"', '""')}"`

export const startPgBouncer = async (opts: PgBouncerOptions): Promise<PgBouncer> => {
  const account = unprivilegedAccount("postgres")
  const dir = makeTempDir("pgbouncer", account)
  const processes = opts.processes ?? 1
  const settings = {
    pool_mode: opts.poolMode ?? "session",
    default_pool_size: opts.poolSize,
    max_client_conn: opts.maxClientConn,
    // SCRAM both ways: clients authenticate to PgBouncer, PgBouncer to PostgreSQL with the userlist's password.
    auth_type: "scram-sha-256",
    // The same work as the other variants: no TLS on either side (libpq's default would be "prefer").
    server_tls_sslmode: "disable",
    client_tls_sslmode: "disable",
    // Idle server connections go quickly, so that the next variant starts against a quiet PostgreSQL.
    server_idle_timeout: 1,
    log_connections: 0,
    log_disconnections: 0,
    stats_period: 3600,
    ...(opts.authUser === undefined ? {} : { auth_user: opts.authUser.user }),
    ...(processes > 1 ? { so_reuseport: 1 } : {})
  }
  try {
    const version = versionOf("pgbouncer", ["--version"])
    const login = opts.authUser ?? opts
    writeOwnedFile(join(dir, "userlist.txt"), `${quote(login.user)} ${quote(login.password)}\n`, 0o600, account)
    const spec = (port: number): LaunchSpec => {
      const ini = [
        "[databases]",
        `${opts.database} = host=${opts.backendHost} port=${opts.backendPort} dbname=${opts.database}`,
        "",
        "[pgbouncer]",
        "listen_addr = 127.0.0.1",
        `listen_port = ${port}`,
        // No unix socket: everything goes over 127.0.0.1 TCP, like the other variants.
        "unix_socket_dir =",
        `auth_file = ${join(dir, "userlist.txt")}`,
        ...Object.entries(settings).map(([k, v]) => `${k} = ${v}`),
        ""
      ].join("\n")
      writeOwnedFile(join(dir, "pgbouncer.ini"), ini, 0o600, account)
      return {
        name: "pgbouncer",
        file: "pgbouncer",
        args: [join(dir, "pgbouncer.ini")],
        account,
        cwd: dir,
        env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/bin", HOME: dir, LANG: "C.UTF-8" },
        ready: /process up:/,
        portTaken: /Address already in use|bind\(\) failed/,
        // SIGTERM is PgBouncer's immediate shutdown (SIGINT would wait for clients).
        stopSignal: "SIGTERM",
        exitSignal: "SIGKILL"
      }
    }
    const servers = [await launch(spec)]
    const port = servers[0]!.port
    try {
      while (servers.length < processes) servers.push(await launchAt(spec(port), port))
    } catch (error) {
      for (const s of servers) await s.kill()
      throw error
    }
    let stopped: Promise<void> | undefined
    return {
      host: "127.0.0.1",
      port,
      pid: servers[0]!.child.pid!,
      pids: servers.map((s) => s.child.pid!),
      version,
      settings,
      stop: () =>
        (stopped ??= (async () => {
          for (const s of servers) await s.kill()
          removeTempDir(dir)
        })())
    }
  } catch (error) {
    removeTempDir(dir)
    throw error
  }
}
