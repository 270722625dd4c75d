// `polyproxy` subcommands. Exit codes: 0 ok, 1 runtime failure, 2 bad usage or bad config.

import cluster from "node:cluster"
import * as os from "node:os"
import { fileURLToPath } from "node:url"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { runPrimary } from "../cluster/primary.ts"
import { runWorker } from "../cluster/worker.ts"
import type { Config } from "../config/Config.ts"
import { ConfigError } from "../config/decode.ts"
import { documentedEnv } from "../config/env.ts"
import { loadConfig } from "../config/load.ts"
import { preflight } from "../config/preflight.ts"
import { runProxy } from "../Proxy.ts"
import { listRoutes } from "./routes.ts"

export const usage = `polyproxy — multi-tenant, protocol-aware proxy

Usage:
  polyproxy serve [--config FILE]     start the proxy (default config: the embedded fixtures/example.yaml,
                                      or $POLYPROXY_CONFIG)
  polyproxy check-config FILE         validate FILE (and the environment, and the TLS files it names); exit 0 if
                                      valid, 2 with the bad key if not
  polyproxy routes [FILE]             print the routes of the config's resolver (static: its routes; redis: the
                                      hash); also --config FILE, $POLYPROXY_CONFIG, the embedded example
  polyproxy env                       list the environment variables polyproxy reads and the keys they set
  polyproxy --help | --version

Environment variables override the file: POLYPROXY_LISTENERS_HTTP_PORT=8081 sets listeners.http.port
(see \`polyproxy env\`). PROXY_TLS_ENABLED, PROXY_TLS_CERT, PROXY_TLS_KEY, PROXY_TLS_CA,
PROXY_TLS_REQUIRE_CLIENT_CERT, PROXY_TLS_CIPHERS and PROXY_TLS_MIN_VERSION set the TLS used by every listener that
terminates TLS and has none of its own.
`

export const embeddedConfig = fileURLToPath(new URL("../../fixtures/example.yaml", import.meta.url))

const fail = (message: string, code = 2): never => {
  process.stderr.write(`polyproxy: ${message}\n`)
  process.exit(code)
}

/** The config as serve would run it: decoded, and what serve reads at start (TLS files…) checked now. */
const loadChecked = (file: string | undefined): Config => {
  const config = loadConfig(file)
  preflight(config)
  return config
}

const load = (file: string | undefined): Config => {
  try {
    return loadChecked(file)
  } catch (e) {
    if (e instanceof ConfigError) return fail(`invalid config${file ? ` ${file}` : ""}: ${e.message}`)
    throw e
  }
}

const option = (args: ReadonlyArray<string>, name: string): string | undefined => {
  const i = args.indexOf(name)
  if (i < 0) return args.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1)
  const v = args[i + 1]
  return v === undefined || v.startsWith("--") ? fail(`${name} needs a value`) : v
}

const configFile = (args: ReadonlyArray<string>) =>
  option(args, "--config") ?? process.env.POLYPROXY_CONFIG ?? embeddedConfig

export const serve = (args: ReadonlyArray<string>) => {
  const file = configFile(args)
  const config = load(file)
  const workers = config.workers === 0 ? os.availableParallelism() : config.workers
  // Re-read on SIGHUP / POST /admin/reload; a ConfigError leaves the running config in place.
  const configSource = () => loadChecked(file)
  if (cluster.isWorker) return runWorker(config, configSource)
  if (workers > 1) return runPrimary(config, workers, configSource)
  const fiber = Effect.runFork(
    Effect.scoped(
      Effect.gen(function* () {
        const handle = yield* runProxy(config, { configSource })
        process.on("SIGHUP", () => void handle.ops.reloadFromSource().catch(() => {}))
        return yield* Effect.never
      })
    )
  )
  let signals = 0
  const stop = (signal: string) => {
    // A second signal means "now": skip the drain.
    if (++signals > 1) process.exit(0)
    process.stderr.write(`polyproxy: ${signal}, stopping (drain up to ${config.timeouts.drain}s)\n`)
    fiber.interruptUnsafe()
  }
  process.on("SIGTERM", () => stop("SIGTERM"))
  process.on("SIGINT", () => stop("SIGINT"))
  fiber.addObserver((exit) => {
    if (Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause)) process.exit(0)
    const reason = exit.cause.reasons[0]
    const message = reason?._tag === "Fail" ? (reason.error as { message?: string }).message : Cause.pretty(exit.cause)
    fail(`cannot start: ${message}`, 1)
  })
  return Fiber.join(fiber)
}

export const checkConfig = (args: ReadonlyArray<string>) => {
  const file = args.find((a) => !a.startsWith("--"))
  if (file === undefined) return fail("check-config needs a FILE")
  const config = load(file)
  const listeners = Object.entries(config.listeners).map(
    ([n, l]) => `${n}:${l.port}${n === l.type ? "" : ` (${l.type})`}`
  )
  process.stdout.write(
    `ok: ${file} — listeners ${listeners.join(", ")}; ${Object.keys(config.routes).length} static route(s)\n`
  )
  if (config.ssrf.disabled) {
    process.stderr.write(
      "polyproxy: warning: ssrf.disabled is true: backends in private and loopback ranges are dialed\n"
    )
  }
}

export const routes = async (args: ReadonlyArray<string>) => {
  const file = args.find((a, i) => !a.startsWith("--") && args[i - 1] !== "--config") ?? configFile(args)
  const config = load(file)
  const code = await listRoutes(config, file, {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`polyproxy: ${line}\n`)
  })
  // Now, not when the event loop empties: ioredis keeps a timer for a while after its client is gone.
  process.exit(code)
}

export const env = () => {
  for (const [name, key] of documentedEnv()) process.stdout.write(`${name}\t${key}\n`)
}
