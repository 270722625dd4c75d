// replay, last leg: after the proxy sent the backend its HandshakeResponse41, pass the rest of the authentication
// exchange (AuthSwitchRequest, AuthMoreData, the client's answers) between the two sides, renumbering every packet,
// until the backend's OK or ERR. From then on sequence ids restart at 0 with each command, so the relay can take
// over byte for byte.
import type * as net from "node:net"
import * as Effect from "effect/Effect"
import {
  AuthPlugin,
  CachingSha2,
  classifyAuthReply,
  decodePacket,
  encodePacket,
  MAX_PACKET_PAYLOAD,
  type Packet,
  parseAuthSwitchRequest,
  parseErrPacket
} from "../../codec/mysql/index.ts"
import { type ProxyError, proxyError } from "../../domain/ProxyError.ts"
import { nextServerSequence } from "./errPacket.ts"

export interface BridgeStart {
  readonly client: net.Socket
  readonly backend: net.Socket
  /** Sequence id of the proxy's next packet to each side. */
  readonly toClient: number
  readonly toBackend: number
  /** The auth plugin the backend asked for so far. */
  readonly plugin: string
  readonly clientTls: boolean
  readonly backendTls: boolean
  /** Bytes already read from each side after the last packet handled. */
  readonly clientRest: Buffer
  readonly backendRest: Buffer
  readonly maxPayload: number
  /** Whose turn it is, kept current so a deadline can blame the side that went quiet. */
  readonly turn: Turn
}

export interface Turn {
  waitingFor: "client" | "backend"
}

/** Plugins whose client answer is the password itself when the client believes its link is encrypted. */
export const cleartextPlugins: ReadonlySet<string> = new Set([AuthPlugin.CLEAR, AuthPlugin.SHA256, AuthPlugin.DIALOG])

/**
 * Refusal for a login whose password would cross one hop in clear, or reach a side that cannot read it. The proxy's
 * own words, with nothing internal in them: the client reads them, as they tell the user what to change.
 */
export const tlsMismatch = (plugin: string, clientTls: boolean, backendTls: boolean): ProxyError => {
  const message =
    `${plugin} needs the password itself here, which cannot pass this proxy safely: ` +
    `TLS is ${clientTls ? "on" : "off"} from the client and ${backendTls ? "on" : "off"} to the backend. ` +
    "Use TLS on both hops or on neither (listeners.mysql.tls, upstreamTls or the route's metadata.tls)" +
    (plugin === AuthPlugin.CACHING_SHA2 ? "; a login the server has already cached needs neither." : ".")
  return proxyError("FORBIDDEN", "backend", message, { clientMessage: message })
}

const partsOf = (payload: Buffer): number => Math.floor(payload.length / MAX_PACKET_PAYLOAD) + 1

const empty = Buffer.alloc(0)

