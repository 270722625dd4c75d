// A count read from the backend again and again while a measured run goes on (the pooled workloads' server
// connections): the most seen is what a run reports.
import { sleep } from "./process.ts"

/**
 * Runs `f` while calling `count` every 100 ms; resolves with its result and the highest count. A failed count fails
 * the run; when `f` fails, its own error is the one that counts.
 */
export const whileSampling = async <A>(
  count: () => Promise<number>,
  f: () => Promise<A>
): Promise<{ readonly result: A; readonly max: number }> => {
  let max = 0
  let running = true
  const loop = (async () => {
    while (running) {
      max = Math.max(max, await count())
      await sleep(100)
    }
  })()
  try {
    const result = await f()
    running = false
    await loop
    return { result, max }
  } finally {
    running = false
    await loop.catch(() => {})
  }
}
