// Starts polyproxy in the spec's process, the way `polyproxy serve` does, with logs captured for assertions.
import { Effect, Exit, type Layer, Scope } from "effect"
import { decodeConfig } from "../../src/config/decode.ts"
import { type ProxyHandle, runProxy } from "../../src/Proxy.ts"
import type { Fields } from "../../src/services/Log.ts"
import { Log } from "../../src/services/Log.ts"
import { Resolver } from "../../src/services/Resolver.ts"
import type { Certs } from "./certs.ts"

export interface TestProxy {
  readonly handle: ProxyHandle
  readonly logs: Array<Fields & { level: string; event: string }>
  /** The bound port of a listener (configs use port 0). */
  readonly port: (listener: string) => number
  readonly adminUrl: string
  /** Closes the scope: stop accepting, drain, close. */
  readonly stop: () => Promise<void>
}

export const startTestProxy = async (
  raw: Record<string, unknown>,
  resolver?: Layer.Layer<Resolver, unknown>
): Promise<TestProxy> => {
  const config = decodeConfig({ admin: { host: "127.0.0.1", port: 0 }, ...raw }, process.cwd())
  const logs: TestProxy["logs"] = []
  const scope = Effect.runSync(Scope.make())
  const handle = await Effect.runPromise(
    runProxy(config, { log: Log.layerTest(logs), ...(resolver ? { resolver } : {}) }).pipe(Scope.provide(scope))
  )
  return {
    handle,
    logs,
    port: (name) => {
      const l = handle.listeners.find((x) => x.name === name)
      if (l === undefined) throw new Error(`no listener ${name}`)
      return l.port
    },
    adminUrl: `http://127.0.0.1:${handle.admin?.port}`,
    stop: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

/**
 * A proxy whose `listener` terminates TLS and requires a client certificate signed by `certs.ca`; its resolver sends
 * "appdb" to `endpoint` and records each caller's certificate subject in `subjects`.
 */
export const startMtlsProxy = (
  listener: string,
  certs: Certs,
  endpoint: string,
  subjects: Array<string | undefined>
): Promise<TestProxy> =>
  startTestProxy(
    {
      listeners: {
        [listener]: {
          host: "127.0.0.1",
          port: 0,
          tls: {
            cert: certs.server.certPath,
            key: certs.server.keyPath,
            ca: certs.ca.certPath,
            requireClientCert: true
          }
        }
      },
      ssrf: { allow: ["127.0.0.0/8"] },
      cache: { ttl: 0 }
    },
    Resolver.layerAsync({
      resolve: (id, info) => {
        subjects.push(info?.tlsSubject)
        return id === "appdb" ? { endpoint } : null
      }
    })
  )

/** Polls `check` until it holds or `ms` pass. */
export const eventually = async (check: () => boolean | Promise<boolean>, ms = 5_000): Promise<void> => {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time")
    await new Promise((r) => setTimeout(r, 20))
  }
}
