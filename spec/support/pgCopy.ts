// COPY both ways through a `pg` client: a few MB of random lines in with COPY FROM STDIN, read back with COPY TO STDOUT.
import { randomBytes } from "node:crypto"
import { pipeline } from "node:stream/promises"
import type pg from "pg"
import { from as copyFrom, to as copyTo } from "pg-copy-streams"

/** Fills `table` (created if needed, emptied first) with ≈ 3.9 MB and reads it back: what went in, what came out. */
export const copyRoundTrip = async (c: pg.Client, table: string): Promise<{ sent: Buffer; back: Buffer }> => {
  await c.query(`create table if not exists ${table} (line text)`)
  await c.query(`truncate ${table}`)
  const lines = Array.from({ length: 40_000 }, () => randomBytes(48).toString("hex"))
  const sent = Buffer.from(`${lines.join("\n")}\n`)
  await pipeline(
    (async function* () {
      for (let i = 0; i < sent.length; i += 65536) yield sent.subarray(i, i + 65536)
    })(),
    c.query(copyFrom(`copy ${table} from stdin`))
  )
  const out: Array<Buffer> = []
  await pipeline(c.query(copyTo(`copy ${table} to stdout`)), async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) out.push(chunk)
  })
  return { sent, back: Buffer.concat(out) }
}
