// The sni scenario of bench/run.ts: new TLS connections per second passed through by server name. polyproxy's tcp
// listener with `route: sni` (the ClientHello peeked, routed by its server name) and with a fixed route (no peek),
// the minimal Node relay (fixed, the Node floor) and HAProxy `req.ssl_sni` (1 thread), beside the origins reached
// directly. The client is the C load generator's tls mode, the origins bench/native/tls-origin.c: TLS is between
// them, the proxies only relay bytes.
import { join } from "node:path"
import * as tls from "node:tls"
import { makeSiteCerts } from "../../spec/support/certs.ts"
import { type Baseline, startHaproxySni } from "../support/baselines.ts"
import { type ReadyChild, startHelper, startNodeRelay } from "../support/children.ts"
import {
  compareToHaproxy,
  interleave,
  type NoisePolicy,
  type ScenarioResult,
  type Workload
} from "../support/interleave.ts"
import { runLoadgen } from "../support/loadgen.ts"
import { benchBinaries } from "../support/native.ts"
import type { Polyproxy, ProxyEntry } from "../support/polyproxy.ts"
import { versionOf } from "../support/process.ts"
import { startPolyproxyVariants } from "../support/proxies.ts"
import {
  type Compared,
  directVariant,
  processVariant,
  startedText,
  type Variant as VariantOf,
  variantInfos
} from "../support/variant.ts"

export const SNI_VARIANTS = ["direct", "polyproxy", "polyproxy-fixed", "node-relay", "haproxy"] as const
export type SniVariantName = (typeof SNI_VARIANTS)[number]
const HOSTS = ["a.bench.test", "b.bench.test"] as const

export const SNI_WORKLOAD: Workload = {
  id: "tls",
  label: "new TLS connections: TLS 1.3 resumed with a ticket, answer, close; 32 concurrent",
  kind: "rate",
  unit: "conn/s",
  displayDivisor: 1,
  cpuPer: 1000,
  cpuUnit: "CPU s / 1k conn"
}

export interface SniOptions {
  readonly entry: ProxyEntry
  /** `--compare`: every polyproxy variant also from that revision (bench/support/compare.ts). */
  readonly compare?: ProxyEntry | undefined
  readonly dir: string
  readonly rounds: number
  readonly duration: number
  readonly warmup: number
  readonly variants: readonly SniVariantName[]
  readonly cpuProfDir?: string | undefined
  readonly lifetimeSeconds: number
  readonly noise: NoisePolicy
  readonly log: (line: string) => void
}

type Variant = VariantOf<SniVariantName | Compared<SniVariantName>> & { readonly targets: string }

export const plannedSniSeconds = (o: Pick<SniOptions, "rounds" | "duration" | "warmup" | "variants">): number =>
  o.rounds * o.variants.length * (o.duration + o.warmup + 0.8) + 15

/** One verified TLS handshake through `port` to `servername`, read to the origin's "ok". */
const handshakeThrough = (port: number, servername: string, ca: ReadonlyArray<string>) =>
  new Promise<void>((resolve, reject) => {
    const s = tls.connect({ host: "127.0.0.1", port, servername, ca: [...ca] })
    const timer = setTimeout(() => {
      s.destroy()
      reject(new Error("no answer in 2 s"))
    }, 2_000)
    s.once("data", () => {
      clearTimeout(timer)
      s.destroy()
      resolve()
    })
    s.once("error", (error) => {
      clearTimeout(timer)
      reject(error)
    })
  })

