// After a 101 to the protocol the client offered (WebSocket): the client connection leaves HTTP/1.x and a byte relay
// carries both ways until either side closes, with the tunnel's own idle and half-close limits.
import type * as net from "node:net"
import type { ResponseHead } from "../../codec/http/index.ts"
import { relay } from "../../relay/relay.ts"
import { detach } from "./h1request.ts"
import { clientResponseHead } from "./headers.ts"
import type { HttpSettings } from "./settings.ts"

/**
 * Answers the 101 and relays `client` ⇄ `backend`: `rest` (backend bytes read past its head) goes to the client,
 * `held` (client bytes read past the request) to the backend. `done` gets the bytes the backend sent through the
 * tunnel once both sides are closed. False, and nothing started, when the client is already gone.
 */
export const tunnel = (
  client: net.Socket,
  backend: net.Socket,
  head: ResponseHead,
  rest: Buffer | undefined,
  held: Buffer | undefined,
  settings: HttpSettings,
  done: (bytesFromBackend: number) => void
): boolean => {
  detach(client, true)
  if (client.destroyed) {
    backend.destroy()
    return false
  }
  client.write(
    clientResponseHead(head, { transferEncoding: undefined, connection: 0, extra: "", upgrade: true }),
    "latin1"
  )
  if (rest !== undefined) client.write(rest)
  if (held !== undefined) backend.write(held)
  backend.allowHalfOpen = true
  // A reused backend socket counts the earlier exchanges' bytes too: only what follows belongs to this one.
  const base = backend.bytesRead
  relay(client, backend, (totals) => done(totals.bytesFromBackend - base), {
    idleTimeoutMs: settings.tunnelIdleMs,
    halfCloseMs: settings.tunnelHalfCloseMs
  })
  return true
}
