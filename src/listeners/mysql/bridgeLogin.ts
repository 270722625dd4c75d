// replay of a mysql listener without `auth` (the backend checks the login): after dialing, the backend's greeting
// (and TLS to it when the route asks), the AuthSwitchRequest to the client with the backend's plugin and nonce, the
// HandshakeResponse41 to the backend with the client's recomputed answer, then the rest of the exchange passed on
// with renumbered sequence ids (authBridge.ts) up to the backend's OK or ERR. mysql.ts's header says why.
import type * as net from "node:net"
import * as Effect from "effect/Effect"
import {
  AuthPlugin,
  Capability,
  capabilityNames,
  decodePacket,
  encodeAuthSwitchRequest,
  encodeHandshakeResponse41,
  encodePacket,
  encodeSslRequest,
  type HandshakeResponse41,
  hasCapability,
  Marker,
  nextSequenceId,
  parseErrPacket,
  parseHandshakeV10
} from "../../codec/mysql/index.ts"
import { type ProxyError, proxyError } from "../../domain/ProxyError.ts"
import type { Route } from "../../domain/Route.ts"
import type { Identified } from "../Protocol.ts"
import { readFrame } from "../readFrame.ts"
import { type ClientTlsOptions, connectTls, upstreamTlsFor } from "../tls.ts"
import { bridgeAuth, cleartextPlugins, type Turn, tlsMismatch } from "./authBridge.ts"
import { backendLogin, backendNeeds, type Greetings } from "./capabilities.ts"
import { nextServerSequence } from "./errPacket.ts"

/** The whole client handshake, packet by packet, stays under 16 KB (header included). */
export const maxHandshakeBytes = 16 * 1024
export const maxHandshakePayload = maxHandshakeBytes - 4

const nul = Buffer.from([0])

const decodeAnyPacket = (buf: Buffer) => decodePacket(buf, maxHandshakePayload)

const backendFailure = (message: string) => proxyError("CONNECT_FAILED", "backend", message)

/** The listener's side of the bridge. */
export interface BridgeHop {
  /** The capabilities the greeting offered. */
  readonly offered: number
  /** The listener's greetings, which learn from each backend's. */
  readonly greetings: Greetings
  /** TLS towards backends unless a route's metadata.tls says otherwise. */
  readonly upstreamTls: ClientTlsOptions | undefined
  /** Milliseconds for the login once the backend is dialed; 0 = none. */
  readonly authTimeoutMs: number
}

/** What identify learned, for replay: the parsed login and where the client's numbering stands. */
export interface MysqlState {
  readonly response: HandshakeResponse41
  /** Sequence id of the proxy's next packet to the client. */
  readonly toClient: number
  readonly clientTls: boolean
  /** The MariaDB extras the client's greeting offered. */
  readonly offeredMariaDb: number
  /** The connection id the client's greeting carried. */
  readonly connectionId: number
  /** The backend's connection id, from its greeting (replay). */
  backendId: number
}

