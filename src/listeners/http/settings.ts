// The HTTP listener's knobs, resolved once at start: milliseconds, parsed CIDR lists, the fixed backend.
import type { HttpListenerOptions } from "../../config/Config.ts"
import { parseEndpoint, type VettedEndpoint } from "../../domain/Endpoint.ts"
import { cidrListContains, parseCidrList } from "../../domain/SpecialRanges.ts"
import type { ProtocolContext } from "../ProtocolContext.ts"
import type { ClientTlsOptions } from "../tls.ts"
import { type DirectAnswer, directAnswer } from "./direct.ts"

export interface HttpSettings {
  readonly name: string
  /** TLS terminates here: X-Forwarded-Proto is https and h2 is offered through ALPN. */
  readonly secure: boolean
  readonly telemetry: boolean
  readonly preserveHost: boolean
  /** Whether incoming X-Forwarded-* / Forwarded from this peer are extended (else replaced). */
  readonly trusts: (ip: string) => boolean
  readonly h2c: boolean
  readonly maxHeaderSize: number
  /** Idle time between requests on a client connection. */
  readonly keepAliveMs: number
  /**
   * A request head must be complete this long after its first byte (slow-loris), and a new connection must send
   * its first request within it; 0 = no limit (keepAliveMs then bounds both).
   */
  readonly headMs: number
  /** Inactivity of an upgraded (WebSocket) connection; 0 = none. */
  readonly tunnelIdleMs: number
  /** A tunnel one side has half-closed is closed after this long without traffic; 0 = never. */
  readonly tunnelHalfCloseMs: number
  readonly connectMs: number
  readonly upstreamHeadersMs: number
  readonly upstreamBodyMs: number
  readonly upstreamKeepAliveMs: number
  readonly upstreamMaxConnections: number
  /** false: one backend connection per request, asked to close after its response. */
  readonly upstreamKeepAlive: boolean
  readonly upstreamTls: ClientTlsOptions | undefined
  readonly fixedBackend: VettedEndpoint | undefined
  readonly directResponse: DirectAnswer | undefined
  readonly fastPath: boolean
}

export const defaultHttpOptions: HttpListenerOptions = {
  telemetry: false,
  preserveHost: true,
  trustForwarded: false,
  h2c: true,
  certificates: [],
  maxHeaderSize: 16_384,
  keepAliveTimeout: 5,
  upstream: { headersTimeout: 60, bodyTimeout: 60, keepAliveTimeout: 4, maxConnections: 256, keepAlive: true },
  fastPath: false
}

const never = () => false
const always = () => true

export const httpSettings = (
  ctx: ProtocolContext,
  timeouts: {
    readonly handshake: number
    readonly connect: number
    readonly idle: number
    readonly halfClose?: number | undefined
  }
): HttpSettings => {
  const o = ctx.listener.http ?? defaultHttpOptions
  let trusts: (ip: string) => boolean = never
  if (o.trustForwarded === true) trusts = always
  else if (Array.isArray(o.trustForwarded)) {
    const list = parseCidrList(o.trustForwarded)
    if (typeof list !== "string") trusts = (ip) => cidrListContains(list, ip)
  }
  let fixedBackend: VettedEndpoint | undefined
  if (o.fixedBackend !== undefined) {
    const e = parseEndpoint(o.fixedBackend)
    if (typeof e !== "string") fixedBackend = { ...e, ip: e.host, family: e.host.includes(":") ? 6 : 4 }
  }
  return {
    name: ctx.name,
    secure: ctx.tls !== undefined,
    telemetry: o.telemetry,
    preserveHost: o.preserveHost,
    trusts,
    h2c: o.h2c,
    maxHeaderSize: o.maxHeaderSize,
    keepAliveMs: o.keepAliveTimeout * 1000,
    headMs: timeouts.handshake * 1000,
    tunnelIdleMs: timeouts.idle * 1000,
    tunnelHalfCloseMs: (timeouts.halfClose ?? 60) * 1000,
    connectMs: timeouts.connect * 1000,
    upstreamHeadersMs: o.upstream.headersTimeout * 1000,
    upstreamBodyMs: o.upstream.bodyTimeout * 1000,
    upstreamKeepAliveMs: o.upstream.keepAliveTimeout * 1000,
    upstreamMaxConnections: o.upstream.maxConnections,
    upstreamKeepAlive: o.upstream.keepAlive,
    upstreamTls: ctx.upstreamTls,
    fixedBackend,
    directResponse: o.directResponse && directAnswer(o.directResponse),
    fastPath: o.fastPath
  }
}
