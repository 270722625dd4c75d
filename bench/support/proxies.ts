// polyproxy as a variant of a scenario: a generated config on a free port (another one if it was taken), optionally
// under `--cpu-prof` (NODE_OPTIONS reaches the primary and every cluster worker; profiles are written at exit).
import { mkdirSync } from "node:fs"
import { join } from "node:path"
import { freePort } from "../../spec/support/backends/local.ts"
import { entryCommand, type Polyproxy, type ProxyEntry, startPolyproxy } from "./polyproxy.ts"
import { type Compared, childAlive, comparedName, processVariant, type Variant } from "./variant.ts"

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
  /** The working tree's polyproxy. */
  readonly entry: ProxyEntry
  /** `--compare`: the same variant from that revision too, as `name@rev` (bench/support/compare.ts). */
  readonly compare?: ProxyEntry | undefined
  /** The scenario's directory: the proxy gets `dir/name`. */
  readonly dir: string
  readonly cpuProfDir?: string | undefined
  readonly workers?: number
  /** The one listener's config (host and port filled in): e.g. { tcp: { route: "echo" } }. */
  readonly listener: (port: number) => Record<string, Record<string, unknown>>
  /** Route id → "host:port", or a route with its metadata ({ endpoint, metadata }: e.g. a pooled pg route). */
  readonly routes: Readonly<Record<string, string | { readonly endpoint: string; readonly metadata?: object }>>
  /** Config keys set over the shared ones (a key set to undefined is left out of the config). */
  readonly extra?: Readonly<Record<string, unknown>>
  readonly ready: (port: number) => Promise<void>
  readonly label: string
  /** What its listener does, for the variant's description. */
  readonly what: string
}

const startPolyproxyVariant = async <N extends string>(
  o: PolyproxyVariantOptions<string>,
  entry: ProxyEntry,
  name: N
): Promise<{ readonly proxy: Polyproxy; readonly variant: Variant<N> }> => {
  const workers = o.workers ?? 1
  const { proxy, port } = await startProxyVariant({
    entry,
    dir: join(o.dir, name),
    cpuProfDir: o.cpuProfDir === undefined ? undefined : join(o.cpuProfDir, name),
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
  const cluster =
    workers === 1
      ? ""
      : workers === 0
        ? " (one per core + the primary; CPU of all)"
        : ` (node:cluster primary + ${workers} workers; CPU of all)`
  return {
    proxy,
    variant: processVariant(
      name,
      port,
      { pid: proxy.pid, alive: childAlive(proxy.child) },
      entry.rev === undefined ? o.label : `${o.label} @${entry.rev}`,
      `\`${entryCommand(entry)} serve\`${entry.rev === undefined ? "" : ` (revision ${entry.rev})`}, ${o.what}, ` +
        `\`workers: ${workers}\`${cluster}, log level warn, connection log off`
    )
  }
}

/**
 * polyproxy as a scenario variant with the config every scenario shares: `workers` (1), admin off, log level warn
 * without connection lines, ssrf allowing loopback, no idle timeout, and the one listener it benches. With `compare`,
 * the same config also from that revision, named `name@rev`, to run in the same rounds; if that one cannot start,
 * neither counts (there would be nothing to compare with) and the error names it.
 */
export const startPolyproxyVariants = async <N extends string>(
  o: PolyproxyVariantOptions<N>
): Promise<{ readonly proxies: Polyproxy[]; readonly variants: Variant<N | Compared<N>>[] }> => {
  const proxies: Polyproxy[] = []
  const variants: Variant<N | Compared<N>>[] = []
  for (const entry of o.compare === undefined ? [o.entry] : [o.entry, o.compare]) {
    const name = entry.rev === undefined ? o.name : comparedName(o.name, entry.rev)
    try {
      const started = await startPolyproxyVariant(o, entry, name)
      proxies.push(started.proxy)
      variants.push(started.variant)
    } catch (error) {
      for (const p of proxies) await p.stop().catch(() => {})
      throw entry.rev === undefined ? error : new Error(`${name}: ${(error as Error).message}`)
    }
  }
  return { proxies, variants }
}
