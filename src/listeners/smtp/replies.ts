// proxy → client: the proxy's own replies before routing, and every refusal as a reply code with an enhanced status
// code (RFC 3463) that a client shows its user or an MTA turns into a bounce (5xx) or a retry (4xx).
import type * as net from "node:net"
import { decodeCommand, encodeReply, type Reply } from "../../codec/smtp/index.ts"
import type { ProxyError, Reason } from "../../domain/ProxyError.ts"
import { clientText, type RetryPhrase } from "../refusal.ts"

export const BYE = encodeReply(221, "2.0.0 Bye")
export const OK = encodeReply(250, "2.0.0 OK")
export const MAIL_OK = encodeReply(250, "2.1.0 OK")
export const TLS_READY = encodeReply(220, "2.0.0 Ready to start TLS")
export const EHLO_FIRST = encodeReply(503, "5.5.1 Error: send EHLO first")
export const UNRECOGNIZED = encodeReply(500, "5.5.1 Error: command unrecognized")
export const TLS_ACTIVE = encodeReply(503, "5.5.1 Error: TLS already active")
export const NO_TLS = encodeReply(502, "5.5.1 Error: STARTTLS not available")
export const STARTTLS_SYNTAX = encodeReply(501, "5.5.4 Syntax: STARTTLS")
export const TLS_FIRST = encodeReply(530, "5.7.0 Must issue a STARTTLS command first")
export const NEED_MAIL = encodeReply(503, "5.5.1 Error: need MAIL command")
export const NESTED_MAIL = encodeReply(503, "5.5.1 Error: nested MAIL command")
export const MAIL_SYNTAX = encodeReply(501, "5.5.4 Syntax: MAIL FROM:<address>")
export const NEED_RCPT = encodeReply(503, "5.5.1 Error: need RCPT command")
export const BAD_RCPT = encodeReply(501, "5.1.3 Bad recipient address syntax: a domain is needed to route by")
export const NOT_BEFORE_RCPT = encodeReply(502, "5.5.1 Error: not available before the first RCPT")
export const HELP = encodeReply(214, "2.0.0 Send EHLO <your domain>; your mail server answers once it is known")

export const heloSyntax = (verb: string, why: string) => encodeReply(501, `5.5.4 Syntax: ${verb} <domain> (${why})`)

/** Reply code and enhanced status per reason (RFC 5321 §4.2.3, RFC 3463). 421 closes the session; others do not. */
export const replyCodeOf: Readonly<Record<Reason, { readonly code: number; readonly status: string }>> = {
  NOT_FOUND: { code: 550, status: "5.1.2" }, // bad destination system address: no such tenant domain
  FORBIDDEN: { code: 550, status: "5.7.1" }, // delivery not authorized (resolver refusal, SSRF guard, client cert)
  UNAVAILABLE: { code: 421, status: "4.3.2" }, // system not accepting network messages (cold, limits)
  TIMEOUT: { code: 451, status: "4.4.3" }, // directory server failure: the resolver did not answer
  CONNECT_FAILED: { code: 421, status: "4.4.1" }, // no answer from host
  INTERNAL: { code: 451, status: "4.3.0" }, // other mail system status
  BAD_REQUEST: { code: 500, status: "5.5.2" }, // syntax error (line too long, bare LF, binary)
  HANDSHAKE_TIMEOUT: { code: 421, status: "4.4.2" } // bad connection: the client was too slow
}

/** A backend's own refusal (of the greeting, EHLO, MAIL), carried in ProxyError.cause to reach the client as it was. */
export class BackendReply {
  readonly reply: Reply
  constructor(reply: Reply) {
    this.reply = reply
  }
}

export interface Refusal {
  readonly bytes: Buffer
  /** The session cannot go on: 421, or a byte stream we can no longer trust to be split into lines. */
  readonly closes: boolean
}

/** SMTP's own phrase for a temporary refusal. */
const tryAgain: RetryPhrase = (seconds) => (seconds === undefined ? "; try again later" : `; try again in ${seconds} s`)

export const refusalOf = (error: ProxyError): Refusal => {
  if (error.cause instanceof BackendReply) {
    const { code, lines } = error.cause.reply
    return { bytes: encodeReply(code, lines), closes: code === 421 }
  }
  const { code, status } = replyCodeOf[error.reason]
  return {
    bytes: encodeReply(code, `${status} ${clientText(error, tryAgain)}`),
    closes: code === 421 || error.reason === "BAD_REQUEST"
  }
}

/** Commands a refused client may still send before the proxy closes: enough for EHLO → HELO → QUIT. */
const maxAnswersAfterRefusal = 5
const tooMany = encodeReply(421, "4.7.0 Error: too many commands after an error, closing")

/**
 * After a 5xx/451 refusal the session stays open as RFC 5321 expects, and every later command gets the same answer
 * until QUIT: a client that falls back from EHLO to HELO (nodemailer does) then shows the refusal, not "connection
 * closed". The listener's grace timeout ends a client that just sits there.
 */
export const keepRefusing = (client: net.Socket, refusal: Buffer): void => {
  let pending: Buffer = Buffer.alloc(0)
  let answers = 0
  const stop = (last: Buffer | undefined) => {
    client.off("data", onData)
    pending = Buffer.alloc(0)
    if (last === undefined) client.end()
    else client.end(last)
  }
  function onData(chunk: Buffer) {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
    for (;;) {
      const d = decodeCommand(pending)
      if (d._tag === "Need") return
      if (d._tag === "Invalid") return stop(undefined)
      pending = pending.subarray(d.size)
      if (d.value.verb === "QUIT") return stop(BYE)
      if (++answers > maxAnswersAfterRefusal) return stop(tooMany)
      client.write(d.value.verb === "NOOP" || d.value.verb === "RSET" ? OK : refusal)
    }
  }
  client.on("data", onData)
  client.resume()
}
