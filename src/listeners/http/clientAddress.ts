// The client's address of an HTTP connection, set once at accept: the one a trusted load balancer's PROXY header
// named, else the socket's peer. X-Forwarded-For, Forwarded, the logs and the Resolver's ConnectionInfo read it here.
import type * as net from "node:net"

type Proxied = net.Socket & { proxiedClient?: { readonly address: string; readonly port: number } }

/** The PROXY header named `address`: it stands for the socket's peer (the balancer) from now on. */
export const setClientAddress = (socket: net.Socket, address: string, port: number): void => {
  ;(socket as Proxied).proxiedClient = { address, port }
}

/** Copies the client's address from `from` (the socket a TLS socket wraps); false when `from` has none. */
export const copyClientAddress = (from: net.Socket | undefined, to: net.Socket): boolean => {
  const client = (from as Proxied | undefined)?.proxiedClient
  if (client === undefined) return false
  ;(to as Proxied).proxiedClient = client
  return true
}

export const clientAddress = (socket: net.Socket): string =>
  (socket as Proxied).proxiedClient?.address ?? socket.remoteAddress ?? ""

export const clientPort = (socket: net.Socket): number =>
  (socket as Proxied).proxiedClient?.port ?? socket.remotePort ?? 0
