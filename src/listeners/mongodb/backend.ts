// proxy → backend: the replay phase. The proxy opens the backend connection with a hello of its own carrying the
// client's metadata (so the backend's logs and currentOp name the application), checks the answer is a MongoDB
// server's, drops it (the client already has the proxy's), then sends the message that routed the connection and
// whatever the client pipelined after it. From there the relay carries bytes both ways untouched.
// Not the client's own hello: its compressors, speculativeAuthenticate or loadBalanced flag would start on the
// backend what the client was told does not exist (a non-load-balanced mongod even refuses loadBalanced: true).

import type * as net from "node:net"
import type { Document } from "bson"
import * as Effect from "effect/Effect"
import { backendHello, decodeBackendHelloReply, encodeOpMsg } from "../../codec/mongo/index.ts"
import { formatEndpoint } from "../../domain/Endpoint.ts"
import { proxyError } from "../../domain/ProxyError.ts"
import type { Route } from "../../domain/Route.ts"
import { type ClientTlsOptions, connectTls, upstreamTlsFor } from "../tls.ts"
import { MessageReader } from "./MessageReader.ts"
import { nextRequestId } from "./replies.ts"

/** What identify hands to replay. Dropped once the relay starts. */
export interface MongoState {
  /** The client's hello metadata, if it sent a hello. */
  client: Document | undefined
  /** Bytes after the last message answered here: the routing message (maybe only its start) and what followed. */
  pending: Buffer
}

/** A hello reply is a few hundred bytes; a replica set member's host list makes it a few KB. */
const maxHelloReply = 1024 * 1024

export const replayToBackend = (
  state: MongoState,
  route: Route,
  backend: net.Socket,
  upstreamTls: ClientTlsOptions | undefined,
  timeoutSeconds: number
) =>
  Effect.gen(function* () {
    const where = formatEndpoint(route.endpoint)
    const tlsOptions = upstreamTlsFor(route, upstreamTls)
    // MongoDB has no STARTTLS: TLS from the first byte.
    const socket = tlsOptions
      ? yield* connectTls(backend, { ...tlsOptions, servername: tlsOptions.servername ?? route.endpoint.host })
      : backend
    const requestId = nextRequestId()
    socket.write(encodeOpMsg({ requestId, body: backendHello(state.client) }))
    const reader = new MessageReader(socket, "backend")
    const answer = yield* reader
      .read((buf) => decodeBackendHelloReply(buf, requestId, maxHelloReply))
      .pipe(
        Effect.mapError((e) =>
          proxyError("CONNECT_FAILED", "backend", `backend ${where} did not answer hello as MongoDB does: ${e.message}`)
        ),
        timeoutSeconds > 0
          ? Effect.timeoutOrElse({
              duration: timeoutSeconds * 1000,
              orElse: () =>
                Effect.fail(
                  proxyError(
                    "CONNECT_FAILED",
                    "backend",
                    `backend ${where} did not answer hello within ${timeoutSeconds}s`
                  )
                )
            })
          : (e) => e
      )
    if (!answer.value.ok) {
      return yield* proxyError("CONNECT_FAILED", "backend", `backend ${where} refused hello: ${answer.value.errmsg}`)
    }
    reader.consume(answer.size)
    // A server sends nothing unasked; anything here goes back to the stream for the client to read.
    const extra = reader.take()
    if (extra.length > 0) socket.unshift(extra)
    socket.write(state.pending)
    state.pending = Buffer.alloc(0)
    state.client = undefined
    return socket
  })
