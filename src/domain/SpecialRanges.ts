// Which IP addresses a proxy must not dial on a tenant's behalf (SSRF), and the operator's allow list.
// Pure: no I/O, so the SSRF guard and config validation share one definition of "special".
import ipaddr from "ipaddr.js"

type Ip = ipaddr.IPv4 | ipaddr.IPv6

/** A special-purpose range an address falls in; `name` carries its article so messages read naturally. */
export interface SpecialRange {
  /** CIDR of the range, e.g. "10.0.0.0/8"; for an IPv4 address hidden in an IPv6 one, "127.0.0.0/8 via 2002::/16". */
  readonly range: string
  /** e.g. "a private address" */
  readonly name: string
}

// IANA IPv4/IPv6 Special-Purpose Address Registries, plus multicast and the names attackers aim at.
// The most specific match wins, so a metadata address inside link-local is reported by its own name.
const ipv4Ranges: ReadonlyArray<readonly [cidr: string, name: string]> = [
  ["0.0.0.0/8", 'a "this network" address'],
  ["0.0.0.0/32", "the unspecified address"],
  ["10.0.0.0/8", "a private address"],
  ["100.64.0.0/10", "a carrier-grade NAT (shared) address"],
  ["100.100.100.200/32", "a cloud metadata address (Alibaba Cloud)"],
  ["127.0.0.0/8", "a loopback address"],
  ["169.254.0.0/16", "a link-local address"],
  ["169.254.169.254/32", "a cloud metadata address (AWS, GCP, Azure, OpenStack)"],
  ["169.254.170.2/32", "a cloud metadata address (AWS ECS task credentials)"],
  // Public space, yet every Azure VM reaches the host agent here: a classic SSRF target.
  ["168.63.129.16/32", "a cloud platform address (Azure WireServer)"],
  ["172.16.0.0/12", "a private address"],
  ["192.0.0.0/24", "an IETF protocol assignment address"],
  ["192.0.0.192/32", "a cloud metadata address (Oracle Cloud)"],
  ["192.0.2.0/24", "a documentation address (TEST-NET-1)"],
  ["192.31.196.0/24", "an AS112 DNS sink address"],
  ["192.52.193.0/24", "an AMT relay anycast address"],
  ["192.88.99.0/24", "a 6to4 relay anycast address (deprecated)"],
  ["192.168.0.0/16", "a private address"],
  ["192.175.48.0/24", "an AS112 DNS sink address"],
  ["198.18.0.0/15", "a benchmarking address"],
  ["198.51.100.0/24", "a documentation address (TEST-NET-2)"],
  ["203.0.113.0/24", "a documentation address (TEST-NET-3)"],
  ["224.0.0.0/4", "a multicast address"],
  ["240.0.0.0/4", "a reserved address"],
  ["255.255.255.255/32", "the limited broadcast address"]
]

const ipv6Ranges: ReadonlyArray<readonly [cidr: string, name: string]> = [
  ["::/128", "the unspecified address"],
  ["::1/128", "the loopback address"],
  ["::/96", "an IPv4-compatible address (deprecated)"],
  ["::ffff:0:0:0/96", "an IPv4-translated address"],
  ["64:ff9b:1::/48", "a local-use NAT64 address"],
  ["100::/64", "a discard-only address"],
  ["100:0:0:1::/64", "a dummy address"],
  ["2001::/23", "an IETF protocol assignment address"],
  ["2001::/32", "a Teredo address"],
  ["2001:2::/48", "a benchmarking address"],
  ["2001:3::/32", "an AMT address"],
  ["2001:4:112::/48", "an AS112 DNS sink address"],
  ["2001:10::/28", "an ORCHID address (deprecated)"],
  ["2001:20::/28", "an ORCHIDv2 address"],
  ["2001:30::/28", "a drone remote ID address"],
  ["2001:db8::/32", "a documentation address"],
  ["2002::/16", "a 6to4 address"],
  ["2620:4f:8000::/48", "an AS112 DNS sink address"],
  ["3fff::/20", "a documentation address"],
  ["5f00::/16", "an SRv6 segment identifier"],
  ["fc00::/7", "a unique local address"],
  ["fd00:ec2::254/128", "a cloud metadata address (AWS IMDS)"],
  ["fd20:ce::254/128", "a cloud metadata address (GCP)"],
  ["fe80::/10", "a link-local address"],
  ["fec0::/10", "a site-local address (deprecated)"],
  ["ff00::/8", "a multicast address"]
]

interface Entry {
  readonly net: Ip
  readonly bits: number
  readonly cidr: string
  readonly name: string
}

