// `route: sni`: peek the TLS ClientHello for its server name and pass the TLS stream through untouched (the backend
// terminates TLS, so the client verifies the backend's own certificate), like HAProxy `req.ssl_sni` / nginx
// `ssl_preread`.
import type * as net from "node:net"
import * as Effect from "effect/Effect"
import { AlertDescription, type ClientHello, decodeClientHello, encodeAlert } from "../../codec/tls/index.ts"
import { type ProxyError, proxyError } from "../../domain/ProxyError.ts"
import type { ClientConnection, Identified, Protocol } from "../Protocol.ts"
import { type ReadFrame, readFrame, readFrameNow } from "../readFrame.ts"

/**
 * The codec refuses a ClientHello over 16 KB; this bounds the bytes buffered on the way, record headers of a
 * fragmented hello included.
 */
const maxPeekBytes = 17 * 1024

/** Every byte read, in order: the ClientHello and whatever arrived behind it. */
export const everything = (read: ReadFrame<unknown>): Buffer => {
  const { bytes, rest } = read
  if (rest.length === 0) return bytes
  // readFrame slices both from one buffer: view them together instead of copying.
  return rest.buffer === bytes.buffer && rest.byteOffset === bytes.byteOffset + bytes.length
    ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length + rest.length)
    : Buffer.concat([bytes, rest])
}

/** The ClientHello's server name as the routing key (lower case), or the default route, or why not. */
const identifyBy = (defaultRoute: string | undefined) => {
  const noServerName = proxyError(
    "FORBIDDEN",
    "client",
    "TLS ClientHello without a server name (SNI), and listeners.tcp.defaultRoute is not set"
  )
  return (client: net.Socket, read: ReadFrame<ClientHello>): Identified | ProxyError => {
    const name = read.value.serverName
    if (name === undefined) {
      return defaultRoute === undefined ? noServerName : { resourceId: defaultRoute, client, replay: everything(read) }
    }
    // DNS names are case-insensitive: one routing key per name, however the client spelled it.
    const host = name.toLowerCase()
    return { resourceId: host, client, sni: host, replay: everything(read) }
  }
}

const isError = (r: Identified | ProxyError): r is ProxyError => "reason" in r

export const sniIdentify = (
  defaultRoute: string | undefined
): ((conn: ClientConnection) => Effect.Effect<Identified, ProxyError>) => {
  const identify = identifyBy(defaultRoute)
  return (conn) =>
    Effect.flatMap(readFrame(conn.client, decodeClientHello, maxPeekBytes), (read) => {
      const r = identify(conn.client, read)
      return isError(r) ? Effect.fail(r) : Effect.succeed(r)
    })
}

/** sniIdentify in the callback form, for the listener's fiber-free path (`Protocol.identifyNow`). */
export const sniIdentifyNow = (defaultRoute: string | undefined): NonNullable<Protocol["identifyNow"]> => {
  const identify = identifyBy(defaultRoute)
  return (client, done) =>
    readFrameNow(client, decodeClientHello, maxPeekBytes, (read, error) => {
      if (error !== undefined) return done(undefined, error)
      const r = identify(client, read!)
      if (isError(r)) done(undefined, r)
      else done(r, undefined)
    })
}

// Built once: refusals send one of these constant records.
const alerts = {
  notFound: encodeAlert(AlertDescription.UnrecognizedName),
  forbidden: encodeAlert(AlertDescription.AccessDenied),
  internal: encodeAlert(AlertDescription.InternalError)
}

/**
 * A client whose ClientHello was read gets a fatal TLS alert it can report ("tlsv1 unrecognized name"); one that
 * never sent a whole ClientHello (garbage, too slow) is just closed, as it may not speak TLS at all.
 */
export const sniRefuse = (client: net.Socket, error: ProxyError): void => {
  client.resume()
  switch (error.reason) {
    case "BAD_REQUEST":
    case "HANDSHAKE_TIMEOUT":
      client.end()
      return
    case "NOT_FOUND":
      client.end(alerts.notFound)
      return
    case "FORBIDDEN":
      client.end(alerts.forbidden)
      return
    default:
      client.end(alerts.internal)
  }
}
