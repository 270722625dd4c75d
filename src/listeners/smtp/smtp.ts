// SMTP: route each session by the domain of its EHLO/HELO (or, with routeBy "rcpt", of its first RCPT TO), terminate
// STARTTLS, replay the handshake to the tenant's server and relay everything after it untouched.
//
// Who answers EHLO. The proxy greets (220) before any backend is known, so the first EHLO reply could only be a guess
// at the tenant server's capabilities. The guess is avoided wherever it can be:
// - No TLS here (or TLS already active, or implicit TLS): the EHLO is the routing key. The proxy connects, consumes
//   the backend's 220, sends it the client's own EHLO line and passes the backend's EHLO reply on, minus the
//   capabilities of the proxy–backend hop (STARTTLS, XCLIENT/XFORWARD, and REQUIRETLS over a plaintext client hop).
//   AUTH, SIZE, SMTPUTF8, CHUNKING, DSN... are then exactly what the backend offers; nothing to reconcile.
// - TLS here, before STARTTLS: the proxy must answer this EHLO itself to offer STARTTLS. RFC 3207 §4.2 makes the
//   client forget that reply and EHLO again over TLS, and that second EHLO routes as above: a client that takes TLS
//   (nodemailer does whenever STARTTLS is offered) only ever acts on the backend's own capabilities.
// The local reply is therefore only acted on by a client that declines STARTTLS (and by every client with routeBy
// "rcpt", which cannot route at EHLO). It advertises a fixed, conservative set that the proxy honours and that every
// MTA we know supports: PIPELINING (pipelined bytes read before routing are replayed in order), 8BITMIME (the relay
// is 8-bit clean), ENHANCEDSTATUSCODES, STARTTLS. It leaves out what would make the client send parameters the
// backend may reject (SIZE=, SMTPUTF8) and AUTH: credentials should not cross a hop the client left in plaintext;
// a client that wants AUTH takes STARTTLS and then sees the backend's AUTH line. When such a client does send
// something the backend does not support, it gets the backend's own error reply, which is accurate. The routing EHLO
// is replayed to the backend and its reply checked (a refusal is answered to the client's pending command) and dropped.
//
// Pre-routing rules: NOOP/RSET/HELP/QUIT are answered locally, other commands before EHLO get 503 5.5.1, lines end
// with CRLF and are at most 1000 bytes (AUTH 12288), at most 16 KB and 10 errors before routing. Bytes pipelined
// after STARTTLS are refused (CVE-2011-0411); bytes pipelined after the routing command are put back into the client
// socket, so the relay delivers them after the replayed handshake (backend.ts) or the refusal answers them. After a
// refusal, 421s close the session; 5xx/451 leave it open and answer every command the same until QUIT, so that a
// client falling back from EHLO to HELO surfaces the proxy's words (replies.ts).

import * as os from "node:os"
import type * as tls from "node:tls"
import * as Effect from "effect/Effect"
import {
  type Command,
  decodeCommand,
  encodeReply,
  type HeloDomain,
  invalid,
  parseHeloDomain,
  recipientDomain
} from "../../codec/smtp/index.ts"
import { ProxyError, proxyError } from "../../domain/ProxyError.ts"
import type { ClientConnection, Identified, Protocol } from "../Protocol.ts"
import type { ProtocolContext } from "../ProtocolContext.ts"
import { readFrame } from "../readFrame.ts"
import { acceptTls, type ClientTlsOptions, clientCertProblem, type ServerTls, subjectOf } from "../tls.ts"
import { type SmtpState, smtpReplay } from "./backend.ts"
import {
  BAD_RCPT,
  BYE,
  EHLO_FIRST,
  HELP,
  heloSyntax,
  keepRefusing,
  MAIL_OK,
  MAIL_SYNTAX,
  NEED_MAIL,
  NEED_RCPT,
  NESTED_MAIL,
  NO_TLS,
  NOT_BEFORE_RCPT,
  OK,
  refusalOf,
  STARTTLS_SYNTAX,
  TLS_ACTIVE,
  TLS_FIRST,
  TLS_READY,
  UNRECOGNIZED
} from "./replies.ts"

export type SmtpRouteBy = "ehlo" | "rcpt"

