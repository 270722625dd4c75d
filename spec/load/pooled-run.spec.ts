// `make load MODE=postgres-pooled` end to end, small: the coordinator (load/run.ts) starts a real PostgreSQL with a
// small max_connections, polyproxy (src/cli.ts, two workers) with transaction-pooling routes, and agents whose
// clients log in, run SELECT 1 and idle; it passes only when every client got its answer and PostgreSQL never held
// more connections than workers × pool.size per (database, role). The memory budget is lifted: at 300 connections the
// per-connection figure is noise (load/README.md has the real runs).
import { execFile } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, describe, expect, it } from "vitest"

const root = fileURLToPath(new URL("../../", import.meta.url))
const out = mkdtempSync(join(tmpdir(), "polyproxy-load-spec-"))
afterAll(() => rmSync(out, { recursive: true, force: true }))

const runLoad = (args: ReadonlyArray<string>): Promise<{ code: number; stdout: string }> =>
  new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(root, "load", "run.ts"), ...args],
      { cwd: root, timeout: 240_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1
        resolve({ code, stdout: `${stdout}\n${stderr}` })
      }
    )
  })

describe("load harness, mode postgres-pooled", () => {
  it("300 pooled clients through 2 workers: all answered, PostgreSQL within workers × pool.size", async () => {
    const { code, stdout } = await runLoad([
      "--mode",
      "postgres-pooled",
      "--connections",
      "300",
      "--workers",
      "2",
      "--pool-size",
      "2",
      "--proxy",
      "src",
      "--sysctl",
      "skip",
      "--max-kb-per-conn",
      "100000",
      "--hold",
      "1",
      "--out",
      out
    ])
    expect(code, stdout).toBe(0)
    const file = readdirSync(out).find((f) => f.endsWith("-postgres-pooled-300.json"))
    expect(file, stdout).toBeDefined()
    const result = JSON.parse(readFileSync(join(out, file!), "utf8"))
    expect(result.pass).toBe(true)
    expect(result.steps.at(-1)).toMatchObject({ connections: 300, active: 300, agents: { confirmed: 300, failed: 0 } })
    // 2 databases × 2 roles, 2 workers × pool.size 2 each: at most 4 server connections per (database, role).
    expect(result.pg.bound).toEqual({ perPool: 4, total: 16 })
    expect(result.pg.maxConnections).toBe(40)
    expect(result.pg.peak.samples).toBeGreaterThan(0)
    expect(result.pg.peak.total).toBeGreaterThan(0)
    expect(result.pg.peak.perPool).toBeLessThanOrEqual(4)
    expect(result.pg.peak.total).toBeLessThanOrEqual(16)
  }, 300_000)
})
