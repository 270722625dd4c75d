// Which Host headers the admin endpoint answers (DNS rebinding), and which bind addresses count as loopback.
//
// A DNS-rebinding page runs on a name the attacker controls (rebind.evil.example), which is later made to resolve to
// the admin's address: the browser then calls the admin "same-origin", with that name as Host. Refusing unknown names
// stops it. An IP literal as Host is always safe: the page would have to be served from that very address and port,
// that is by the admin itself. So: any IP literal, `localhost`, the configured bind name and `admin.allowedHosts`.

import { BlockList, isIP } from "node:net"

/** `admin.allowedHosts` entries: a DNS name, or `*.` and a name (any one label in front of it). No port. */
const namePattern = /^(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/

export const validAllowedHost = (entry: string): boolean => namePattern.test(entry.toLowerCase())

const loopback = new BlockList()
loopback.addSubnet("127.0.0.0", 8, "ipv4")
loopback.addAddress("::1", "ipv6")

/** True for bind addresses only this machine can reach: `localhost`, 127.0.0.0/8, ::1 (BlockList also maps ::ffff:127.x). */
export const isLoopbackHost = (host: string): boolean => {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "")
  if (h === "localhost") return true
  const family = isIP(h)
  return family !== 0 && loopback.check(h, family === 4 ? "ipv4" : "ipv6")
}

/** A Host header split into its name (lowercase, brackets kept off IPv6, no trailing dot) and port; undefined if garbled. */
export const parseHostHeader = (header: string): { readonly name: string; readonly port: string } | undefined => {
  const m = /^(?:\[([0-9a-f:.]+)\]|([^:[\]/?#@\s]+))(?::(\d{1,5}))?$/i.exec(header)
  if (m === null) return undefined
  const name = m[1] ?? m[2]!.toLowerCase().replace(/\.$/, "")
  if (m[1] !== undefined && isIP(name) !== 6) return undefined
  return { name: name.toLowerCase(), port: m[3] ?? "" }
}

export type HostCheck = (header: string | undefined) => boolean

/** The Host check for an admin bound to `bindHost` with `admin.allowedHosts`. */
export const hostCheck = (allowed: ReadonlyArray<string>, bindHost: string): HostCheck => {
  const names = new Set<string>(["localhost"])
  const suffixes: Array<string> = []
  for (const entry of allowed) {
    const e = entry.toLowerCase().replace(/\.$/, "")
    if (e.startsWith("*.")) suffixes.push(e.slice(1))
    else names.add(e)
  }
  // Bound to a name (admin.host: admin.internal): that name is the admin's own.
  if (isIP(bindHost) === 0) names.add(bindHost.toLowerCase())
  return (header) => {
    // Only a browser can be rebound, and every browser sends Host; HTTP/1.0 tools may not.
    if (header === undefined) return true
    const host = parseHostHeader(header)
    if (host === undefined) return false
    if (isIP(host.name) !== 0 || names.has(host.name)) return true
    const dot = host.name.indexOf(".")
    // One label in front of the suffix, as route wildcards match.
    return dot > 0 && suffixes.includes(host.name.slice(dot))
  }
}
