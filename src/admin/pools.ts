// GET /admin/pools: the server-connection pools (PostgreSQL, MySQL), one row per (listener, backend, database,
// user). Each process lists its own (BackendPool `details`); the cluster primary adds the workers' rows of one pool
// up, since every worker keeps a pool of its own for it.
import type { PoolDetail } from "../services/BackendPool.ts"

export interface PoolRow {
  readonly listener: string
  readonly backend: string
  readonly [key: string]: unknown
}

/** One process's pools. */
export const poolRows = (details: ReadonlyArray<PoolDetail>): Array<PoolRow> =>
  details.map((d) => ({ listener: d.owner, backend: d.backend, ...d.detail }))

/** Kept from the first worker's row: the pool's identity and its per-process settings. */
const kept = new Set(["listener", "backend", "database", "user", "mode", "size"])
/** The worst of the workers', not a sum. */
const largest = new Set(["maxWaitMs"])

/**
 * The workers' rows of each pool as one: counts and totals summed, `maxWaitMs` the largest, `size` the per-process
 * setting, `workers` how many workers hold that pool (the backend may see up to size × workers connections).
 */
export const mergePools = (answers: ReadonlyArray<unknown>): Array<PoolRow> => {
  const merged = new Map<string, Record<string, unknown>>()
  for (const rows of answers) {
    if (!Array.isArray(rows)) continue
    for (const row of rows as ReadonlyArray<PoolRow>) {
      const key = JSON.stringify([row.listener, row.backend, row.database, row.user])
      const m = merged.get(key)
      if (m === undefined) {
        merged.set(key, { ...row, workers: 1 })
        continue
      }
      m.workers = (m.workers as number) + 1
      for (const [k, v] of Object.entries(row)) {
        if (kept.has(k) || typeof v !== "number") continue
        const prev = typeof m[k] === "number" ? (m[k] as number) : 0
        m[k] = largest.has(k) ? Math.max(prev, v) : prev + v
      }
    }
  }
  return [...merged.values()] as Array<PoolRow>
}
