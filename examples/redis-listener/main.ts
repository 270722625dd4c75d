// A proxy with a listener type of its own: `node examples/redis-listener/main.ts polyproxy.yaml` routes Redis
// clients by their AUTH user, beside whatever built-in listeners the config also names. In your own project, import
// from "polyproxy" instead of "../../src/index.ts".
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { loadConfig, preflight, runProxy } from "../../src/index.ts"
import { redisListener } from "./manifest.ts"

const file = process.argv[2] ?? new URL("polyproxy.yaml", import.meta.url).pathname
// The same listener types for decoding the config and for running it.
const listeners = [redisListener]
/** The config as `polyproxy serve` takes it: decoded, and the files it names (TLS) readable. */
const load = () => {
  const config = loadConfig(file, process.env, process.cwd(), { listeners })
  preflight(config)
  return config
}
const config = load()

const main = Effect.scoped(
  Effect.gen(function* () {
    const proxy = yield* runProxy(config, { listeners, configSource: load })
    process.on("SIGHUP", () => void proxy.ops.reloadFromSource().catch(() => {}))
    return yield* Effect.never
  })
)

const fiber = Effect.runFork(main)
const stop = () => fiber.interruptUnsafe()
process.on("SIGTERM", stop)
process.on("SIGINT", stop)
fiber.addObserver((exit) => {
  if (Exit.isFailure(exit) && !Cause.hasInterruptsOnly(exit.cause)) {
    process.stderr.write(`redis-listener: cannot start: ${Cause.pretty(exit.cause)}\n`)
    process.exit(1)
  }
  process.exit(0)
})
