// "host:port" as resolvers return it, parsed once; IPv6 literals come in brackets ("[::1]:5432").

export interface Endpoint {
  /** Hostname or IP literal, without brackets. */
  readonly host: string
  readonly port: number
}

/** A backend address whose host the SSRF guard has resolved and vetted: dial `ip`, never `host` again. */
export interface VettedEndpoint extends Endpoint {
  readonly ip: string
  readonly family: 4 | 6
}

/** Parses "host:port" / "[v6]:port". Returns a message instead of throwing so callers choose the error. */
export const parseEndpoint = (text: string): Endpoint | string => {
  const s = text.trim()
  let host: string
  let portText: string
  if (s.startsWith("[")) {
    const close = s.indexOf("]")
    if (close < 0 || s[close + 1] !== ":") return `endpoint "${text}": expected "[ipv6]:port"`
    host = s.slice(1, close)
    portText = s.slice(close + 2)
  } else {
    const colon = s.lastIndexOf(":")
    if (colon <= 0) return `endpoint "${text}": expected "host:port"`
    host = s.slice(0, colon)
    portText = s.slice(colon + 1)
    if (host.includes(":")) return `endpoint "${text}": IPv6 addresses must be written in brackets, "[${host}]:port"`
  }
  if (!/^\d{1,5}$/.test(portText)) return `endpoint "${text}": port "${portText}" is not a number`
  const port = Number(portText)
  if (port < 1 || port > 65535) return `endpoint "${text}": port ${port} is out of range 1..65535`
  if (host.length === 0) return `endpoint "${text}": empty host`
  return { host, port }
}

export const formatEndpoint = (e: Endpoint): string =>
  e.host.includes(":") ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`

/**
 * The circuit breaker's key of a vetted backend: its address, so every listener and route that reaches the same
 * backend (tcp, a protocol listener, HTTP) shares one breaker.
 */
export const breakerKey = (target: VettedEndpoint): string => `${target.ip}:${target.port}`