const compile = (table: ReadonlyArray<readonly [string, string]>): ReadonlyArray<Entry> =>
  table.map(([cidr, name]) => {
    const [net, bits] = ipaddr.parseCIDR(cidr)
    return { net, bits, cidr, name }
  })

const v4Entries = compile(ipv4Ranges)
const v6Entries = compile(ipv6Ranges)

const mostSpecific = (addr: Ip, entries: ReadonlyArray<Entry>): Entry | undefined => {
  let best: Entry | undefined
  for (const e of entries) {
    if (e.net.kind() === addr.kind() && addr.match(e.net, e.bits) && (best === undefined || e.bits > best.bits))
      best = e
  }
  return best
}

const cidr6 = (text: string): [ipaddr.IPv6, number] => ipaddr.IPv6.parseCIDR(text)
const mapped = cidr6("::ffff:0:0/96")
const translated = cidr6("::ffff:0:0:0/96")
const compatible = cidr6("::/96")
const nat64 = cidr6("64:ff9b::/96")
const nat64Local = cidr6("64:ff9b:1::/48")
const sixToFour = cidr6("2002::/16")
const globalUnicast = cidr6("2000::/3")

const v4From = (hi: number, lo: number): ipaddr.IPv4 => new ipaddr.IPv4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff])

interface Embedding {
  readonly v4: ipaddr.IPv4
  readonly via: string
  readonly name: string
  /** The IPv6 form reaches the same host as the IPv4 one, so a public IPv4 inside it is public too. */
  readonly transparent: boolean
}

// The OS or a translator on the path turns these into IPv4 packets, so `::ffff:127.0.0.1` or
// `2002:7f00:1::` would otherwise smuggle 127.0.0.1 past an IPv6-only check.
const embeddedIpv4 = (a: ipaddr.IPv6): Embedding | undefined => {
  const p = a.parts
  const last = (): ipaddr.IPv4 => v4From(p[6]!, p[7]!)
  if (a.match(mapped)) return { v4: last(), via: "::ffff:0:0/96", name: "an IPv4-mapped address", transparent: true }
  // DNS64 synthesises these for IPv4-only backends in IPv6-only clusters: refusing them all would break those.
  if (a.match(nat64)) return { v4: last(), via: "64:ff9b::/96", name: "a NAT64 address", transparent: true }
  if (a.match(translated))
    return { v4: last(), via: "::ffff:0:0:0/96", name: "an IPv4-translated address", transparent: false }
  // Operators carve /96 prefixes out of the local-use /48; the IPv4 then sits in the last 32 bits.
  if (a.match(nat64Local))
    return { v4: last(), via: "64:ff9b:1::/48", name: "a local-use NAT64 address", transparent: false }
  if (a.match(sixToFour))
    return { v4: v4From(p[1]!, p[2]!), via: "2002::/16", name: "a 6to4 address", transparent: false }
  // :: and ::1 are addresses in their own right, not IPv4 0.0.0.0 / 0.0.0.1.
  if (a.match(compatible) && (p[6] !== 0 || p[7]! > 1))
    return { v4: last(), via: "::/96", name: "an IPv4-compatible address (deprecated)", transparent: false }
  return undefined
}

/**
 * Parses an address the way the OS would read it. ipaddr.js rewrites `::a.b.c.d` into the mapped
 * `::ffff:a.b.c.d`, but the socket layer reads it as IPv4-compatible `::a.b.c.d`: we follow the socket.
 * IPv4 shorthand (`127.1`, `0x7f000001`) parses too, as inet_aton would read it.
 */
const parseIp = (text: string): Ip | undefined => {
  try {
    const addr = ipaddr.parse(text)
    if (addr.kind() === "ipv6" && text.startsWith("::") && text.includes(".") && !text.slice(2).includes(":")) {
      const v6 = addr as ipaddr.IPv6
      const parts = v6.parts.slice()
      parts[5] = 0
      return new ipaddr.IPv6(parts)
    }
    return addr
  } catch {
    return undefined
  }
}

const notAnIp: SpecialRange = { range: "unparseable", name: "not an IP address" }
const outsideGlobal: SpecialRange = { range: "outside 2000::/3", name: "an IPv6 address outside global unicast space" }

const classifyV4 = (a: ipaddr.IPv4): SpecialRange | undefined => {
  const e = mostSpecific(a, v4Entries)
  return e && { range: e.cidr, name: e.name }
}

