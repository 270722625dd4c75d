// `ssrf.disabled: true`, the explicit "skip validation": a loopback backend the default guard refuses is dialed, the
// proxy warns at start, and the unspecified address is still never a backend.
import type * as net from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { echoServer, roundTrip } from "../support/net.ts"
import { startTestProxy, type TestProxy } from "../support/proxy.ts"

let backend: net.Server
let port: number
const proxies: Array<TestProxy> = []

const proxy = async (endpoint: string, ssrf: Record<string, unknown>) => {
  const p = await startTestProxy({
    listeners: { tcp: { host: "127.0.0.1", port: 0, route: "echo" } },
    routes: { echo: endpoint },
    ssrf
  })
  proxies.push(p)
  return p
}

beforeAll(async () => {
  backend = await echoServer()
  port = (backend.address() as net.AddressInfo).port
})
afterAll(async () => {
  await Promise.all(proxies.map((p) => p.stop()))
  backend.close()
})

describe("ssrf.disabled", () => {
  it("the default guard refuses a loopback backend; disabled, the same route is relayed, with a warning at start", async () => {
    const guarded = await proxy(`127.0.0.1:${port}`, {})
    expect(await roundTrip(guarded.port("tcp"), "ping")).toBe("")
    const refused = guarded.logs.find((l) => l.event === "connection refused")
    expect(refused?.reason).toBe("FORBIDDEN")
    expect(String(refused?.message)).toContain("refused by the SSRF guard")
    expect(guarded.logs.some((l) => l.event === "SSRF guard disabled")).toBe(false)

    const open = await proxy(`127.0.0.1:${port}`, { disabled: true })
    expect(await roundTrip(open.port("tcp"), "ping")).toBe("ping")
    const warning = open.logs.find((l) => l.event === "SSRF guard disabled")
    expect(warning?.level).toBe("warn")
    expect(String(warning?.reason)).toContain("ssrf.disabled is true")
  })

  it("still never dials the unspecified address", async () => {
    const p = await proxy(`0.0.0.0:${port}`, { disabled: true })
    expect(await roundTrip(p.port("tcp"), "ping")).toBe("")
    const refused = p.logs.find((l) => l.event === "connection refused")
    expect(String(refused?.message)).toContain("the unspecified address")
  })
})
