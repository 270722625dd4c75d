// The http scenario of bench/run.ts: keep-alive GETs of a 1 KB body from wrk (C, one thread) through polyproxy's
// http listener and through nginx, HAProxy and the plain Node proxies (node:http with three upstream clients,
// http-proxy, @fastify/http-proxy), beside the origin reached directly. The origin is nginx answering `return 200`
// (C), so neither the generator nor the origin is a Node process. Variants interleaved round by round.
import * as http from "node:http"
import { join } from "node:path"
import {
  cpuFields,
  interleave,
  type NoisePolicy,
  type ScenarioResult,
  sampleCpu,
  type Workload,
  windowCpu
} from "../support/interleave.ts"
import type { Polyproxy, ProxyEntry } from "../support/polyproxy.ts"
import { reapedChildrenCpu, runBounded, sleep, versionOf } from "../support/process.ts"
import { startPolyproxyVariants } from "../support/proxies.ts"
import { type Compared, startedText, type Variant as VariantOf, variantInfos } from "../support/variant.ts"
import { type Running, startHaproxy, startNginx, startNginxOrigin, startNodeProxy } from "./baselines.ts"

export const HTTP_VARIANTS = [
  "direct",
  "polyproxy",
  "polyproxy-all-cores",
  "nginx",
  "haproxy",
  "node-undici",
  "node-agent",
  "node-raw",
  "http-proxy",
  "fastify-http-proxy"
] as const
export type HttpVariantName = (typeof HTTP_VARIANTS)[number]
/** polyproxy-all-cores (`workers: 0`) only on request: on 2 cores its workers fight the generator and the origin. */
export const HTTP_DEFAULT_VARIANTS = HTTP_VARIANTS.filter((v) => v !== "polyproxy-all-cores")

const HOST = "bench.test"
const BODY_BYTES = 1024

const labels: Record<HttpVariantName, string> = {
  direct: "direct",
  polyproxy: "polyproxy 1 worker",
  "polyproxy-all-cores": "polyproxy workers: 0",
  nginx: "nginx 1 worker",
  haproxy: "HAProxy 1 thread",
  "node-undici": "node:http + undici Pool",
  "node-agent": "node:http + http.Agent",
  "node-raw": "node:http + raw socket",
  "http-proxy": "http-proxy",
  "fastify-http-proxy": "@fastify/http-proxy"
}

export interface HttpOptions {
  readonly entry: ProxyEntry
  /** `--compare`: every polyproxy variant also from that revision (bench/support/compare.ts). */
  readonly compare?: ProxyEntry | undefined
  readonly dir: string
  readonly rounds: number
  /** Whole seconds (wrk's -d). */
  readonly duration: number
  readonly warmup: number
  readonly connections: number
  readonly variants: readonly HttpVariantName[]
  readonly cpuProfDir?: string | undefined
  readonly noise: NoisePolicy
  readonly log: (line: string) => void
}

export const plannedHttpSeconds = (o: Pick<HttpOptions, "rounds" | "duration" | "warmup" | "variants">): number =>
  o.rounds * o.variants.length * (o.duration + o.warmup + 0.8) + 20

type Variant = VariantOf<HttpVariantName | Compared<HttpVariantName>>

/** One GET with the bench Host; resolves when a 200 came back. */
const probe = (port: number): Promise<void> =>
  new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/", headers: { host: HOST }, agent: false }, (res) => {
      res.resume()
      res.on("end", () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))))
    })
    req.on("error", reject)
    req.setTimeout(2_000, () => req.destroy(new Error("timeout")))
  })

const wrkArgs = (port: number, seconds: number, connections: number): string[] => [
  "-t1",
  `-c${connections}`,
  `-d${seconds}s`,
  "-H",
  `Host: ${HOST}`,
  `http://127.0.0.1:${port}/`
]

/** wrk's summary: responses, the seconds they took, non-2xx/3xx responses and socket errors. */
export const parseWrk = (out: string) => {
  const m = /(\d+) requests in ([\d.]+)(ms|s|m)\b/.exec(out)
  const seconds = m === null ? 0 : Number(m[2]) * (m[3] === "ms" ? 1e-3 : m[3] === "m" ? 60 : 1)
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0)
  const socketErrors = /Socket errors: (.*)/
    .exec(out)?.[1]
    ?.match(/\d+/g)
    ?.reduce((n, x) => n + Number(x), 0)
  return { requests: Number(m?.[1] ?? 0), seconds, non2xx, socketErrors: socketErrors ?? 0 }
}

const alive = (pid: number) => () => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

