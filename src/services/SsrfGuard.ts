// The "vet" phase: a Resolver names a backend, we decide whether the proxy may dial it, and pin the IP
// we decided on so the dialer never resolves the name again (a second lookup could rebind it).

import * as dns from "node:dns"
import * as net from "node:net"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { type Endpoint, formatEndpoint, type VettedEndpoint } from "../domain/Endpoint.ts"
import { type ProxyError, proxyError } from "../domain/ProxyError.ts"
import { type CidrList, cidrListContains, classifyIp, isUnspecifiedIp, parseCidrList } from "../domain/SpecialRanges.ts"

/** Same shape as `dns.promises.lookup(host, { all: true })`, so tests can inject answers. */
export type LookupFn = (host: string) => Promise<ReadonlyArray<{ address: string; family: number }>>

export interface SsrfOptions {
  /** CIDR ranges of special-purpose addresses that may still be dialed (config key `ssrf.allow`). */
  readonly allow: ReadonlyArray<string>
  readonly lookup?: LookupFn
}

type Vet = (endpoint: Endpoint) => Effect.Effect<VettedEndpoint, ProxyError>

const lookupTimeout = "5 seconds"

const systemLookup: LookupFn = (host) => dns.promises.lookup(host, { all: true, order: "verbatim" })

const label = "[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
const hostnamePattern = new RegExp(`^(?=.{1,253}$)${label}(?:\\.${label})*$`)
// The last label decides, as in the WHATWG URL host parser: getaddrinfo hands such names to inet_aton,
// which reads 2130706433, 0x7f000001, 0177.0.0.1 and 127.1 all as 127.0.0.1.
const numericLabel = /(?:^|\.)(?:0x[0-9a-f]*|\d+)$/

type Host = { readonly literal: 4 | 6; readonly text: string } | { readonly literal: 0; readonly text: string }

/** Lower-cases, drops brackets and one trailing dot; returns a refusal message for names we will not resolve. */
const normaliseHost = (raw: string): Host | string => {
  let host = raw.startsWith("[") && raw.endsWith("]") ? raw.slice(1, -1) : raw
  if (host.endsWith(".")) host = host.slice(0, -1)
  host = host.toLowerCase()
  if (host.includes("%")) return `host "${raw}" has an IPv6 zone id, which names a local interface`
  const family = net.isIP(host)
  if (family === 4 || family === 6) return { literal: family, text: host }
  if (!hostnamePattern.test(host)) return `host "${raw}" is not a valid hostname`
  if (numericLabel.test(host)) {
    return `host "${raw}" looks numeric but is not a dotted-quad IPv4 address; the system resolver could read it as one (127.1 and 2130706433 both mean 127.0.0.1)`
  }
  return { literal: 0, text: host }
}

// The proxy's own rule refuses, not the resolver: `policy`. The address stays in the log; the client is told only
// that the proxy's policy refused its backend (listeners/refusal.ts).
const refuse = (message: string): ProxyError =>
  proxyError("FORBIDDEN", "policy", `${message}; refused by the SSRF guard`)

/** Why `ip` may not be dialed ("10.0.0.5, a private address (10.0.0.0/8)"), or undefined when it may. */
const objection = (allow: CidrList, ip: string): string | undefined => {
  if (isUnspecifiedIp(ip)) return `${ip}, the unspecified address, which is never a backend (not even via ssrf.allow)`
  const special = classifyIp(ip)
  if (special === undefined || cidrListContains(allow, ip)) return undefined
  return `${ip}, ${special.name} (${special.range}), and ssrf.allow does not include it`
}

const dnsFailure = (endpoint: Endpoint, host: string, why: string, cause?: unknown): ProxyError =>
  proxyError("CONNECT_FAILED", "backend", `endpoint ${formatEndpoint(endpoint)}: DNS lookup of "${host}" ${why}`, {
    cause
  })

const errorCode = (cause: unknown): string =>
  typeof cause === "object" && cause !== null && "code" in cause && typeof cause.code === "string"
    ? cause.code
    : String(cause)

