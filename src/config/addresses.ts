// Where the listeners and the admin endpoint bind. Each host must be something listen() can take, and no two may ask
// for the same port on overlapping addresses: the kernel would refuse the second with EADDRINUSE once serve starts,
// so the decoder refuses it first (and check-config with it).
import { isIP } from "node:net"
import ipaddr from "ipaddr.js"
import { ConfigError, show, str } from "./fields.ts"

const label = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
const hostName = new RegExp(`^(?=.{1,253}$)${label}(?:\\.${label})*\\.?$`, "i")

/** A listen address: an IP literal (IPv6 without brackets) or a host name of this machine. */
export const listenHost = (v: unknown, key: string, fallback: string): string => {
  const h = str(v, key, fallback)
  if (isIP(h) !== 0) return h
  let why: string | undefined
  if (h.startsWith("[")) why = "write an IPv6 address without brackets"
  // A name's last label is never all digits, so this was meant as an IPv4 address (999.1.1.1, 10.0.0.1.5).
  else if (/(?:^|\.)\d+\.?$/.test(h)) why = "not a valid IPv4 address"
  else if (!hostName.test(h)) why = "not a valid host name"
  if (why === undefined) return h
  throw new ConfigError(key, `expected an IP address or a host name to listen on, got ${show(h)} (${why})`)
}

/** One socket the config asks to listen on: the key that names it ("listeners.http", "admin"), host and port. */
export interface Bind {
  readonly key: string
  readonly host: string
  readonly port: number
}

/** IPv6 in its short form, an IPv4-mapped address as the IPv4 one it is: the same address compares equal. */
const canonical = (host: string): string => {
  if (isIP(host) === 0) return host.toLowerCase().replace(/\.$/, "")
  try {
    return ipaddr.process(host).toString()
  } catch {
    return host.toLowerCase()
  }
}

/**
 * Whether the kernel refuses to listen on both (as Linux does, SO_REUSEADDR or not): the same address; `::`, which
 * Node binds dual-stack, against anything; `0.0.0.0` against any IPv4 address. A host name is taken to resolve to an
 * IPv4 address ("localhost" to 127.0.0.1 or ::1), as listen() picks the first answer.
 */
const overlap = (a: string, b: string): boolean => {
  if (a === b || a === "::" || b === "::") return true
  const ipv4OrName = (h: string) => isIP(h) !== 6
  if (a === "0.0.0.0") return ipv4OrName(b)
  if (b === "0.0.0.0") return ipv4OrName(a)
  const loopback = (h: string) => h === "127.0.0.1" || h === "::1"
  return (a === "localhost" && loopback(b)) || (b === "localhost" && loopback(a))
}

const hostPort = (b: Bind): string => `${b.host.includes(":") ? `[${b.host}]` : b.host}:${b.port}`

/** Refuses two binds on the same port (other than 0, any free port) whose addresses overlap, naming the later one. */
export const distinctBinds = (binds: ReadonlyArray<Bind>): void => {
  for (let i = 1; i < binds.length; i++) {
    const b = binds[i]!
    if (b.port === 0) continue
    const first = binds.slice(0, i).find((a) => a.port === b.port && overlap(canonical(a.host), canonical(b.host)))
    if (first === undefined) continue
    throw new ConfigError(
      `${b.key}.port`,
      `${hostPort(b)} overlaps ${first.key} on ${hostPort(first)}; the second could not listen (EADDRINUSE)`
    )
  }
}
