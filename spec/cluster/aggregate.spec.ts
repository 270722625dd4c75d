import { describe, expect, it } from "vitest"
import { sumPrometheus } from "../../src/cluster/aggregate.ts"

const a = `# HELP polyproxy_connections_active Open client connections, per listener
# TYPE polyproxy_connections_active gauge
polyproxy_connections_active{listener="tcp"} 3
# HELP polyproxy_resolve_duration_ms Resolver call latency
# TYPE polyproxy_resolve_duration_ms histogram
polyproxy_resolve_duration_ms_bucket{le="1"} 2
polyproxy_resolve_duration_ms_bucket{le="+Inf"} 3
polyproxy_resolve_duration_ms_sum 4.5
polyproxy_resolve_duration_ms_count 3
`
const b = `# HELP polyproxy_connections_active Open client connections, per listener
# TYPE polyproxy_connections_active gauge
polyproxy_connections_active{listener="tcp"} 4
polyproxy_connections_active{listener="postgres"} 1
# HELP polyproxy_resolve_duration_ms Resolver call latency
# TYPE polyproxy_resolve_duration_ms histogram
polyproxy_resolve_duration_ms_bucket{le="1"} 1
polyproxy_resolve_duration_ms_bucket{le="+Inf"} 1
polyproxy_resolve_duration_ms_sum 0.5
polyproxy_resolve_duration_ms_count 1
`

describe("sumPrometheus", () => {
  it("adds identical series across processes and keeps one HELP/TYPE per metric", () => {
    const out = sumPrometheus([a, b, "polyproxy_workers 2\n"])
    expect(out).toContain('polyproxy_connections_active{listener="tcp"} 7')
    expect(out).toContain('polyproxy_connections_active{listener="postgres"} 1')
    expect(out).toContain('polyproxy_resolve_duration_ms_bucket{le="1"} 3')
    expect(out).toContain('polyproxy_resolve_duration_ms_bucket{le="+Inf"} 4')
    expect(out).toContain("polyproxy_resolve_duration_ms_sum 5")
    expect(out).toContain("polyproxy_resolve_duration_ms_count 4")
    expect(out).toContain("polyproxy_workers 2")
    expect(out.match(/# TYPE polyproxy_connections_active/g)?.length).toBe(1)
    // series stay under their own HELP/TYPE block
    const lines = out.split("\n")
    expect(lines.indexOf('polyproxy_connections_active{listener="postgres"} 1')).toBeLessThan(
      lines.indexOf("# HELP polyproxy_resolve_duration_ms Resolver call latency")
    )
  })

  it("ignores lines it cannot read", () => {
    expect(sumPrometheus(["garbage\nx y z\n", "m 1\n"])).toBe("m 1\n")
  })
})

describe("prometheusText", () => {
  it("writes each histogram's +Inf bucket once", async () => {
    const Metric = await import("effect/Metric")
    const Context = await import("effect/Context")
    const { prometheusText } = await import("../../src/services/prometheus.ts")
    const h = Metric.histogram("spec_once_ms", { boundaries: [1, 10], description: "spec" })
    h.updateUnsafe(5, Context.empty())
    const lines = prometheusText()
      .split("\n")
      .filter((l) => l.startsWith('spec_once_ms_bucket{le="+Inf"}'))
    expect(lines).toEqual(['spec_once_ms_bucket{le="+Inf"} 1'])
  })
})
