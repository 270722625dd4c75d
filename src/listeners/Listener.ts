// A byte listener (tcp, postgres, mysql, mongodb, smtp): its server and its handle, wired to the phases of
// src/pipeline: accept → identify → resolve → vet → admit → connect → replay → relay → close. A connection whose
// phases may wait goes through a short handshake fiber (pipeline/handshake.ts) that ends once the relay can start;
// one whose phases answer at once (a cached fixed route, an SNI peek) takes the same phases as callbacks
// (pipeline/fast.ts). The relay that follows is plain Node callbacks either way.

import * as net from "node:net"
import * as Effect from "effect/Effect"
import type { ListenerConfig } from "../config/Config.ts"
import { listen } from "../pipeline/accept.ts"
import { admitAccepted } from "../pipeline/admit.ts"
import { Connection } from "../pipeline/Connection.ts"
import { abandon, refuse } from "../pipeline/close.ts"
import { startConnection } from "../pipeline/fast.ts"
import {
  type ListenerLogging,
  type ListenerServices,
  ListenerState,
  type ListenerTimeouts
} from "../pipeline/ListenerState.ts"
import { errorPlaceholder } from "../relay/relay.ts"
import type { Admission } from "./Admission.ts"
import { setOnListeningSocket, tcpKeepAlive } from "./keepAlive.ts"
import type { Protocol } from "./Protocol.ts"

export type { ListenerLogging, ListenerTimeouts } from "../pipeline/ListenerState.ts"

export interface RunningListener {
  readonly name: string
  readonly host: string
  readonly port: number
  /** Connections open now (handshaking or relaying). */
  readonly open: () => number
  /** Stop accepting; open connections go on. */
  readonly stopAccepting: () => void
  /** Resolves when no connection is open. */
  readonly whenIdle: () => Promise<void>
  /** Ends whatever is still open (after the drain deadline). */
  readonly destroyAll: () => void
  /** For the admin dashboard, counted when asked (one pass over the open connections, nothing per connection). */
  readonly census?: () => ListenerCensus
  /** Connections that took the fiber-free path so far (see pipeline/fast.ts). */
  readonly fastConnections?: () => number
}

export interface ListenerCensus {
  /** Open connections per resource, once identified. */
  readonly resources: ReadonlyMap<string, number>
  /** Bytes the open connections' client sockets have read and written so far (not yet in the byte counters). */
  readonly bytesRead: number
  readonly bytesWritten: number
}

// Shared handler: found through `this`, so accepting a connection allocates no closure for it. Until the relay
// attaches its own listener and drops this one (a listener per event, not an array of two).
const ignoreError = errorPlaceholder(() => {})

/** accept: the limits and the PROXY header's sender checked (admit.ts), the connection tracked, its path chosen. */
const accepted = (p: ListenerState, socket: net.Socket, tune: ((socket: net.Socket) => void) | undefined) => {
  socket.on("error", ignoreError)
  tune?.(socket)
  p.metrics.accepted()
  const refusal = admitAccepted(p, socket)
  if (refusal !== undefined) {
    // Not tracked in `open` and nothing entered in `admission`: the refusal releases nothing.
    refuse(p, new Connection(p, socket, p.clientInfo(socket), 0), refusal)
    return
  }
  p.open.set(socket, "")
  const started = performance.now()
  // The peer's address is read now unless only a fixed route's fiber-free path would carry it (ListenerState.peerRead).
  const info = p.fixedRoute === undefined || p.peerRead ? p.clientInfo(socket) : undefined
  const c = new Connection(p, socket, info, started)
  p.handshaking.add(c)
  startConnection(p, c)
}

/** Starts one listener for `protocol`. The returned handle lets the composition root drain all listeners together. */
export const startListener = Effect.fnUntraced(function* (
  protocol: Protocol,
  config: ListenerConfig,
  timeouts: ListenerTimeouts,
  admission: Admission,
  logging: ListenerLogging = { connections: true, sample: 1 },
  wakeLockSeconds = 30
) {
  const context = yield* Effect.context<ListenerServices>()
  const p = new ListenerState(protocol, config, timeouts, admission, logging, wakeLockSeconds, context)
  const { log, name, label, open } = p

  // TCP keep-alive on client sockets (`tcp.keepAlive`): the server option, or `tune` per socket in its place.
  const keepAlive = tcpKeepAlive()
  const tune = keepAlive.tune
  const server = net.createServer(
    {
      allowHalfOpen: true,
      pauseOnConnect: !protocol.readsHandshake,
      noDelay: true,
      keepAlive: keepAlive.keepAlive,
      keepAliveInitialDelay: keepAlive.keepAliveInitialDelay
    },
    (socket) => accepted(p, socket, tune)
  )
  // Before listen's own callback: nothing is accepted before the options are on the listening socket.
  server.once("listening", () => setOnListeningSocket(server, keepAlive))
  // A failed bind is the start's error (the caller's), not a log line of its own: only a listening server's count.
  server.on("error", (err) => {
    if (server.listening) log.error("listener error", { listener: name, protocol: label, message: err.message })
  })
  const address = yield* listen(server, config.host, config.port)
  log.info("listening", { listener: name, protocol: label, host: address.address, port: address.port })

  const running: RunningListener = {
    name,
    host: address.address,
    port: address.port,
    open: () => open.size,
    stopAccepting: () => {
      server.close()
    },
    whenIdle: () => (open.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => p.idleWaiters.push(resolve))),
    destroyAll: () => {
      // A handshake fiber's interruption ends its connection through the fiber's exit (handshake.ts).
      for (const c of p.handshaking) {
        if (c.fiber !== undefined) c.fiber.interruptUnsafe()
        else abandon(p, c)
      }
      for (const socket of open.keys()) socket.destroy()
    },
    census: () => {
      const resources = new Map<string, number>()
      let bytesRead = 0
      let bytesWritten = 0
      for (const [socket, resource] of open) {
        bytesRead += socket.bytesRead
        bytesWritten += socket.bytesWritten
        if (resource !== "") resources.set(resource, (resources.get(resource) ?? 0) + 1)
      }
      return { resources, bytesRead, bytesWritten }
    },
    fastConnections: () => p.fastConnections
  }
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      server.close()
      running.destroyAll()
    })
  )
  return running
})
