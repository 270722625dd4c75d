// A superuser session on a spec's PostgreSQL, for the setup SQL (roles, functions) and the checks a spec reads back.
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