export const bridgeAuth = (start: BridgeStart): Effect.Effect<void, ProxyError> =>
  Effect.callback<void, ProxyError>((resume) => {
    const { client, backend } = start
    let clientBuf = start.clientRest
    let backendBuf = start.backendRest
    let toClient = start.toClient
    let toBackend = start.toBackend
    let plugin = start.plugin
    let done = false

    const cleanup = () => {
      client.pause()
      backend.pause()
      client.off("data", onClientData)
      backend.off("data", onBackendData)
      client.off("end", onClientGone)
      client.off("close", onClientGone)
      client.off("error", onClientGone)
      backend.off("end", onBackendGone)
      backend.off("close", onBackendGone)
      backend.off("error", onBackendGone)
    }
    const finish = (result: Effect.Effect<void, ProxyError>) => {
      if (done) return
      done = true
      cleanup()
      // Whatever arrived behind the last auth packet belongs to the relay.
      if (clientBuf.length > 0) client.unshift(clientBuf)
      if (backendBuf.length > 0) backend.unshift(backendBuf)
      clientBuf = backendBuf = empty
      resume(result)
    }
    const fail = (error: ProxyError) => finish(Effect.fail(error))

    const toClientPacket = (packet: Packet) => {
      start.turn.waitingFor = "client"
      client.write(encodePacket(packet.payload, toClient))
      toClient = (toClient + partsOf(packet.payload)) & 0xff
      toBackend = (packet.lastSequenceId + 1) & 0xff
      nextServerSequence.set(client, toClient)
    }

    const fromBackend = (packet: Packet) => {
      const kind = classifyAuthReply(packet.payload)
      if (typeof kind !== "string") {
        return fail(proxyError("CONNECT_FAILED", "backend", `backend authentication: ${kind.reason}`))
      }
      switch (kind) {
        case "OK":
          toClientPacket(packet)
          return finish(Effect.void)
        case "ERR": {
          toClientPacket(packet)
          const err = parseErrPacket(packet.payload)
          const text = err._tag === "ErrPacket" ? `${err.code} ${err.message}` : "malformed ERR"
          // The client already has the server's own words; the proxy only closes.
          const reason =
            err._tag === "ErrPacket" && (err.code === 1040 || err.code === 1203) ? "UNAVAILABLE" : "FORBIDDEN"
          return fail(proxyError(reason, "backend", `backend refused the login: ${text}`, { quiet: true }))
        }
        case "AuthSwitchRequest": {
          const request = parseAuthSwitchRequest(packet.payload)
          if (request._tag === "Invalid") {
            return fail(proxyError("CONNECT_FAILED", "backend", `backend authentication: ${request.reason}`))
          }
          plugin = request.plugin
          if (start.clientTls && !start.backendTls && cleartextPlugins.has(plugin)) {
            return fail(tlsMismatch(plugin, start.clientTls, start.backendTls))
          }
          return toClientPacket(packet)
        }
        case "AuthMoreData": {
          // Full authentication: a TLS client sends its password in clear, which must not go on over plain TCP, and
          // a plain client asks for an RSA key that a TLS backend does not give; either way the login cannot work.
          if (
            plugin === AuthPlugin.CACHING_SHA2 &&
            packet.payload[1] === CachingSha2.PERFORM_FULL_AUTHENTICATION &&
            packet.payload.length === 2 &&
            start.clientTls !== start.backendTls
          ) {
            return fail(tlsMismatch(plugin, start.clientTls, start.backendTls))
          }
          return toClientPacket(packet)
        }
        case "AuthNextFactor":
          return toClientPacket(packet)
      }
    }

    const fromClient = (packet: Packet) => {
      start.turn.waitingFor = "backend"
      backend.write(encodePacket(packet.payload, toBackend))
      toBackend = (toBackend + partsOf(packet.payload)) & 0xff
      toClient = (packet.lastSequenceId + 1) & 0xff
      nextServerSequence.set(client, toClient)
    }

    const pump = () => {
      while (!done && backendBuf.length > 0) {
        const d = decodePacket(backendBuf, start.maxPayload)
        if (d._tag === "Need") break
        if (d._tag === "Invalid")
          return fail(proxyError("CONNECT_FAILED", "backend", `backend authentication: ${d.reason}`))
        backendBuf = backendBuf.subarray(d.size)
        fromBackend(d.value)
      }
      while (!done && clientBuf.length > 0) {
        const d = decodePacket(clientBuf, start.maxPayload)
        if (d._tag === "Need") break
        if (d._tag === "Invalid") return fail(proxyError("BAD_REQUEST", "client", d.reason))
        clientBuf = clientBuf.subarray(d.size)
        fromClient(d.value)
      }
    }

    function onClientData(chunk: Buffer) {
      clientBuf = clientBuf.length === 0 ? chunk : Buffer.concat([clientBuf, chunk])
      pump()
    }
    function onBackendData(chunk: Buffer) {
      backendBuf = backendBuf.length === 0 ? chunk : Buffer.concat([backendBuf, chunk])
      pump()
    }
    function onClientGone() {
      fail(proxyError("BAD_REQUEST", "client", "client closed the connection during authentication", { quiet: true }))
    }
    function onBackendGone() {
      fail(proxyError("CONNECT_FAILED", "backend", "backend closed the connection during authentication"))
    }

    nextServerSequence.set(client, toClient)
    pump()
    if (done) return
    client.on("data", onClientData)
    backend.on("data", onBackendData)
    client.once("end", onClientGone)
    client.once("close", onClientGone)
    client.once("error", onClientGone)
    backend.once("end", onBackendGone)
    backend.once("close", onBackendGone)
    backend.once("error", onBackendGone)
    client.resume()
    backend.resume()
    return Effect.sync(cleanup)
  })
