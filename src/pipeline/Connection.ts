// One connection from accept to relay start: what the phases find, in one small object that both paths carry (the
// handshake fiber, handshake.ts; the fiber-free path, fast.ts, where it is also its own dial's waiter). The relay
// keeps none of it but what the close phase needs (RelayState).
import type * as net from "node:net"
import type * as Fiber from "effect/Fiber"
import type { ProxyError } from "../domain/ProxyError.ts"
import type { ConnectionInfo, Route } from "../domain/Route.ts"
import type { ClientConnection, Identified, ServedSession } from "../listeners/Protocol.ts"
import { Dialing } from "./connect.ts"
import { dialedFast } from "./fast.ts"
import type { ListenerState } from "./ListenerState.ts"

/** No backend chosen yet. */
const noTarget = { host: "", port: 0, ip: "", family: 4 } as const

export class Connection extends Dialing implements ClientConnection {
  readonly accepted: net.Socket
  /** Where the client's answers go: the accepted socket, or the TLSSocket identify upgraded it to. */
  client: net.Socket
  /** The accepted socket's peer; undefined until something asks (`peer`): see ListenerState.peerRead. */
  info: ConnectionInfo | undefined
  /** Who the client is once identified: a PROXY header's address, TLS facts. */
  who: ConnectionInfo | undefined = undefined
  readonly started: number
  identified: Identified | undefined = undefined
  route: Route | undefined = undefined
  /** The protocol serves the client itself (`Protocol.serves`): no backend socket to dial or relay. */
  session: ServedSession | undefined = undefined
  /** The handshake fiber, when the connection went through it. */
  fiber: Fiber.Fiber<unknown, unknown> | undefined = undefined
  /** identify in the callback form under way (fast.ts), its cancel and deadline. */
  peeking = false
  cancelPeek: (() => void) | undefined = undefined
  timer: NodeJS.Timeout | undefined = undefined

  constructor(p: ListenerState, accepted: net.Socket, info: ConnectionInfo | undefined, started: number) {
    super(p, noTarget, "")
    this.accepted = accepted
    this.client = accepted
    this.info = info
    this.started = started
  }

  /** The accepted socket's peer, read now if nothing has yet. */
  peer(): ConnectionInfo {
    if (this.info === undefined) this.info = this.p.clientInfo(this.accepted)
    return this.info
  }

  /** Who the client is for a backend's PROXY header and the Resolver. */
  whoNow(): ConnectionInfo {
    return this.who ?? this.peer()
  }

  /** The fiber-free path's dial answered. */
  connected(backend: net.Socket | undefined, error: ProxyError | undefined): void {
    dialedFast(this, backend, error)
  }
}
