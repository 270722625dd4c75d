// How a pool's server connections are opened, whatever the protocol: the deadlines, and TLS towards the server per
// the route's `metadata.tls` (over the listener's `upstreamTls`), with the part of the pool's key that sets a TLS
// setting apart (two routes to one backend with different CAs must not share server connections).
import * as net from "node:net"
import type * as tls from "node:tls"
import type { VettedEndpoint } from "../../domain/Endpoint.ts"
import type { Route } from "../../domain/Route.ts"
import { type ClientTlsOptions, upstreamTlsFor } from "../tls.ts"
import { clientConnectOptions } from "../tlsProfile.ts"

/** TLS towards the server after the protocol's request for it, with the name to send and check (undefined: an IP). */
export type UpstreamTls = ClientTlsOptions & { readonly servername: string | undefined }

/** How a pool opens its connections: made once per pool. */
export interface ServerConnOptions {
  /** The TCP connect; 0: the kernel's. */
  readonly connectTimeoutMs: number
  /** From the TCP connect to the end of the login: TLS, the login (and a reset before reuse). */
  readonly loginTimeoutMs: number
  readonly tls: tls.ConnectionOptions | undefined
}

export const serverConnOptions = (o: {
  readonly connectTimeoutMs: number
  readonly loginTimeoutMs: number
  readonly tls: UpstreamTls | undefined
}): ServerConnOptions => ({
  connectTimeoutMs: o.connectTimeoutMs,
  loginTimeoutMs: o.loginTimeoutMs,
  tls: o.tls === undefined ? undefined : clientConnectOptions(o.tls)
})

/**
 * TLS towards `target` for `route` (undefined: plain), the name checked being the route's host unless an IP, and its
 * key: "" when plain, else every setting that changes the connection.
 */
export const poolTls = (
  route: Route,
  listenerDefault: ClientTlsOptions | undefined,
  target: VettedEndpoint
): { readonly tls: UpstreamTls | undefined; readonly key: string } => {
  const t = upstreamTlsFor(route, listenerDefault)
  if (t === undefined) return { tls: undefined, key: "" }
  const tls = { ...t, servername: t.servername ?? (net.isIP(target.host) ? undefined : target.host) }
  const key = `tls|${tls.servername ?? ""}|${tls.rejectUnauthorized ? 1 : 0}|${tls.minVersion ?? ""}|${String(tls.ca ?? "")}`
  return { tls, key }
}
