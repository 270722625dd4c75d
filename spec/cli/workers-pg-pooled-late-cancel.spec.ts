// `workers: 2`, transaction pooling, and a cancel that reaches PostgreSQL after its query ended (pgLateCancel.ts):
// a cancel landing on the other worker is answered by the worker holding the client (the primary asks it), which then
// keeps that server connection out of service until the other worker says its cancel's connection to the server has
// closed (its word goes back through the primary). The next client's query on that connection is not cancelled,
// whichever worker the cancel landed on. Which one it landed on is read from the workers' own open connections
// (/admin/stats) while the cancel waits at the gate: rounds run until both kinds have been seen.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { CliProxy } from "../support/cliProxy.ts"
import {
  type CancelStage,
  type Keyed,
  keyedClient,
  lateCancel,
  poolOf,
  startCancelStage
} from "../support/pgLateCancel.ts"
import { startPoolingCli } from "../support/pgPooling.ts"
import { eventually } from "../support/proxy.ts"

let stage: CancelStage
let proxy: CliProxy

beforeAll(async () => {
  stage = await startCancelStage()
  // One server connection per worker's pool.
  proxy = await startPoolingCli(stage.db, "appdb", 1, 2, stage.gate.port)
})

afterAll(async () => {
  stage?.gate.open()
  proxy?.stop()
  await stage?.stop()
})

const client = (): Promise<Keyed> => keyedClient(proxy.port("postgres"), stage.db, "appdb")

/** Each worker's open client connections of the postgres listener, by pid. */
const openByWorker = async (): Promise<Map<number, number>> => {
  const stats = (await (await fetch(`${proxy.adminUrl}/admin/stats`)).json()) as {
    workers: Array<{ pid: number; connections: { postgres: number } }>
  }
  return new Map(stats.workers.map((w) => [w.pid, w.connections.postgres]))
}

/** Two clients of one worker (a worker's process ids are ≡ its index mod 2), the others closed. */
const twoOfOneWorker = async (): Promise<[Keyed, Keyed]> => {
  const opened: Keyed[] = []
  for (;;) {
    const c = await client()
    const mate = opened.find((o) => o.processID % 2 === c.processID % 2)
    if (mate !== undefined) {
      await Promise.all(opened.filter((o) => o !== mate).map((o) => o.end()))
      return [mate, c]
    }
    opened.push(c)
  }
}

describe("workers: 2, a cancel that reaches the server after its query ended", () => {
  it("does not cancel the next client's query, whether it landed on the client's worker or the other", async () => {
    const [a, b] = await twoOfOneWorker()
    try {
      // Only a and b are open: 2 on their worker, 0 on the other.
      await eventually(async () => [...(await openByWorker()).values()].sort().join() === "0,2", 10_000)
      const landed = { own: 0, other: 0 }
      const scene = { port: proxy.port("postgres"), adminUrl: proxy.adminUrl, database: "appdb", stage }
      for (let round = 0; round < 24 && (landed.own === 0 || landed.other === 0); round++) {
        const { bError, seen } = await lateCancel({
          ...scene,
          a,
          b,
          // The cancel's own connection is open on the worker it landed on.
          whileHeld: async () => {
            const counts = [...(await openByWorker()).values()].sort().join()
            expect(["0,3", "1,2"]).toContain(counts)
            if (counts === "0,3") landed.own++
            else landed.other++
          }
        })
        expect(bError?.code).toBeUndefined() // not 57014
        // B waited for the connection, out of service until the cancel's connection closed.
        expect(seen).toMatchObject({ cancelling: 1, waiting: 1 })
        expect(await poolOf(proxy.adminUrl, "appdb")).toMatchObject({ cancelling: 0, waiting: 0 })
      }
      // Both ways were taken (each about half the time: 24 rounds fail to see one with a chance of 2^-23).
      expect(landed.own).toBeGreaterThan(0)
      expect(landed.other).toBeGreaterThan(0)
    } finally {
      await Promise.all([a.end(), b.end()])
    }
  })
})
