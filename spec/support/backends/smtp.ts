// In-process SMTP sink for both providers: it starts in milliseconds and lets specs read exactly what arrived.
import type { AddressInfo } from "node:net"
import { SMTPServer, type SMTPServerError, type SMTPServerSession } from "smtp-server"
import { type Certs, makeCerts } from "../certs.ts"

export interface SmtpSinkOptions {
  /** Offer STARTTLS with `certs.server`; AUTH is then only accepted after it, as real MTAs do. */
  readonly tls?: boolean
  /** Require AUTH PLAIN/LOGIN with exactly these credentials before MAIL FROM. */
  readonly auth?: { readonly user: string; readonly pass: string }
}

export interface ReceivedMessage {
  /** Envelope sender (MAIL FROM), "" for the null sender. */
  readonly from: string
  /** Envelope recipients (RCPT TO), Bcc included. */
  readonly to: string[]
  /** The raw message as sent after DATA, headers and body. */
  readonly data: Buffer
  /** The name the client gave in EHLO/HELO. */
  readonly ehloName?: string
  /** Whether the session had switched to TLS. */
  readonly secure: boolean
  /** The authenticated user, if the session authenticated. */
  readonly user?: string
}

export type SmtpStage = "mail" | "rcpt" | "data"

export interface SmtpSink {
  readonly host: string
  readonly port: number
  readonly certs?: Certs
  readonly messages: ReceivedMessage[]
  /** Answers the next command of that stage with this error reply instead of accepting it (once). */
  readonly rejectNext: (stage: SmtpStage, responseCode: number, text: string) => void
  readonly stop: () => Promise<void>
}

export const startSmtpSink = async (opts: SmtpSinkOptions = {}): Promise<SmtpSink> => {
  const certs = opts.tls ? await makeCerts() : undefined
  const messages: ReceivedMessage[] = []
  const pending = new Map<SmtpStage, { responseCode: number; text: string }>()

  const scripted = (stage: SmtpStage): SMTPServerError | null => {
    const failure = pending.get(stage)
    if (!failure) return null
    pending.delete(stage)
    return Object.assign(new Error(failure.text), { responseCode: failure.responseCode })
  }

  const expected = opts.auth
  const server = new SMTPServer({
    ...(certs ? { key: certs.server.key, cert: certs.server.cert } : { disabledCommands: ["STARTTLS"] }),
    name: "sink.polyproxy.test",
    banner: "polyproxy test sink",
    authMethods: ["PLAIN", "LOGIN"],
    authOptional: !expected,
    // Without TLS there is nothing to wait for; with it, refusing cleartext AUTH is what a proxy must cope with.
    allowInsecureAuth: !certs,
    // No DNS here; a reverse lookup per connection would only add latency.
    disableReverseLookup: true,
    logger: false,
    // The default 30 s grace for open sessions would stall every spec that leaves a pooled client connected.
    closeTimeout: 500,
    onAuth(auth, _session, callback) {
      if (expected && auth.username === expected.user && auth.password === expected.pass) {
        return callback(null, { user: auth.username })
      }
      callback(Object.assign(new Error("Invalid username or password"), { responseCode: 535 }))
    },
    onMailFrom(_address, _session, callback) {
      callback(scripted("mail"))
    },
    onRcptTo(_address, _session, callback) {
      callback(scripted("rcpt"))
    },
    onData(stream, session: SMTPServerSession, callback) {
      const chunks: Buffer[] = []
      stream.on("data", (chunk: Buffer) => chunks.push(chunk))
      stream.once("error", (error) => callback(error))
      stream.once("end", () => {
        const failure = scripted("data")
        if (failure) return callback(failure)
        const { mailFrom, rcptTo } = session.envelope
        const ehloName = session.hostNameAppearsAs as string | false | undefined
        const user = session.user as unknown
        messages.push({
          from: mailFrom ? mailFrom.address : "",
          to: rcptTo.map((rcpt) => rcpt.address),
          data: Buffer.concat(chunks),
          ...(ehloName ? { ehloName } : {}),
          secure: session.secure,
          ...(typeof user === "string" ? { user } : {})
        })
        callback()
      })
    }
  })

  await new Promise<void>((resolve, reject) => {
    server.server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      server.server.off("error", reject)
      resolve()
    })
  })
  const port = (server.server.address() as AddressInfo).port
  let stopped: Promise<void> | undefined
  return {
    host: "127.0.0.1",
    port,
    ...(certs ? { certs } : {}),
    messages,
    rejectNext: (stage, responseCode, text) => {
      pending.set(stage, { responseCode, text })
    },
    stop: () => (stopped ??= new Promise<void>((resolve) => server.close(() => resolve())))
  }
}
