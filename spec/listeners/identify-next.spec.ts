// The pipeline's `Identified.next` (src/pipeline/identify.ts): a protocol that answers the client and then waits for
// its routing key (MySQL's USE after a login without a database) has that idle wait bounded by timeouts.idle, not
// timeouts.handshake, on both paths that identify (the handshake fiber; the fiber-free path's peek, whose `next` the
// fiber runs). A line protocol stands in for MySQL: the proxy greets with "hello", the client names its resource on
// the next line, and the backend (an echo server) sees everything after it.
import * as net from "node:net"
import { Effect, Exit, Layer, Scope } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { frame, need } from "../../src/codec/Decode.ts"
import { decodeConfig } from "../../src/config/decode.ts"
import type { proxyError } from "../../src/domain/ProxyError.ts"
import { Admission } from "../../src/listeners/Admission.ts"
import { startListener } from "../../src/listeners/Listener.ts"
import type { Identified, Protocol } from "../../src/listeners/Protocol.ts"
import { readFrame } from "../../src/listeners/readFrame.ts"
import { servicesLayer } from "../../src/Proxy.ts"
import type { Fields } from "../../src/services/Log.ts"
import { Log } from "../../src/services/Log.ts"
import { Resolver } from "../../src/services/Resolver.ts"

const line = (buf: Buffer) => {
  const end = buf.indexOf(10)
  return end < 0 ? need(1) : frame(buf.subarray(0, end).toString(), end + 1)
}

/** The client's resource line, read after the greeting; what follows it is the backend's. */
const nameLine = (client: net.Socket): Effect.Effect<Identified, ReturnType<typeof proxyError>> =>
  Effect.map(readFrame(client, line, 1024), (read) => ({
    resourceId: read.value,
    client,
    replay: read.rest.length > 0 ? Buffer.from(read.rest) : undefined
  }))

const base = {
  readsHandshake: true,
  refuse: (client: net.Socket) => {
    client.end("refused\n")
  }
}

/** identify in the fiber's form: greets, then its `next` waits for the resource line. */
const fiberProtocol: Protocol = {
  ...base,
  name: "lines",
  identify: (conn) =>
    Effect.sync(() => {
      conn.client.write("hello\n")
      return { resourceId: "", client: conn.client, next: nameLine(conn.client) }
    })
}

/** identify in the callback form (the fiber-free path's peek) with the same `next`. */
const peekProtocol: Protocol = {
  ...fiberProtocol,
  name: "peeklines",
  identifyNow: (client, done) => {
    client.write("hello\n")
    done({ resourceId: "", client, next: nameLine(client) }, undefined)
    return () => {}
  }
}

let scope: Scope.Closeable
let echo: net.Server
const ports: Record<string, number> = {}
const logs: Array<Fields & { level: string; event: string }> = []

beforeAll(async () => {
  echo = net.createServer((s) => s.pipe(s))
  await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve))
  const echoPort = (echo.address() as net.AddressInfo).port
  const config = decodeConfig(
    { listeners: { tcp: { host: "127.0.0.1", port: 0, route: "unused" } }, ssrf: { allow: ["127.0.0.0/8"] } },
    process.cwd()
  )
  const resolver = Resolver.layerTest({ echo: `127.0.0.1:${echoPort}` })
  const layer = Layer.merge(servicesLayer(config, resolver), Log.layerTest(logs))
  scope = Effect.runSync(Scope.make())
  const listenerConfig = config.listeners.tcp!
  const admission = new Admission(config.limits)
  // The client names its resource well after the handshake deadline, well within the idle one.
  const patient = { handshake: 0.3, connect: 2, idle: 5 }
  const strict = { handshake: 5, connect: 2, idle: 0.4 }
  const started = await Effect.runPromise(
    Effect.gen(function* () {
      const context = yield* Layer.build(layer)
      return yield* Effect.all([
        startListener(fiberProtocol, listenerConfig, patient, admission),
        startListener(peekProtocol, listenerConfig, patient, admission),
        startListener({ ...fiberProtocol, name: "strict" }, listenerConfig, strict, admission)
      ]).pipe(Effect.provideContext(context))
    }).pipe(Scope.provide(scope))
  )
  ports.fiber = started[0]!.port
  ports.peek = started[1]!.port
  ports.strict = started[2]!.port
})

afterAll(async () => {
  if (scope) await Effect.runPromise(Scope.close(scope, Exit.void))
  echo?.close()
})

/** Connects, reads the greeting, waits `delayMs`, names `resource` and sends `payload`; everything read until close. */
const session = (port: number, delayMs: number, resource: string, payload: string) =>
  new Promise<string>((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1")
    let got = ""
    let named = false
    s.on("data", (d) => {
      got += d.toString()
      if (!named && got === "hello\n") {
        named = true
        setTimeout(() => {
          if (!s.destroyed) s.write(`${resource}\n${payload}`)
          if (payload !== "") setTimeout(() => s.end(), 300)
        }, delayMs)
      }
    })
    s.on("error", reject)
    s.on("close", () => resolve(got))
  })

describe("Identified.next: the wait for a routing key after the protocol answered", () => {
  it("is bounded by timeouts.idle, not timeouts.handshake (handshake fiber)", async () => {
    expect(await session(ports.fiber!, 900, "echo", "ping\n")).toBe("hello\nping\n")
  })

  it("runs in the fiber when the fiber-free path's peek returned it", async () => {
    expect(await session(ports.peek!, 900, "echo", "ping\n")).toBe("hello\nping\n")
  })

  it("past timeouts.idle, the client is closed without an answer, as an idle relayed client is", async () => {
    expect(await session(ports.strict!, 60_000, "echo", "")).toBe("hello\n")
    const line = logs.find((l) => l.event === "connection refused" && l.listener === "strict")
    expect(line).toMatchObject({ level: "debug", reason: "HANDSHAKE_TIMEOUT" })
    expect(String(line?.message)).toContain("within 0.4s (timeouts.idle)")
  })

  it("within timeouts.idle, the routing key is taken", async () => {
    expect(await session(ports.strict!, 0, "echo", "pong\n")).toBe("hello\npong\n")
  })
})
