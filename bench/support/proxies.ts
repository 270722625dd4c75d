// polyproxy as a variant of a scenario: a generated config on a free port (another one if it was taken), optionally
// under `--cpu-prof` (NODE_OPTIONS reaches the primary and every cluster worker; profiles are written at exit).
import { mkdirSync } from "node:fs"
import { join } from "node:path"
import { freePort } from "../../spec/support/backends/local.ts"
import { type Polyproxy, type ProxyEntry, startPolyproxy } from "./polyproxy.ts"
import { childAlive, processVariant, type Variant } from "./variant.ts"

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

export interface PolyproxyVariantOptions<N extends string> {
  readonly name: N
  readonly entry: ProxyEntry
  /** The scenario's directory: the proxy gets `dir/name`. */
  readonly dir: string
  readonly cpuProfDir?: string | undefined
  readonly workers?: number
  /** The one listener's config (host and port filled in): e.g. { tcp: { route: "echo" } }. */
  readonly listener: (port: number) => Record<string, Record<string, unknown>>
  readonly routes: Readonly<Record<string, string>>
  readonly extra?: Readonly<Record<string, unknown>>
  readonly ready: (port: number) => Promise<void>
  readonly label: string
  /** What its listener does, for the variant's description. */
  readonly what: string
}

/**
 * polyproxy as a scenario variant with the config every scenario shares: `workers` (1), admin off, log level warn
 * without connection lines, ssrf allowing loopback, no idle timeout, and the one listener it benches.
 */
export const startPolyproxyVariant = async <N extends string>(
  o: PolyproxyVariantOptions<N>
): Promise<{ readonly proxy: Polyproxy; readonly variant: Variant<N> }> => {
  const workers = o.workers ?? 1
  const { proxy, port } = await startProxyVariant({
    entry: o.entry,
    dir: join(o.dir, o.name),
    cpuProfDir: o.cpuProfDir === undefined ? undefined : join(o.cpuProfDir, o.name),
    config: (port) => ({
      workers,
      admin: false,
      listeners: o.listener(port),
      routes: o.routes,
      ssrf: { allow: ["127.0.0.0/8"] },
      timeouts: { idle: 0 },
      log: { level: "warn", connections: false },
      ...o.extra
    }),
    ready: o.ready
  })
  const entry = o.entry === "dist" ? "dist/cli.js" : "src/cli.ts"
  const cluster =
    workers === 1
      ? ""
      : workers === 0
        ? " (one per core + the primary; CPU of all)"
        : ` (node:cluster primary + ${workers} workers; CPU of all)`
  return {
    proxy,
    variant: processVariant(
      o.name,
      port,
      { pid: proxy.pid, alive: childAlive(proxy.child) },
      o.label,
      `\`node ${entry} serve\`, ${o.what}, \`workers: ${workers}\`${cluster}, log level warn, connection log off`
    )
  }
}