const authenticate = Effect.fnUntraced(function* (
  hop: BridgeHop,
  identified: Identified,
  route: Route,
  dialed: net.Socket,
  turn: Turn
) {
  const state = identified.state as MysqlState
  const client = identified.client
  const response = state.response

  const greetingRead = yield* readFrame(dialed, decodeAnyPacket, maxHandshakeBytes).pipe(
    Effect.mapError((e) => backendFailure(`backend greeting: ${e.message}`))
  )
  const payload = greetingRead.value.payload
  if (payload[0] === Marker.ERR) {
    // e.g. 1040 Too many connections, 1129 host blocked: the client gets the server's own words.
    client.write(encodePacket(payload, state.toClient))
    const err = parseErrPacket(payload)
    const text = err._tag === "ErrPacket" ? `${err.code} ${err.message}` : "malformed ERR"
    const reason = err._tag === "ErrPacket" && err.code === 1040 ? "UNAVAILABLE" : "CONNECT_FAILED"
    return yield* proxyError(reason, "backend", `backend refused: ${text}`, { quiet: true })
  }
  const greeting = parseHandshakeV10(payload)
  if (greeting._tag === "Invalid") return yield* backendFailure(`backend greeting: ${greeting.reason}`)
  // Before any check: a client refused below for extras its backend lacks is greeted right when it reconnects.
  hop.greetings.learn(greeting)
  state.backendId = greeting.connectionId
  const backendCaps = greeting.capabilities
  if ((backendCaps & backendNeeds) >>> 0 !== backendNeeds) {
    return yield* backendFailure(
      `backend ${greeting.serverVersion} lacks ${capabilityNames(backendNeeds & ~backendCaps).join(", ")}`
    )
  }
  const tlsOptions = upstreamTlsFor(route, hop.upstreamTls)
  const database = response.database || undefined
  const attributes = response.attributes
  const login = backendLogin(response, greeting, {
    offered: hop.offered,
    offeredMariaDb: state.offeredMariaDb,
    database: database !== undefined,
    attributes: attributes !== undefined,
    tls: tlsOptions !== undefined
  })
  if ("lacks" in login) {
    const message = `backend ${greeting.serverVersion} lacks ${login.lacks}, which the client negotiated`
    return yield* proxyError("CONNECT_FAILED", "backend", message, {
      clientMessage: `the server lacks ${login.lacks}, which this connection negotiated with the proxy's greeting`
    })
  }
  const { flags, mariadbCapabilities } = login

  let backend = dialed
  let toBackend = 1
  if (tlsOptions) {
    if (!hasCapability(backendCaps, Capability.SSL)) {
      return yield* backendFailure(`backend ${route.endpoint.host} does not offer TLS`)
    }
    if (greetingRead.rest.length > 0) return yield* backendFailure("backend sent data before TLS started")
    dialed.write(
      encodePacket(
        encodeSslRequest({
          capabilities: flags,
          maxPacketSize: response.maxPacketSize,
          characterSet: response.characterSet,
          mariadbCapabilities
        }),
        toBackend++
      )
    )
    backend = yield* connectTls(dialed, { ...tlsOptions, servername: tlsOptions.servername ?? route.endpoint.host })
  }

  const plugin = greeting.authPlugin || AuthPlugin.NATIVE
  if (state.clientTls && !tlsOptions && cleartextPlugins.has(plugin)) {
    return yield* tlsMismatch(plugin, state.clientTls, false)
  }
  client.write(
    encodePacket(encodeAuthSwitchRequest(plugin, Buffer.concat([greeting.authPluginData, nul])), state.toClient)
  )
  nextServerSequence.set(client, (state.toClient + 2) & 0xff)
  turn.waitingFor = "client"
  const answer = yield* readFrame(client, decodeAnyPacket, maxHandshakeBytes)
  turn.waitingFor = "backend"

  backend.write(
    encodePacket(
      encodeHandshakeResponse41({
        capabilities: flags,
        maxPacketSize: response.maxPacketSize,
        characterSet: response.characterSet,
        user: response.user,
        authResponse: answer.value.payload,
        database,
        authPlugin: plugin,
        attributes,
        mariadbCapabilities
      }),
      toBackend++
    )
  )
  yield* bridgeAuth({
    client,
    backend,
    toClient: nextSequenceId(answer.value),
    toBackend,
    plugin,
    clientTls: state.clientTls,
    backendTls: tlsOptions !== undefined,
    clientRest: answer.rest,
    backendRest: tlsOptions ? Buffer.alloc(0) : greetingRead.rest,
    maxPayload: maxHandshakePayload,
    turn
  })
  nextServerSequence.delete(client)
  return backend
})

/** The deadline's error names the side that stopped answering: the backend (2003) or the client (1043). */
const authTimeout = (turn: Turn, ms: number) => {
  const seconds = ms / 1000
  const backendLate = `backend did not complete the login within ${seconds}s`
  return turn.waitingFor === "backend"
    ? proxyError("CONNECT_FAILED", "backend", backendLate, { clientMessage: backendLate })
    : proxyError("HANDSHAKE_TIMEOUT", "client", `authentication did not finish within ${seconds}s`)
}

/** replay of a listener without `auth`: the backend's login through the auth switch, within `hop.authTimeoutMs`. */
export const bridgeLogin = (
  hop: BridgeHop,
  identified: Identified,
  route: Route,
  dialed: net.Socket
): Effect.Effect<net.Socket, ProxyError> => {
  const turn: Turn = { waitingFor: "backend" }
  const run = authenticate(hop, identified, route, dialed, turn)
  if (hop.authTimeoutMs <= 0) return run
  return run.pipe(
    Effect.timeoutOrElse({
      duration: hop.authTimeoutMs,
      orElse: () => Effect.fail(authTimeout(turn, hop.authTimeoutMs))
    })
  )
}