const makeVet = (allow: CidrList, lookup: LookupFn): Vet => {
  const checkAddresses = (
    endpoint: Endpoint,
    host: string,
    answers: ReadonlyArray<{ address: string }>
  ): Effect.Effect<VettedEndpoint, ProxyError> => {
    const first = answers[0]
    if (first === undefined) return Effect.fail(dnsFailure(endpoint, host, "returned no addresses"))
    // Vet every answer, not only the one we dial: whoever controls the zone chooses the order, and a
    // client library (or a retry) may pick another one.
    for (const { address } of answers) {
      const why = objection(allow, address)
      if (why !== undefined) {
        const all = answers.length > 1 ? ` (among ${answers.map((a) => a.address).join(", ")})` : ""
        return Effect.fail(refuse(`endpoint ${formatEndpoint(endpoint)} resolves to ${why}${all}`))
      }
    }
    const family = net.isIP(first.address)
    // objection() refuses anything that is not an IP, so family is 4 or 6 here.
    return Effect.succeed({ ...endpoint, ip: first.address, family: family === 6 ? 6 : 4 })
  }

  return Effect.fnUntraced(function* (endpoint: Endpoint) {
    const host = normaliseHost(endpoint.host)
    if (typeof host === "string") return yield* Effect.fail(refuse(`endpoint ${formatEndpoint(endpoint)}: ${host}`))
    if (host.literal !== 0) {
      const why = objection(allow, host.text)
      if (why !== undefined) return yield* Effect.fail(refuse(`endpoint ${formatEndpoint(endpoint)} is ${why}`))
      return { ...endpoint, ip: host.text, family: host.literal } satisfies VettedEndpoint
    }
    const name = host.text
    const answers = yield* Effect.tryPromise({
      try: () => lookup(name),
      catch: (cause) => dnsFailure(endpoint, name, `failed (${errorCode(cause)})`, cause)
    }).pipe(
      Effect.timeoutOrElse({
        duration: lookupTimeout,
        orElse: () => Effect.fail(dnsFailure(endpoint, name, `did not answer within ${lookupTimeout}`))
      })
    )
    return yield* checkAddresses(endpoint, name, answers)
  })
}

const build = (options: SsrfOptions): Vet | string => {
  const allow = parseCidrList(options.allow)
  return typeof allow === "string" ? `ssrf.allow: ${allow}` : makeVet(allow, options.lookup ?? systemLookup)
}

// Tests dial local servers by literal IP or "localhost" and must never wait on real DNS.
const testLookup: LookupFn = async (host) => {
  if (host === "localhost") return [{ address: "127.0.0.1", family: 4 }]
  throw new Error(`SsrfGuard.layerTest does no DNS; use an IP literal or "localhost", not "${host}"`)
}

export class SsrfGuard extends Context.Service<
  SsrfGuard,
  {
    /** Resolves the host once (DNS), refuses special-purpose addresses not in the allow list, returns the IP to dial. */
    readonly vet: Vet
  }
>()("polyproxy/SsrfGuard") {
  /** Fails with a message naming the entry when `allow` holds something that is not a CIDR range. */
  static readonly make = (options: SsrfOptions): Effect.Effect<SsrfGuard["Service"], string> =>
    Effect.suspend(() => {
      const vet = build(options)
      return typeof vet === "string" ? Effect.fail(vet) : Effect.succeed(SsrfGuard.of({ vet }))
    })

  static readonly layer = (options: SsrfOptions): Layer.Layer<SsrfGuard, string> =>
    Layer.effect(SsrfGuard, SsrfGuard.make(options))

  /**
   * Allows every address except the unspecified ones, without DNS: hosts must be IP literals or "localhost".
   * Other names fail with CONNECT_FAILED, as an unknown name would in production.
   */
  static readonly layerTest: Layer.Layer<SsrfGuard> = Layer.succeed(
    SsrfGuard,
    SsrfGuard.of({ vet: build({ allow: ["0.0.0.0/0", "::/0"], lookup: testLookup }) as Vet })
  )
}