const classifyAddr = (addr: Ip): SpecialRange | undefined => {
  if (addr.kind() === "ipv4") return classifyV4(addr as ipaddr.IPv4)
  const a = addr as ipaddr.IPv6
  const embedded = embeddedIpv4(a)
  if (embedded !== undefined) {
    const inner = classifyV4(embedded.v4)
    if (inner !== undefined) {
      return { range: `${inner.range} via ${embedded.via}`, name: `${inner.name} embedded in ${embedded.name}` }
    }
    if (embedded.transparent) return undefined
  }
  const e = mostSpecific(a, v6Entries)
  if (e !== undefined) return { range: e.cidr, name: e.name }
  // IANA has only ever allocated 2000::/3 for global unicast; anything else is reserved or future use.
  return a.match(globalUnicast) ? undefined : outsideGlobal
}

/**
 * The special-purpose range `ip` belongs to, or undefined for a public address that is fine to dial.
 * Fails closed: a string that is not an IP address is reported as special, never as public.
 */
export const classifyIp = (ip: string): SpecialRange | undefined => {
  const addr = parseIp(ip)
  return addr === undefined ? notAnIp : classifyAddr(addr)
}

/** 0.0.0.0, :: and ::ffff:0.0.0.0: Linux dials the local host for these, so they are never a backend. */
export const isUnspecifiedIp = (ip: string): boolean => {
  const addr = parseIp(ip)
  if (addr === undefined) return false
  const a = addr.kind() === "ipv6" && addr.match(mapped) ? (addr as ipaddr.IPv6).toIPv4Address() : addr
  return a.toByteArray().every((b) => b === 0)
}

/** A parsed allow list; build it with `parseCidrList`. */
export interface CidrList {
  readonly entries: ReadonlyArray<readonly [Ip, number]>
}

const digits = /^\d{1,3}$/

const parseEntry = (raw: string): readonly [Ip, number] | string => {
  const text = raw.trim()
  const bad = (why: string) => `allow-list entry "${raw}" ${why}`
  if (text.length === 0) return bad("is empty")
  const slash = text.indexOf("/")
  const addrText = slash < 0 ? text : text.slice(0, slash)
  const bitsText = slash < 0 ? undefined : text.slice(slash + 1)
  let addr: Ip
  if (addrText.includes(":")) {
    if (addrText.includes("%") || !ipaddr.IPv6.isValid(addrText)) return bad("is not a valid IPv6 CIDR (e.g. fd00::/8)")
    addr = parseIp(addrText)!
  } else {
    // Four decimal parts only: a config that says "10.1/16" should not silently mean 10.0.0.1.
    if (!ipaddr.IPv4.isValidFourPartDecimal(addrText)) return bad("is not a valid IPv4 CIDR (e.g. 10.0.0.0/8)")
    addr = ipaddr.IPv4.parse(addrText)
  }
  const max = addr.kind() === "ipv4" ? 32 : 128
  if (bitsText !== undefined && !digits.test(bitsText)) return bad(`has a prefix length that is not a number`)
  const bits = bitsText === undefined ? max : Number(bitsText)
  if (bits > max) return bad(`has a prefix length above ${max}`)
  const network =
    addr.kind() === "ipv4"
      ? ipaddr.IPv4.networkAddressFromCIDR(`${addr.toString()}/${bits}`)
      : ipaddr.IPv6.networkAddressFromCIDR(`${addr.toString()}/${bits}`)
  // "10.1.2.3/8" is most likely a typo for a narrower range; make the operator say what they mean.
  if (network.toString() !== addr.toString())
    return bad(`has host bits set; did you mean "${network.toString()}/${bits}"?`)
  if (addr.kind() === "ipv6" && bits >= 96 && addr.match(mapped)) {
    return [(addr as ipaddr.IPv6).toIPv4Address(), bits - 96]
  }
  return [addr, bits]
}

/** Parses CIDR ranges ("10.0.0.0/8", "fd00::/8", or a bare address); returns a message naming the first bad entry. */
export const parseCidrList = (list: ReadonlyArray<string>): CidrList | string => {
  const entries: Array<readonly [Ip, number]> = []
  for (const raw of list) {
    const parsed = parseEntry(raw)
    if (typeof parsed === "string") return parsed
    entries.push(parsed)
  }
  return { entries }
}

/** Whether `ip` is in the list; `::ffff:a.b.c.d` counts as a.b.c.d because the socket dials exactly that host. */
export const cidrListContains = (list: CidrList, ip: string): boolean => {
  const addr = parseIp(ip)
  if (addr === undefined) return false
  const v4 = addr.kind() === "ipv6" && addr.match(mapped) ? (addr as ipaddr.IPv6).toIPv4Address() : undefined
  for (const [net, bits] of list.entries) {
    if (net.kind() === addr.kind() && addr.match(net, bits)) return true
    if (v4 !== undefined && net.kind() === "ipv4" && v4.match(net, bits)) return true
  }
  return false
}
