// `polyproxy` subcommands. Exit codes: 0 ok, 1 runtime failure, 2 bad usage or bad config.

import cluster from "node:cluster"
import * as fs from "node:fs"
import * as os from "node:os"
import { fileURLToPath } from "node:url"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { runPrimary } from "../cluster/primary.ts"
import { runWorker } from "../cluster/worker.ts"
import type { Config, TlsFiles } from "../config/Config.ts"
import { ConfigError } from "../config/decode.ts"
import { documentedEnv } from "../config/env.ts"
import { loadConfig } from "../config/load.ts"
import { runProxy } from "../Proxy.ts"

export const usage = `polyproxy — multi-tenant, protocol-aware proxy

Usage:
  polyproxy serve [--config FILE]     start the proxy (default config: the embedded fixtures/example.yaml,
                                      or $POLYPROXY_CONFIG)
  polyproxy check-config FILE         validate FILE (and the environment); exit 0 if valid, 2 with the bad key if not
  polyproxy routes [--config FILE]    print the static routes the config defines
  polyproxy env                       list the POLYPROXY_* environment variables and the keys they set
  polyproxy --help | --version

Environment variables override the file: POLYPROXY_LISTENERS_HTTP_PORT=8081 sets listeners.http.port
(see \`polyproxy env\`). PROXY_TLS_ENABLED, PROXY_TLS_CERT, PROXY_TLS_KEY, PROXY_TLS_CA and
PROXY_TLS_REQUIRE_CLIENT_CERT set the TLS used by every listener that terminates TLS.
`

export const embeddedConfig = fileURLToPath(new URL("../../fixtures/example.yaml", import.meta.url))

const fail = (message: string, code = 2): never => {
  process.stderr.write(`polyproxy: ${message}\n`)
  process.exit(code)
}

/** Reads the TLS files the config names, so a typo fails at check time rather than at the first client. */
const checkFiles = (config: Config) => {
  const tlsSets: Array<readonly [string, TlsFiles | undefined]> = [
    ["tls", config.tls],
    ...Object.entries(config.listeners).map(([n, l]) => [`listeners.${n}.tls`, l?.tls] as const)
  ]
  for (const [key, tls] of tlsSets) {
    if (tls === undefined) continue
    for (const [k, file] of [
      ["cert", tls.cert],
      ["key", tls.key],
      ["ca", tls.ca]
    ] as const) {
      if (file === undefined) continue
      try {
        fs.accessSync(file, fs.constants.R_OK)
      } catch {
        throw new ConfigError(`${key}.${k}`, `cannot read ${file}`)
      }
    }
  }
}

const load = (file: string | undefined): Config => {
  try {
    const config = loadConfig(file)
    checkFiles(config)
    return config
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
  const configSource = () => {
    const next = loadConfig(file)
    checkFiles(next)
    return next
  }
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
  const listeners = Object.entries(config.listeners).map(([n, l]) => `${n}:${l!.port}`)
  process.stdout.write(
    `ok: ${file} — listeners ${listeners.join(", ") || "(none)"}; ${Object.keys(config.routes).length} static route(s)\n`
  )
}

export const routes = (args: ReadonlyArray<string>) => {
  const config = load(configFile(args))
  for (const [id, r] of Object.entries(config.routes)) process.stdout.write(`${id}\t${r.endpoint}\n`)
}

export const env = () => {
  for (const [name, key] of documentedEnv()) process.stdout.write(`${name}\t${key}\n`)
}
