// What one route lookup costs the HTTP listener, per request: the RoutingCache through Effect (a cache hit: the
// route is already resolved and vetted) against the listener's memo in front of it. Main-thread CPU time.
//   node bench/http/route-lookup.ts
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import { decodeConfig } from "../../src/config/decode.ts"
import { servicesLayer } from "../../src/Proxy.ts"
import { Log } from "../../src/services/Log.ts"
import { RoutingCache } from "../../src/services/RoutingCache.ts"

const config = decodeConfig(
  { routes: { "bench.test": "127.0.0.1:8080" }, ssrf: { allow: ["127.0.0.0/8"] }, admin: false },
  process.cwd()
)
const scope = Effect.runSync(Scope.make())
const context = await Effect.runPromise(
  Layer.build(Layer.merge(servicesLayer(config), Log.layerTest([]))).pipe(Scope.provide(scope))
)
const cache = Context.get(context, RoutingCache)
const runFork = Effect.runForkWith(context)
const info = { protocol: "http", remoteAddress: "127.0.0.1", remotePort: 1 }
await Effect.runPromise(cache.get("bench.test", info))

const cpuNs = () => {
  const u = process.threadCpuUsage()
  return (u.user + u.system) * 1000
}

const measure = async (name: string, n: number, once: (done: () => void) => void) => {
  const results: Array<number> = []
  for (let round = 0; round < 5; round++) {
    const t0 = cpuNs()
    await new Promise<void>((resolve) => {
      let left = n
      const next = () => {
        if (--left === 0) resolve()
      }
      for (let i = 0; i < n; i++) once(next)
    })
    results.push((cpuNs() - t0) / n)
  }
  results.sort((a, b) => a - b)
  process.stdout.write(`${name.padEnd(58)} ${results[2]!.toFixed(0).padStart(6)} ns per lookup\n`)
  return results[2]!
}

const memo = new Map([["bench.test", { expires: Number.POSITIVE_INFINITY }]])
const viaMemo = await measure("memo: Map.get + expiry check (what a request pays)", 2_000_000, (done) => {
  const e = memo.get("bench.test")
  if (e !== undefined && e.expires > performance.now()) done()
})
const viaFork = await measure("RoutingCache.get through Effect.runForkWith + addObserver", 200_000, (done) => {
  runFork(cache.get("bench.test", info)).addObserver((exit) => {
    if (Exit.isSuccess(exit)) done()
  })
})
await measure("RoutingCache.get through Effect.runPromise", 200_000, (done) => {
  void Effect.runPromise(cache.get("bench.test", info)).then(done)
})
// ns per lookup = CPU s per 1e9 lookups, so CPU s per 1k requests = ns / 1e6.
process.stdout.write(
  `\nPer 1k requests: ${(viaFork / 1e6).toFixed(5)} CPU s through Effect, ${(viaMemo / 1e6).toFixed(5)} through the memo ` +
    "(compare with the listener's whole cost per 1k requests in bench/results/latest.md, http scenario).\n"
)
await Effect.runPromise(Scope.close(scope, Exit.void))