export interface SmtpOptions {
  readonly name?: string
  /** The name in the 220 greeting and in the proxy's own EHLO reply; default: os.hostname(). */
  readonly hostname?: string
  /** Offer STARTTLS and terminate it here; absent = plaintext only. */
  readonly tls?: ServerTls | undefined
  /** TLS from the first byte (port 465 style, RFC 8314) instead of STARTTLS; needs `tls`. */
  readonly implicitTls?: boolean
  /** Answer 530 5.7.0 to every mail command until the client has started TLS; needs `tls`. */
  readonly requireTls?: boolean
  readonly routeBy: SmtpRouteBy
  /** The resource for an EHLO that names an address literal ("[192.0.2.1]"); absent = 550. */
  readonly defaultRoute?: string | undefined
  /** TLS towards backends (STARTTLS to them) unless a route's metadata.tls says otherwise. */
  readonly upstreamTls?: ClientTlsOptions | undefined
  /** Seconds for the backend's greeting and EHLO exchange when the route sets no timeout (timeouts.connect). */
  readonly connectTimeout: number
  /** The capabilities of the proxy's own EHLO reply (STARTTLS is added while it is on offer). See the top comment. */
  readonly capabilities?: ReadonlyArray<string>
}

export const DEFAULT_CAPABILITIES: ReadonlyArray<string> = ["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"]

/** Bytes a client may send before its session is routed: a few dozen commands. */
const maxPreRoutingBytes = 16 * 1024
/** Bad commands tolerated before routing, so a scanner cannot keep a handshake busy. */
const maxErrors = 10

/** Commands that exist but need an EHLO first: 503, not 500. */
const sessionVerbs: ReadonlySet<string> = new Set([
  "MAIL",
  "RCPT",
  "DATA",
  "BDAT",
  "AUTH",
  "VRFY",
  "EXPN",
  "ETRN",
  "ATRN",
  "TURN",
  "XCLIENT",
  "XFORWARD"
])

const badRequest = (message: string) => proxyError("BAD_REQUEST", "client", message)

export const smtpProtocol = (ctx: ProtocolContext): Protocol =>
  makeSmtpProtocol({
    name: ctx.name,
    tls: ctx.tls,
    routeBy: (ctx.listener.routeBy ?? "ehlo") as SmtpRouteBy,
    defaultRoute: ctx.listener.defaultRoute,
    upstreamTls: ctx.upstreamTls,
    connectTimeout: ctx.config.timeouts.connect
  })

interface Helo {
  readonly line: Buffer
  readonly extended: boolean
  readonly word: string
  readonly domain: Exclude<HeloDomain, { _tag: "Invalid" }>
}

