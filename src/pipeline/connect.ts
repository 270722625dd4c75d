// connect phase of the byte listeners: through the backend's breaker (admit.ts), dial the vetted IP with the route's
// deadline (`timeout`, else timeouts.connect; listeners/dial.ts). `connectNow` is the callback form, which the
// fiber-free path calls with the connection itself as the waiter; `connect` wraps it for the handshake fiber and adds
// the cold-start wait of a wakeable route whose backend refuses.
import type * as net from "node:net"
import * as Effect from "effect/Effect"
import type { VettedEndpoint } from "../domain/Endpoint.ts"
import type { ProxyError } from "../domain/ProxyError.ts"
import type { Route } from "../domain/Route.ts"
import { cancelDial, type DialWaiter, dial, dialNow } from "../listeners/dial.ts"
import { admitBackend } from "./admit.ts"
import { asleep } from "./coldStart.ts"
import type { ListenerState } from "./ListenerState.ts"

/** The dial's deadline in ms: the route's own, else timeouts.connect (0: the kernel's). */
export const connectTimeoutMs = (p: ListenerState, route: Route): number => (route.timeout ?? p.timeouts.connect) * 1000

/** Who waits for a dial of the connect phase: its answer tells the backend's breaker, then `connected` goes on. */
export abstract class Dialing implements DialWaiter {
  readonly p: ListenerState
  target: VettedEndpoint
  /** The breaker's key of `target`. */
  key: string
  /** The socket being dialed (then the dialed one). */
  backend: net.Socket | undefined = undefined
  constructor(p: ListenerState, target: VettedEndpoint, key: string) {
    this.p = p
    this.target = target
    this.key = key
  }
  dialed(socket: net.Socket | undefined, error: ProxyError | undefined): void {
    if (socket === undefined) this.p.breaker.failure(this.key, error!.message)
    else this.p.breaker.success(this.key)
    this.connected(socket, error)
  }
  /** Told once: the connected socket, or why not (the socket is destroyed then). */
  abstract connected(socket: net.Socket | undefined, error: ProxyError | undefined): void
}

/**
 * connect, callback form: the breaker's gate, then the dial of `waiter.target`. Returns the breaker's refusal, or
 * undefined and `waiter.dialed` comes later (never before this returns), unless `cancelDial(waiter.backend)` first.
 */
export const connectNow = (waiter: Dialing, timeoutMs: number): ProxyError | undefined => {
  const refused = admitBackend(waiter.p, waiter.key, waiter.target)
  if (refused !== undefined) return refused
  waiter.backend = dialNow(waiter, timeoutMs, waiter.p.relayOnly)
  return undefined
}

class FiberDial extends Dialing {
  readonly resume: (effect: Effect.Effect<net.Socket, ProxyError>) => void
  constructor(
    p: ListenerState,
    target: VettedEndpoint,
    key: string,
    resume: (effect: Effect.Effect<net.Socket, ProxyError>) => void
  ) {
    super(p, target, key)
    this.resume = resume
  }
  connected(socket: net.Socket | undefined, error: ProxyError | undefined): void {
    this.resume(error === undefined ? Effect.succeed(socket!) : Effect.fail(error))
  }
}

/** connect for the handshake fiber; a wakeable route whose backend refuses is treated as asleep: woken, then dialed. */
export const connect = (
  p: ListenerState,
  resourceId: string,
  route: Route,
  target: VettedEndpoint
): Effect.Effect<net.Socket, ProxyError> => {
  const timeoutMs = connectTimeoutMs(p, route)
  const attempt = Effect.callback<net.Socket, ProxyError>((resume) => {
    const waiter = new FiberDial(p, target, p.keyOf(target), resume)
    const refused = connectNow(waiter, timeoutMs)
    if (refused !== undefined) return resume(Effect.fail(refused))
    const socket = waiter.backend!
    return Effect.sync(() => cancelDial(socket))
  })
  if (route.metadata.wakeable !== true) return attempt
  return attempt.pipe(
    Effect.catchIf(asleep, () =>
      Effect.andThen(p.waking.untilAccepting(resourceId, target, timeoutMs), dial(target, timeoutMs, p.relayOnly))
    )
  )
}
