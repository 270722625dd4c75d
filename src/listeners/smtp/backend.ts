// proxy → backend: the replay phase. Consume the tenant server's greeting, optionally start TLS to it, replay the
// client's EHLO (and the MAIL FROM accepted on its behalf), then hand over the client's pipelined bytes.
import type * as net from "node:net"
import * as Effect from "effect/Effect"
import { decodeReply, encodeReply, hasCapability, type Reply, withoutCapabilities } from "../../codec/smtp/index.ts"
import { type ProxyError, proxyError } from "../../domain/ProxyError.ts"
import type { Route } from "../../domain/Route.ts"
import type { Identified } from "../Protocol.ts"
import { readFrame } from "../readFrame.ts"
import { type ClientTlsOptions, connectTls, upstreamTlsFor } from "../tls.ts"
import { BackendReply } from "./replies.ts"

/** What identify hands to replay; dropped once the relay starts. */
export interface SmtpState {
  /** The client's EHLO or HELO line, as sent: the backend sees the same name. */
  readonly helo: Buffer
  /** Whether `helo` is an EHLO (a HELO reply lists no capabilities). */
  readonly extended: boolean
  /** The domain word of `helo`, for the EHLO the proxy sends before its own STARTTLS when the client said HELO. */
  readonly heloWord: string
  /** The client already holds an EHLO reply (the proxy's own): the backend's is checked, then dropped. */
  readonly answered: boolean
  /** routeBy rcpt: the MAIL FROM line already accepted with a local 250; the backend's reply is checked, then dropped. */
  readonly mail: Buffer | undefined
  /** Whether the client's side is TLS (RFC 8689 REQUIRETLS must not be offered over a plaintext hop). */
  readonly secure: boolean
}

/** An EHLO reply is a dozen lines; anything near this is not an SMTP server. */
const maxReplyBytes = 64 * 1024

const STARTTLS = Buffer.from("STARTTLS\r\n", "latin1")

/**
 * Capabilities that describe the proxy-to-backend hop, not what the client gets: the client's TLS is the proxy's
 * (already active, or offered by it), and XCLIENT/XFORWARD are for trusted relays only.
 */
const hopCapabilities: ReadonlySet<string> = new Set(["STARTTLS", "XCLIENT", "XFORWARD"])
const hopCapabilitiesPlain: ReadonlySet<string> = new Set([...hopCapabilities, "REQUIRETLS"])

const refusedBy = (what: string, reply: Reply): ProxyError =>
  proxyError(
    reply.code >= 500 ? "FORBIDDEN" : "UNAVAILABLE",
    "backend",
    `backend refused the ${what}: ${reply.code} ${reply.lines.join(" / ")}`,
    { cause: new BackendReply(reply) }
  )

const failed = (message: string) => proxyError("CONNECT_FAILED", "backend", message)

interface Read {
  readonly reply: Reply
  readonly rest: Buffer
}

// readFrame words its failures for clients; here the peer is the backend.
const readReply = (socket: net.Socket, what: string, initial: Buffer | undefined): Effect.Effect<Read, ProxyError> =>
  readFrame(socket, decodeReply, maxReplyBytes, initial).pipe(
    Effect.map((r) => ({ reply: r.value, rest: r.rest })),
    Effect.mapError((e) => failed(`backend sent no valid ${what}: ${e.message.replaceAll("client", "backend")}`))
  )

const startTls = Effect.fnUntraced(function* (
  socket: net.Socket,
  state: SmtpState,
  route: Route,
  tlsOptions: ClientTlsOptions,
  initial: Buffer | undefined
) {
  socket.write(state.extended ? state.helo : Buffer.from(`EHLO ${state.heloWord}\r\n`, "utf8"))
  const ehlo = yield* readReply(socket, "EHLO reply", initial)
  if (ehlo.reply.code !== 250 || !hasCapability(ehlo.reply, "STARTTLS")) {
    return yield* failed(`backend ${route.endpoint.host} does not offer STARTTLS`)
  }
  socket.write(STARTTLS)
  const ready = yield* readReply(socket, "STARTTLS reply", ehlo.rest)
  if (ready.reply.code !== 220) {
    return yield* failed(`backend refused STARTTLS: ${ready.reply.code} ${ready.reply.lines.join(" ")}`)
  }
  // Bytes behind the 220 would be taken as if they came over TLS: response injection, the mirror image of
  // CVE-2011-0411 (the "NO STARTTLS" study, 2021, found it in many clients).
  if (ready.rest.length > 0) return yield* failed("backend sent data after its STARTTLS reply")
  return yield* connectTls(socket, { ...tlsOptions, servername: tlsOptions.servername ?? route.endpoint.host })
})

/** The replay phase, bounded by the route's connect timeout. Returns the socket to relay with (TLS if started). */
export const smtpReplay = (
  identified: Identified,
  route: Route,
  dialed: net.Socket,
  upstreamTls: ClientTlsOptions | undefined,
  timeoutSeconds: number
): Effect.Effect<net.Socket, ProxyError> => {
  const run = Effect.gen(function* () {
    const state = identified.state as SmtpState
    const greeting = yield* readReply(dialed, "greeting", undefined)
    if (greeting.reply.code >= 400) return yield* refusedBy("connection", greeting.reply)
    let rest: Buffer | undefined = greeting.rest
    let socket = dialed
    const tlsOptions = upstreamTlsFor(route, upstreamTls)
    if (tlsOptions) {
      socket = yield* startTls(dialed, state, route, tlsOptions, rest)
      rest = undefined
    }
    socket.write(state.helo)
    const ehlo = yield* readReply(socket, "EHLO reply", rest)
    rest = ehlo.rest
    if (state.answered) {
      if (ehlo.reply.code >= 400) return yield* refusedBy(state.extended ? "EHLO" : "HELO", ehlo.reply)
    } else {
      const shown = withoutCapabilities(ehlo.reply, state.secure ? hopCapabilities : hopCapabilitiesPlain)
      identified.client.write(encodeReply(shown.code, shown.lines))
    }
    if (state.mail !== undefined) {
      socket.write(state.mail)
      const mail = yield* readReply(socket, "MAIL reply", rest)
      rest = mail.rest
      if (mail.reply.code >= 400) return yield* refusedBy("sender", mail.reply)
    }
    // Whatever the backend said beyond the replies consumed here is the client's to read.
    if (rest.length > 0) socket.unshift(rest)
    if (identified.replay !== undefined && identified.replay.length > 0) socket.write(identified.replay)
    return socket
  })
  if (timeoutSeconds <= 0) return run
  return run.pipe(
    Effect.timeoutOrElse({
      duration: timeoutSeconds * 1000,
      orElse: () =>
        Effect.fail(
          proxyError(
            "CONNECT_FAILED",
            "backend",
            `backend ${route.endpoint.host}:${route.endpoint.port} did not finish its greeting and EHLO within ${timeoutSeconds}s`,
            { clientMessage: `the backend did not finish its greeting and EHLO within ${timeoutSeconds}s` }
          )
        )
    })
  )
}
