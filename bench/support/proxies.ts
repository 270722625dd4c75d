// polyproxy as a variant of a scenario: a generated config on a free port (another one if it was taken), optionally
// under `--cpu-prof` (NODE_OPTIONS reaches the primary and every cluster worker; profiles are written at exit).
import { mkdirSync } from "node:fs"
import { freePort } from "../../spec/support/backends/local.ts"
import { type Polyproxy, type ProxyEntry, startPolyproxy } from "./polyproxy.ts"

export interface ProxyVariantOptions {
  readonly entry: ProxyEntry
  /** A directory of its own (the config file name inside is fixed). */
  readonly dir: string
  /** The config for a listener on `port`. */
  readonly config: (port: number) => Record<string, unknown>
  readonly ready: (port: number) => Promise<void>
  /** Write V8 CPU profiles of the proxy's processes into this directory. */
  readonly cpuProfDir?: string | undefined
}

export const startProxyVariant = async (opts: ProxyVariantOptions): Promise<{ proxy: Polyproxy; port: number }> => {
  mkdirSync(opts.dir, { recursive: true })
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const saved = process.env.NODE_OPTIONS
    if (opts.cpuProfDir !== undefined) {
      mkdirSync(opts.cpuProfDir, { recursive: true })
      process.env.NODE_OPTIONS = `${saved ?? ""} --cpu-prof --cpu-prof-dir=${opts.cpuProfDir}`.trim()
    }
    try {
      // startPolyproxy spawns synchronously before its first await: the NODE_OPTIONS above reach only that child.
      const started = startPolyproxy({
        entry: opts.entry,
        dir: opts.dir,
        config: opts.config(port),
        ready: () => opts.ready(port)
      })
      if (saved === undefined) delete process.env.NODE_OPTIONS
      else process.env.NODE_OPTIONS = saved
      return { proxy: await started, port }
    } catch (error) {
      if (attempt < 3 && /EADDRINUSE/.test((error as Error).message)) continue
      throw error
    } finally {
      if (saved === undefined) delete process.env.NODE_OPTIONS
      else process.env.NODE_OPTIONS = saved
    }
  }
}