export const runHttpScenario = async (opts: HttpOptions): Promise<ScenarioResult> => {
  const log = opts.log
  const origin = await startNginxOrigin(join(opts.dir, "nginx-origin"), BODY_BYTES, probe)
  log(`http: nginx origin (return 200, ${BODY_BYTES} B) on 127.0.0.1:${origin.port}, pid ${origin.pid}`)
  const running: Running[] = []
  const proxies: Polyproxy[] = []
  const variants: Variant[] = []
  const notes: string[] = []
  const configs: Record<string, string> = { "nginx-origin": origin.config ?? "" }
  const variant = (name: HttpVariantName, r: Running, description: string): Variant => ({
    name,
    port: r.port,
    pids: [r.pid],
    alive: alive(r.pid),
    info: { name, label: labels[name], description }
  })
  try {
    for (const name of opts.variants) {
      try {
        if (name === "direct") {
          variants.push({
            ...variant(name, origin, ""),
            pids: [],
            info: {
              name,
              label: "direct",
              description: `the origin itself: ${origin.version}, \`return 200\` with a ${BODY_BYTES}-byte body, 1 worker`
            }
          })
        } else if (name === "polyproxy" || name === "polyproxy-all-cores") {
          const workers = name === "polyproxy" ? 1 : 0
          const started = await startPolyproxyVariants({
            name,
            entry: opts.entry,
            compare: opts.compare,
            dir: opts.dir,
            cpuProfDir: opts.cpuProfDir,
            workers,
            listener: (port) => ({ http: { host: "127.0.0.1", port } }),
            routes: { [HOST]: `127.0.0.1:${origin.port}` },
            // The http runs have always had polyproxy's default timeouts.
            extra: { timeouts: undefined },
            ready: probe,
            label: labels[name],
            what: "`http` listener"
          })
          proxies.push(...started.proxies)
          variants.push(...started.variants)
        } else if (name === "nginx" || name === "haproxy") {
          const start = name === "nginx" ? startNginx : startHaproxy
          const r = await start(join(opts.dir, name), origin.port, probe)
          running.push(r)
          if (r.config !== undefined) configs[name] = r.config
          variants.push(
            variant(
              name,
              r,
              name === "nginx"
                ? `${r.version}, 1 worker, upstream keepalive 256, HTTP/1.1 upstream, Host and X-Forwarded-* set`
                : `${r.version}, \`nbthread 1\`, \`mode http\`, keep-alive both sides, \`http-reuse always\`, forwardfor`
            )
          )
        } else {
          const kind = name === "fastify-http-proxy" ? "fastify" : name.startsWith("node-") ? name.slice(5) : name
          const r = await startNodeProxy(kind, origin.port)
          running.push(r)
          for (let tries = 0; ; tries++) {
            try {
              await probe(r.port)
              break
            } catch (error) {
              if (tries > 50) throw error
              await sleep(100)
            }
          }
          variants.push(variant(name, r, `${r.version} (bench/http/proxies.ts)`))
        }
        log(`http: ${startedText(variants, name)}`)
      } catch (error) {
        const message = (error as Error).message
        log(`http: ${name} could not be started: ${message}`)
        notes.push(`${name} could not be started: ${message.split("\n")[0]}`)
      }
    }
    const workload: Workload = {
      id: "get1k",
      label: `keep-alive GET, ${BODY_BYTES} B body, ${opts.connections} connections (wrk)`,
      kind: "rate",
      unit: "req/s",
      displayDivisor: 1,
      cpuPer: 1000,
      cpuUnit: "CPU s / 1k req"
    }
    const measurements = await interleave({
      workload,
      variants,
      rounds: opts.rounds,
      noise: opts.noise,
      log: (line) => log(`http ${line}`),
      measure: async (v, round, position) => {
        const timeoutMs = (opts.duration + opts.warmup + 30) * 1000
        if (opts.warmup > 0) {
          await runBounded("wrk", wrkArgs(v.port, opts.warmup, opts.connections), { env: process.env, timeoutMs })
        }
        const args = wrkArgs(v.port, opts.duration, opts.connections)
        const before = sampleCpu(v.pids, origin.pid)
        const generator = reapedChildrenCpu()
        const r = await runBounded("wrk", args, { env: process.env, timeoutMs })
        const after = sampleCpu(v.pids, origin.pid)
        const loadgenCpuSeconds = reapedChildrenCpu() - generator
        const w = parseWrk(r.stdout)
        if (r.code !== 0 || w.requests === 0 || w.seconds === 0) {
          throw new Error(`wrk exit ${r.code}: ${`${r.stdout}\n${r.stderr}`.trim().split("\n").slice(-4).join(" / ")}`)
        }
        // Only 200s count: a proxy answering 502 fast must not look fast.
        if (w.non2xx > 0) throw new Error(`${w.non2xx} of ${w.requests} responses were not 2xx/3xx`)
        return {
          variant: v.name,
          round,
          position,
          command: `wrk ${args.join(" ")}`,
          rate: w.requests / w.seconds,
          ops: w.requests,
          seconds: w.seconds,
          errors: w.socketErrors,
          loadgenCpuSeconds,
          ...cpuFields(windowCpu(before, after), 1000, w.requests)
        }
      }
    })
    return {
      scenario: "http",
      title: "http: `http` listener vs nginx, HAProxy and the Node proxies (wrk, nginx origin)",
      workloads: [workload],
      variants: variantInfos(opts.variants, variants, (name) => labels[name as HttpVariantName]),
      reference: "direct",
      ...(variants.some((v) => v.name === "nginx") ? { compareTo: "nginx" } : {}),
      measurements,
      setup: {
        rounds: opts.rounds,
        durationSeconds: opts.duration,
        warmupSeconds: opts.warmup,
        connections: opts.connections,
        generator: `wrk -t1 -c${opts.connections} (${versionOf("wrk", ["-v"]) || "wrk"})`,
        origin: `nginx \`return 200\`, ${BODY_BYTES}-byte text/plain body, 1 worker`,
        request: `GET / with Host: ${HOST}, no body`,
        configs
      },
      notes: [
        ...notes,
        `${opts.rounds} round(s); each run: a ${opts.warmup} s wrk run unmeasured, then ${opts.duration} s measured; ` +
          "order rotated every round. Only 2xx responses count; a run with any other status fails.",
        "Proxy CPU = utime+stime of the variant's process tree (polyproxy's primary and workers, nginx's master and " +
          "worker) from /proc over the measured wrk run; generator CPU = wrk's own."
      ]
    }
  } finally {
    for (const r of [...running, ...proxies]) await r.stop().catch(() => {})
    await origin.stop().catch(() => {})
  }
}
