// The dashboard's data: secrets out of the config view, and the cluster primary's sums of the workers' reports.
import { describe, expect, it } from "vitest"
import { mergeBackends, mergeStats, redactConfig } from "../../src/admin/dashboard/data.ts"
import { decodeConfig } from "../../src/config/decode.ts"

describe("redactConfig", () => {
  it("hides tokens, passwords in URLs and secret-looking keys, and keeps the rest", () => {
    const config = decodeConfig(
      {
        admin: { host: "127.0.0.1", port: 9090, token: "admin-secret" },
        resolver: {
          type: "http",
          url: "https://svc:http-pass@routes.internal/lookup?api_key=k3y&zone=eu",
          token: "resolver-secret",
          wakeUrl: "https://routes.internal/wake"
        },
        cache: { redis: "redis://:redis-pass@cache.internal:6379/0" },
        listeners: { tcp: { port: 7000, route: "app" } },
        routes: { app: { endpoint: "10.0.0.5:80", metadata: { password: "meta-secret", tier: "gold" } } }
      },
      "/"
    )
    const shown = redactConfig(config)
    const text = JSON.stringify(shown)
    for (const secret of ["admin-secret", "http-pass", "k3y", "resolver-secret", "redis-pass", "meta-secret"]) {
      expect(text).not.toContain(secret)
    }
    const s = shown as {
      admin: { token: string; port: number }
      resolver: { url: string; token: string; wakeUrl: string }
      cache: { redis: string }
      routes: { app: { endpoint: string; metadata: Record<string, string> } }
    }
    expect(s.admin).toMatchObject({ token: "[redacted]", port: 9090 })
    expect(s.resolver.token).toBe("[redacted]")
    expect(s.resolver.url).toBe("https://svc:***@routes.internal/lookup?api_key=***&zone=eu")
    expect(s.resolver.wakeUrl).toBe("https://routes.internal/wake")
    expect(s.cache.redis).toBe("redis://:***@cache.internal:6379/0")
    expect(s.routes.app).toEqual({ endpoint: "10.0.0.5:80", metadata: { password: "[redacted]", tier: "gold" } })
  })
})

describe("merging the workers' answers", () => {
  const worker = (pid: number, active: number, resources: Array<[string, number]>) => ({
    pid,
    connections: { tcp: active },
    listeners: {
      tcp: {
        protocol: "tcp",
        host: "127.0.0.1",
        port: 7000,
        active,
        accepted: active + 1,
        closed: 1,
        errors: { not_found: pid },
        bytesFromClient: 10,
        bytesFromBackend: 20
      }
    },
    resources: {
      open: resources.length,
      busiest: resources.map(([id, n]) => ({ id, active: n, backend: `${id}:1`, address: `10.0.0.1:${n}` }))
    },
    cache: { hits: 1, misses: 2, size: 3 },
    coldStartWaiting: { sleepy: 1 },
    resolver: { kind: "static", resolves: 4 }
  })

  it("sums listeners, resources, cache and resolver counters; skips a worker still starting", () => {
    const m = mergeStats([
      worker(1, 3, [
        ["a", 2],
        ["b", 1]
      ]),
      worker(2, 2, [["a", 2]]),
      { error: "starting" }
    ])
    expect(m.workers).toBe(2)
    expect(m.pids).toEqual([1, 2])
    expect(m.listeners.tcp).toMatchObject({
      active: 5,
      accepted: 7,
      closed: 2,
      errors: { not_found: 3 },
      bytesFromClient: 20,
      bytesFromBackend: 40
    })
    expect(m.resources.busiest.map((r) => [r.id, r.active])).toEqual([
      ["a", 4],
      ["b", 1]
    ])
    expect(m.resources.open).toBe(3)
    expect(m.cache).toEqual({ hits: 2, misses: 4, size: 6 })
    expect(m.coldStartWaiting).toEqual({ sleepy: 2 })
    expect(m.resolver).toEqual({ kind: "static", resolves: 8 })
  })

  it("shows one row per backend with the worst breaker state", () => {
    const health = (state: "closed" | "open" | "half-open", failures: number, lastError?: string) => ({
      backend: "10.0.0.1:5432",
      state,
      consecutiveFailures: failures,
      totalFailures: failures,
      totalSuccesses: 1,
      retryInMs: state === "open" ? 5_000 : 0,
      lastError
    })
    expect(mergeBackends([[health("closed", 0)], [health("open", 5, "ECONNREFUSED")]])).toEqual([
      {
        backend: "10.0.0.1:5432",
        state: "open",
        consecutiveFailures: 5,
        totalFailures: 5,
        totalSuccesses: 2,
        retryInMs: 5_000,
        lastError: "ECONNREFUSED"
      }
    ])
  })
})
