// Proxy → backend: the PROXY protocol v1 header (HAProxy's proxy-protocol.txt §2.1), sent before the backend's
// greeting so it can log, rate-limit and check SPF against the client's address instead of the proxy's.

export interface Peer {
  readonly address: string
  readonly port: number
}

const ipv4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/
const ipv6 = /^[0-9a-fA-F:.]+$/

/** An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d; the header wants the address the client has. */
const plain = (address: string) =>
  address.toLowerCase().startsWith("::ffff:") && ipv4.test(address.slice(7)) ? address.slice(7) : address

const family = (address: string): "TCP4" | "TCP6" | undefined => {
  if (ipv4.test(address)) return "TCP4"
  // A zone id ("fe80::1%eth0") cannot be written in the header.
  if (address.includes(":") && ipv6.test(address)) return "TCP6"
  return undefined
}

const validPort = (port: number) => Number.isInteger(port) && port > 0 && port < 65536

/** "PROXY TCP4 src dst sport dport\r\n", or "PROXY UNKNOWN\r\n" when the addresses cannot be told. */
export const encodeProxyV1 = (source: Peer, destination: Peer): Buffer => {
  const src = plain(source.address)
  const dst = plain(destination.address)
  const f = family(src)
  if (f === undefined || family(dst) !== f || !validPort(source.port) || !validPort(destination.port)) {
    return Buffer.from("PROXY UNKNOWN\r\n", "latin1")
  }
  return Buffer.from(`PROXY ${f} ${src} ${dst} ${source.port} ${destination.port}\r\n`, "latin1")
}
