// Client → proxy: the Host field (or an absolute-form target's authority, or HTTP/2 :authority), which is the
// routing key of the HTTP listener.
import { isIPv6 } from "node:net"

export interface Authority {
  /** Lower-cased, without brackets, port or trailing dot: the resource id handed to the Resolver. */
  readonly hostname: string
  /** 0 when the authority names none. */
  readonly port: number
}

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/
const IPV4 = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/

const validName = (name: string): boolean => {
  if (name.length === 0 || name.length > 253) return false
  if (IPV4.test(name)) return true
  const labels = name.split(".")
  for (const label of labels) if (!LABEL.test(label)) return false
  // A name whose last label is numeric is not a host name but a mangled address ("127.1", "2130706433").
  return !/^\d+$/.test(labels[labels.length - 1]!)
}

/** Parses "Example.COM:8080", "[::1]:443" or "10.0.0.1"; returns why it is not a host when it is not one. */
export const parseAuthority = (value: string): Authority | string => {
  if (value.length === 0) return "empty Host"
  let host: string
  let rest: string
  if (value.charCodeAt(0) === 0x5b) {
    const close = value.indexOf("]")
    if (close < 0) return `Host "${value}" has an unclosed IPv6 bracket`
    host = value.slice(1, close).toLowerCase()
    if (!isIPv6(host) || host.includes("%")) return `Host "${value}" is not an IPv6 address`
    rest = value.slice(close + 1)
    if (rest.length > 0 && rest.charCodeAt(0) !== 0x3a) return `Host "${value}" has bytes after its IPv6 address`
  } else {
    const colon = value.indexOf(":")
    host = (colon < 0 ? value : value.slice(0, colon)).toLowerCase()
    rest = colon < 0 ? "" : value.slice(colon)
    if (host.endsWith(".")) host = host.slice(0, -1)
    if (!validName(host)) return `Host "${value}" is not a valid host name`
  }
  let port = 0
  if (rest.length > 1) {
    const digits = rest.slice(1)
    if (!/^\d{1,5}$/.test(digits)) return `Host "${value}" has an invalid port`
    port = Number(digits)
    if (port < 1 || port > 65535) return `Host "${value}" has a port out of range`
  }
  return { hostname: host, port }
}
