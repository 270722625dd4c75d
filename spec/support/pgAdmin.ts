// A superuser session on a spec's PostgreSQL, for the setup SQL (roles, functions) and the checks a spec reads back;
// and the `pg` client options of its app role, for a spec's clients through a proxy or straight to it.
import pg from "pg"
import type { PostgresServer } from "./backends/index.ts"

/** Connected as the superuser to `database`, with each of `setup` run in order; the caller ends it. */
export const superuserClient = async (
  db: PostgresServer,
  database: string,
  setup: ReadonlyArray<string> = []
): Promise<pg.Client> => {
  const client = new pg.Client({ host: db.host, port: db.port, user: db.superuser, password: db.password, database })
  await client.connect()
  try {
    for (const sql of setup) await client.query(sql)
  } catch (e) {
    await client.end()
    throw e
  }
  return client
}

/** `pg` client options for `db`'s app role on `database` at 127.0.0.1:`port` (a proxy's, or `db.port`), TLS off. */
export const appClientConfig = (db: PostgresServer, port: number, database: string): pg.ClientConfig => ({
  host: "127.0.0.1",
  port,
  user: db.user,
  password: db.userPassword,
  database,
  ssl: false
})
