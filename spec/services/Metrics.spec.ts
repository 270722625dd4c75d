import * as Effect from "effect/Effect"
import { describe, expect, it } from "vitest"
import { Metrics } from "../../src/services/Metrics.ts"

const metricsOf = (perResource: number) =>
  Effect.runSync(
    Effect.provide(
      Effect.gen(function* () {
        return yield* Metrics
      }),
      Metrics.layerWith({ perResource })
    )
  )

describe("Metrics per resource", () => {
  it("gives the first N resources their own series and folds the rest into 'other'", async () => {
    const m = metricsOf(2)
    for (const id of ["spec-a", "spec-b", "spec-c", "spec-d", "spec-a"]) m.resource(id)?.connected()
    m.resource("spec-a")?.closed(10, 20)
    const text = await Effect.runPromise(m.prometheus)
    expect(text).toContain('polyproxy_resource_connections_total{resource="spec-a"} 2')
    expect(text).toContain('polyproxy_resource_connections_total{resource="spec-b"} 1')
    expect(text).toContain('polyproxy_resource_connections_total{resource="other"} 2')
    expect(text).not.toContain('resource="spec-c"')
    expect(text).toContain('polyproxy_resource_bytes_total{resource="spec-a",direction="from_backend"} 20')
  })

  it("is off by default", () => {
    expect(metricsOf(0).resource("x")).toBeUndefined()
  })
})
