// Client → proxy: the forward-path of RCPT TO (RFC 5321 §4.1.2), for routing by the recipient's domain.

const domainPattern = /^[\p{L}\p{N}_-]+(?:\.[\p{L}\p{N}_-]+)*$/u

/** The mailbox between "<" and ">", honouring a quoted local part that may itself hold ">" or "@". */
const pathOf = (argument: string): string | undefined => {
  const m = /^TO:[ \t]*</i.exec(argument)
  if (m === null) return undefined
  let quoted = false
  for (let i = m[0].length; i < argument.length; i++) {
    const c = argument[i]
    if (quoted) {
      if (c === "\\") i++
      else if (c === '"') quoted = false
    } else if (c === '"') quoted = true
    else if (c === ">") return argument.slice(m[0].length, i)
  }
  return undefined
}

/**
 * The lower-cased domain of a RCPT TO argument ("TO:<a@Tenant.Example.> NOTIFY=NEVER" → "tenant.example"), or
 * undefined when there is none to route by: "<postmaster>", an address literal, or a malformed path.
 */
export const recipientDomain = (argument: string): string | undefined => {
  let path = pathOf(argument)
  if (path === undefined) return undefined
  // An obsolete source route ("@relay.example:user@tenant.example") names the final mailbox after its colon.
  if (path.startsWith("@")) {
    const colon = path.indexOf(":")
    if (colon < 0) return undefined
    path = path.slice(colon + 1)
  }
  const at = path.lastIndexOf("@")
  if (at <= 0) return undefined
  let domain = path.slice(at + 1)
  if (domain.endsWith(".")) domain = domain.slice(0, -1)
  domain = domain.toLowerCase()
  return domain.length > 0 && domain.length <= 253 && domainPattern.test(domain) ? domain : undefined
}