export const runSniScenario = async (opts: SniOptions): Promise<ScenarioResult> => {
  const log = opts.log
  const sites = await Promise.all(HOSTS.map((h) => makeSiteCerts([h])))
  const caFiles = sites.map((s) => s.ca.certPath).join(",")
  const caPems = sites.map((s) => s.ca.cert)
  const origin = await startHelper(
    "TLS origin",
    benchBinaries().tlsOrigin,
    [
      "--tickets",
      ...sites.map((s) => `${s.server.certPath}:${s.server.keyPath}`),
      "--lifetime",
      String(opts.lifetimeSeconds)
    ],
    (line) => (JSON.parse(line) as { ports?: number[] }).ports
  )
  const originPorts = origin.info
  log(`sni: TLS origins on 127.0.0.1:${originPorts.join(", ")}, pid ${origin.pid}`)
  const both = (port: number) => HOSTS.map((h) => `${h}@${port}`).join(",")
  const proxies: Polyproxy[] = []
  const baselines: Baseline[] = []
  const relays: ReadyChild<number>[] = []
  const variants: Variant[] = []
  const notes: string[] = []
  try {
    for (const name of opts.variants) {
      try {
        if (name === "direct") {
          const v = directVariant(name, originPorts[0]!, "the C TLS origins themselves (bench/native/tls-origin.c)")
          variants.push({ ...v, targets: HOSTS.map((h, i) => `${h}@${originPorts[i]}`).join(",") })
        } else if (name === "polyproxy" || name === "polyproxy-fixed") {
          const sni = name === "polyproxy"
          const started = await startPolyproxyVariants({
            name,
            entry: opts.entry,
            compare: opts.compare,
            dir: opts.dir,
            cpuProfDir: opts.cpuProfDir,
            listener: (port) => ({ tcp: { host: "127.0.0.1", port, route: sni ? "sni" : HOSTS[0] } }),
            routes: Object.fromEntries(HOSTS.map((h, i) => [h, `127.0.0.1:${originPorts[i]}`])),
            ready: (port) => handshakeThrough(port, HOSTS[0], caPems),
            label: sni ? "polyproxy `route: sni`" : "polyproxy fixed route",
            what: `\`tcp\` listener, ${sni ? "`route: sni` (ClientHello peeked)" : `\`route: ${HOSTS[0]}\` (no peek)`}`
          })
          proxies.push(...started.proxies)
          for (const v of started.variants)
            variants.push({ ...v, targets: sni ? both(v.port) : `${HOSTS[0]}@${v.port}` })
        } else if (name === "node-relay") {
          const relay = await startNodeRelay(originPorts[0]!)
          relays.push(relay)
          const v = processVariant(
            name,
            relay.info,
            relay,
            "minimal Node relay",
            "the Node floor (bench/support/relay.ts), fixed to one origin: net.createServer + net.connect + " +
              "data/drain handlers, nothing else"
          )
          variants.push({ ...v, targets: `${HOSTS[0]}@${relay.info}` })
        } else {
          const b = await startHaproxySni({
            dir: join(opts.dir, "haproxy-sni"),
            backendPort: 0,
            routes: HOSTS.map((h, i) => [h, originPorts[i]!] as const),
            ready: (port) => handshakeThrough(port, HOSTS[1], caPems)
          })
          baselines.push(b)
          const v = processVariant(name, b.port, b, "HAProxy `req.ssl_sni`", `${b.version}, \`nbthread 1\``)
          variants.push({ ...v, targets: both(b.port) })
        }
        log(`sni: ${startedText(variants, name)}`)
      } catch (error) {
        const message = (error as Error).message
        log(`sni: ${name} could not be started: ${message}`)
        notes.push(`${name} could not be started: ${message.split("\n")[0]}`)
      }
    }
    const measurements = await interleave({
      workload: SNI_WORKLOAD,
      variants,
      rounds: opts.rounds,
      noise: opts.noise,
      log: (line) => log(`sni ${line}`),
      measure: async (variant, round, position) => ({
        variant: variant.name,
        round,
        position,
        ...(await runLoadgen({
          workload: SNI_WORKLOAD,
          variant,
          backendPid: origin.pid,
          args: [
            "--mode",
            "tls",
            "--targets",
            variant.targets,
            "--ca",
            caFiles,
            "--resume",
            "1",
            "--duration",
            String(opts.duration),
            "--warmup",
            String(opts.warmup)
          ],
          seconds: opts.duration + opts.warmup
        }))
      })
    })
    return {
      scenario: "sni",
      title: "sni: TLS passthrough by server name, polyproxy vs the minimal Node relay and HAProxy `req.ssl_sni`",
      workloads: [SNI_WORKLOAD],
      variants: variantInfos(opts.variants, variants),
      reference: "direct",
      ...compareToHaproxy(variants),
      measurements,
      setup: {
        rounds: opts.rounds,
        durationSeconds: opts.duration,
        warmupSeconds: opts.warmup,
        origin:
          "bench/native/tls-origin.c --tickets (C, OpenSSL, epoll, one process, one stateless TLS 1.3 ticket per full handshake)",
        loadgen: "bench/native/loadgen.c --mode tls --resume 1 (C, OpenSSL, epoll, one process per run)",
        openssl: versionOf("openssl", ["version"]),
        baselineConfigs: Object.fromEntries(baselines.map((b) => [b.name, b.config]))
      },
      notes: [
        ...notes,
        "Each connection: TCP connect, a TLS 1.3 handshake that resumes the name's session with the origin's ticket " +
          "(psk_dhe_ke: a fresh X25519 exchange, no certificate sent), the origin writes `ok` and closes, the client " +
          "reads to the end and closes. Before the run one full handshake per name (ECDSA P-256, the certificate " +
          "verified against that origin's own CA and name) fetches the ticket; the generator reports how many " +
          "connections were resumed (all, or the run fails). `route: sni`, HAProxy and direct alternate two server names and origins; the " +
          "fixed route and the relay go to the first.",
        "Why resumption: a full handshake costs the generator ≈ 0.6 ms of CPU and the origin about as much (OpenSSL " +
          "3.0), so on 2 cores direct ran barely faster than HAProxy and every ratio was `bound`. A passthrough " +
          "proxy does the same work for either handshake (read the ClientHello, pick the route, relay), so the " +
          "cheaper handshake leaves the proxy's own cost visible. The proxy's CPU per connection stays the figure " +
          "that carries."
      ]
    }
  } finally {
    for (const p of proxies) await p.stop().catch(() => {})
    for (const b of baselines) await b.stop().catch(() => {})
    for (const r of relays) r.stop()
    origin.stop()
  }
}
