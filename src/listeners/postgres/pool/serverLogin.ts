// The proxy's login to a PostgreSQL server as a conversation without a socket: the startup message, then one answer
// per server message until ReadyForQuery('I'). Trust, SCRAM-SHA-256 pass-through with the keys recovered from a
// client's proof, or md5 with the role's md5 secret. Never a clear password: the proxy holds none, so a server that
// asks for one is refused, as is one whose SCRAM signature does not prove it holds the role's ServerKey.
import {
  decodeAuthentication,
  decodeSaslMechanisms,
  encodePasswordMessage,
  encodeSaslInitialResponse,
  encodeSaslResponse
} from "../../../codec/pg/Authentication.ts"
import {
  AuthenticationCode,
  decodeBackendKeyData,
  decodeErrorFields,
  decodeReadyForQuery,
  encodeStartup
} from "../../../codec/pg/index.ts"
import { isMd5Secret, md5Answer } from "../../../codec/pg/md5.ts"
import { SCRAM_SHA_256, ScramClient, type ScramKeys } from "../../../codec/pg/scram.ts"
import type { VettedEndpoint } from "../../../domain/Endpoint.ts"
import type { ProxyError } from "../../../domain/ProxyError.ts"
import { parameterStatus, ServerError, serverFailure } from "./serverMessages.ts"

/** Who the proxy logs in as, and with what: a pool's, shared by its connections. */
export interface ServerLogin {
  readonly user: string
  readonly database: string
  /** Startup parameters the server should get besides user and database (application_name, client_encoding, ...). */
  readonly params: ReadonlyMap<string, string>
  /** SCRAM-SHA-256 pass-through: the role's keys, recovered from a client's proof. */
  keys?: ScramKeys | undefined
  /** The role's md5 secret ("md5" + 32 hex digits): answers an md5 challenge. */
  secret?: string | undefined
}

/** What to do after a server message: send these bytes, nothing (undefined), done, or give up with why. */
export type LoginStep = Buffer | undefined | "ready" | ProxyError

const empty = Buffer.alloc(0)

export class LoginExchange {
  /** BackendKeyData, once the server sent it. */
  processId = 0
  secretKey: Buffer = empty
  /** ParameterStatus values as the server reported them. */
  readonly parameters = new Map<string, string>()
  private readonly login: ServerLogin
  private readonly target: VettedEndpoint
  private scram: ScramClient | undefined = undefined
  private authenticated = false

  constructor(login: ServerLogin, target: VettedEndpoint) {
    this.login = login
    this.target = target
  }

  /** The StartupMessage (protocol 3.0): user, database, then the login's other parameters. */
  startup(): Buffer {
    const login = this.login
    const params = new Map<string, string>([
      ["user", login.user],
      ["database", login.database]
    ])
    for (const [k, v] of login.params) if (k !== "user" && k !== "database") params.set(k, v)
    return encodeStartup(params)
  }

  /** One message from the server; `left`: bytes already read after it. */
  message(type: string, body: Buffer, left: number): LoginStep {
    switch (type) {
      case "R":
        return this.authentication(body)
      case "S": {
        const p = parameterStatus(body)
        if (p !== undefined) this.parameters.set(p[0], p[1])
        return undefined
      }
      case "K": {
        const k = decodeBackendKeyData(body)
        if (k._tag === "Invalid") return serverFailure(this.target, k.reason)
        this.processId = k.value.processId
        this.secretKey = k.value.secretKey
        return undefined
      }
      case "Z": {
        const z = decodeReadyForQuery(body)
        if (z._tag === "Invalid") return serverFailure(this.target, z.reason)
        // A login ends idle, and nothing may follow ReadyForQuery until the proxy sends a query.
        if (!this.authenticated || z.value !== "I" || left > 0) {
          return serverFailure(this.target, "the server broke the login sequence")
        }
        return "ready"
      }
      case "E": {
        const f = decodeErrorFields(body)
        if (f._tag === "Invalid") return serverFailure(this.target, f.reason)
        return new ServerError(f.value.fields, body).toProxyError(this.target)
      }
      case "N": // a NoticeResponse: nothing to act on
      case "v": // NegotiateProtocolVersion: an unknown _pq_ option was ignored; 3.0 itself is always spoken
        return undefined
      default:
        return serverFailure(this.target, `unexpected message '${type}' during the login`)
    }
  }

  private authentication(body: Buffer): LoginStep {
    const request = decodeAuthentication(body)
    if (request._tag === "Invalid") return serverFailure(this.target, request.reason)
    const { code, data } = request.value
    const login = this.login
    switch (code) {
      case AuthenticationCode.Ok:
        this.authenticated = true
        this.scram = undefined
        return undefined
      case AuthenticationCode.SASL: {
        // decodeAuthentication has checked the list.
        const mechanisms = decodeSaslMechanisms(data)
        const offered = mechanisms._tag === "Frame" ? mechanisms.value : []
        if (!offered.includes(SCRAM_SHA_256)) {
          return this.refuse(`no SASL mechanism the proxy speaks (offered: ${offered.join(", ")})`)
        }
        if (login.keys === undefined) {
          return this.refuse(
            "the server asks for SCRAM-SHA-256 and no client of this role has logged in with SCRAM yet"
          )
        }
        // Never channel binding, even over TLS: a pass-through login has no password's own client to bind with.
        this.scram = new ScramClient(login.keys)
        return encodeSaslInitialResponse(SCRAM_SHA_256, this.scram.first())
      }
      case AuthenticationCode.SASLContinue: {
        const answer = this.scram?.final(data)
        if (answer === undefined) return this.refuse("SASLContinue out of sequence")
        if (!answer.ok) return this.refuse(`SCRAM: ${answer.error}`)
        return encodeSaslResponse(answer.clientFinal)
      }
      case AuthenticationCode.SASLFinal:
        // The server proves it knows the role's ServerKey: without that it is not the server the secret came from.
        if (this.scram === undefined || !this.scram.verify(data)) {
          return this.refuse("the server's SCRAM signature is wrong")
        }
        return undefined
      case AuthenticationCode.MD5Password:
        if (login.secret === undefined || !isMd5Secret(login.secret)) {
          return this.refuse("the server asks for an md5 password and the role's secret is not an md5 one")
        }
        return encodePasswordMessage(md5Answer(login.secret, data))
      case AuthenticationCode.CleartextPassword:
        return this.refuse("the server asks for a clear-text password, which the proxy never holds")
      default:
        return this.refuse(`unsupported authentication method ${code}`)
    }
  }

  private refuse(why: string): ProxyError {
    return serverFailure(this.target, `cannot log in as "${this.login.user}": ${why}`)
  }
}