export const makeSmtpProtocol = (options: SmtpOptions): Protocol => {
  if ((options.implicitTls || options.requireTls) && options.tls === undefined) {
    throw new Error("smtp: implicitTls and requireTls need tls")
  }
  const hostname = options.hostname ?? os.hostname()
  const greeting = encodeReply(220, `${hostname} ESMTP polyproxy`)
  const capabilities = options.capabilities ?? DEFAULT_CAPABILITIES
  const rcptRouting = options.routeBy === "rcpt"

  const identify = Effect.fnUntraced(function* (conn: ClientConnection) {
    let secure = false
    let subject: string | undefined
    let sni: string | undefined
    const upgrade = Effect.fnUntraced(function* () {
      const s: tls.TLSSocket = yield* acceptTls(conn.client, options.tls!)
      conn.client = s
      const denied = clientCertProblem(s, options.tls!)
      if (denied) return yield* denied
      secure = true
      subject = options.tls!.requireClientCert ? subjectOf(s) : undefined
      sni = (s as tls.TLSSocket & { servername?: string | false }).servername || undefined
    })
    if (options.implicitTls) yield* upgrade()
    conn.client.write(greeting)

    let budget = maxPreRoutingBytes
    let errors = 0
    let rest: Buffer | undefined
    let helo: Helo | undefined
    let mail: Buffer | undefined
    const say = (reply: Buffer) => {
      conn.client.write(reply)
    }
    const fault = (reply: Buffer) => {
      conn.client.write(reply)
      errors++
    }
    // The proxy answers EHLO itself while it offers STARTTLS, and always when the route is only known at RCPT.
    const answersEhlo = () => rcptRouting || (options.tls !== undefined && !secure)

    // Commands pipelined behind the routing one go back into the socket: on success the relay delivers them after
    // the replayed handshake, on refusal keepRefusing answers each, so a pipelining client is never left waiting.
    const giveBack = () => {
      if (rest !== undefined && rest.length > 0) conn.client.unshift(rest)
      rest = undefined
    }
    const routed = (resourceId: string, h: Helo, answered: boolean, pending: Buffer | undefined): Identified => {
      const state: SmtpState = {
        helo: h.line,
        extended: h.extended,
        heloWord: h.word,
        answered,
        mail,
        secure
      }
      giveBack()
      return { resourceId, client: conn.client, tlsSubject: subject, sni, replay: pending, state }
    }
    const byHelo = (h: Helo, answered: boolean, pending: Buffer | undefined): Identified | ProxyError => {
      if (h.domain._tag === "Domain") return routed(h.domain.key, h, answered, pending)
      if (options.defaultRoute !== undefined) return routed(options.defaultRoute, h, answered, pending)
      giveBack()
      return proxyError(
        "NOT_FOUND",
        "client",
        `${h.extended ? "EHLO" : "HELO"} ${h.domain.literal} names no domain to route by: use your domain name`
      )
    }

    for (;;) {
      if (errors >= maxErrors) return yield* badRequest(`${maxErrors} bad commands before routing`)
      const left = budget
      const decode = (buf: Buffer) => {
        const d = decodeCommand(buf)
        return d._tag === "Need" && buf.length >= left
          ? invalid(`more than ${maxPreRoutingBytes} bytes of commands before routing`)
          : d
      }
      const read = yield* readFrame<Command>(conn.client, decode, left + 1, rest)
      budget -= read.bytes.length
      rest = read.rest
      if (budget < 0) return yield* badRequest(`more than ${maxPreRoutingBytes} bytes of commands before routing`)
      const { verb, argument } = read.value
      switch (verb) {
        case "QUIT": {
          say(BYE)
          return yield* proxyError("BAD_REQUEST", "client", "client quit before routing", { quiet: true })
        }
        case "NOOP":
          say(OK)
          continue
        case "RSET":
          mail = undefined
          say(OK)
          continue
        case "HELP":
          say(HELP)
          continue
        case "EHLO":
        case "HELO": {
          const domain = parseHeloDomain(argument)
          if (domain._tag === "Invalid") {
            fault(heloSyntax(verb, domain.reason))
            continue
          }
          const word = argument.split(/[ \t]/, 1)[0]!
          // A copy: the read buffer may be a large chunk that must not stay pinned until the relay.
          const h: Helo = { line: Buffer.from(read.bytes), extended: verb === "EHLO", word, domain }
          if (!answersEhlo()) {
            const r = byHelo(h, false, undefined)
            return r instanceof ProxyError ? yield* r : r
          }
          helo = h
          mail = undefined
          const greet = `${hostname} greets ${word}`
          say(
            h.extended
              ? encodeReply(250, [
                  greet,
                  ...capabilities,
                  ...(options.tls !== undefined && !secure ? ["STARTTLS"] : [])
                ])
              : encodeReply(250, greet)
          )
          continue
        }
        case "STARTTLS": {
          if (secure) fault(TLS_ACTIVE)
          else if (options.tls === undefined) fault(NO_TLS)
          else if (helo === undefined) fault(EHLO_FIRST)
          else if (argument !== "") fault(STARTTLS_SYNTAX)
          else {
            // Plaintext pipelined behind STARTTLS would be read as if it came over TLS (CVE-2011-0411).
            if (rest.length > 0) return yield* badRequest("commands pipelined after STARTTLS")
            say(TLS_READY)
            yield* upgrade()
            // RFC 3207 §4.2: everything learnt before TLS is discarded; the client must EHLO again.
            helo = undefined
            mail = undefined
            rest = undefined
          }
          continue
        }
      }
      if (helo === undefined) {
        fault(sessionVerbs.has(verb) ? EHLO_FIRST : UNRECOGNIZED)
        continue
      }
      if (options.requireTls && !secure) {
        fault(TLS_FIRST)
        continue
      }
      if (!rcptRouting) {
        // The client declined STARTTLS: this command is the first the backend must answer.
        const r = byHelo(helo, true, Buffer.from(read.bytes))
        return r instanceof ProxyError ? yield* r : r
      }
      switch (verb) {
        case "MAIL": {
          if (mail !== undefined) fault(NESTED_MAIL)
          else if (!/^FROM:/i.test(argument)) fault(MAIL_SYNTAX)
          else {
            mail = Buffer.from(read.bytes)
            say(MAIL_OK)
          }
          continue
        }
        case "RCPT": {
          if (mail === undefined) {
            fault(NEED_MAIL)
            continue
          }
          const domain = recipientDomain(argument)
          if (domain === undefined) {
            fault(BAD_RCPT)
            continue
          }
          return routed(domain, helo, true, Buffer.from(read.bytes))
        }
        case "DATA":
        case "BDAT":
          fault(mail === undefined ? NEED_MAIL : NEED_RCPT)
          continue
        default:
          fault(sessionVerbs.has(verb) ? NOT_BEFORE_RCPT : UNRECOGNIZED)
      }
    }
  })

  return {
    name: options.name ?? "smtp",
    readsHandshake: true,
    identify,
    // smtpReplay bounds the backend's greeting and EHLO itself (the route's connect timeout).
    boundsReplay: true,
    replay: (identified, route, backend) =>
      smtpReplay(identified, route, backend, options.upstreamTls, route.timeout ?? options.connectTimeout),
    refuse: (client, error) => {
      const refusal = refusalOf(error)
      if (refusal.closes) client.end(refusal.bytes)
      else {
        client.write(refusal.bytes)
        keepRefusing(client, refusal.bytes)
      }
    }
  }
}
