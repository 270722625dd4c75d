// Client → proxy: the EHLO/HELO argument as a routing key (RFC 5321 §4.1.1.1); server → client: the EHLO reply's
// capability lines (the greeting line first, then one extension keyword and its parameters per line).
import type { Reply } from "./Reply.ts"

export type HeloDomain =
  | { readonly _tag: "Domain"; readonly key: string }
  | { readonly _tag: "Literal"; readonly literal: string }
  | { readonly _tag: "Invalid"; readonly reason: string }

// Letters and digits of any script (an SMTPUTF8 client may send U-labels), hyphen, and the underscore that
// real-world host names carry although RFC 1123 forbids it.
const domainPattern = /^[\p{L}\p{N}_-]+(?:\.[\p{L}\p{N}_-]+)*$/u

/**
 * The routing key of an EHLO/HELO argument: its first word, lower-cased, one trailing dot dropped (a fully
 * qualified "tenant.example." is the same host as "tenant.example"). Address literals such as "[192.0.2.1]" name no
 * tenant, and are reported as such for the caller to route by default or refuse.
 */
export const parseHeloDomain = (argument: string): HeloDomain => {
  const word = argument.split(/[ \t]/, 1)[0] ?? ""
  if (word === "") return { _tag: "Invalid", reason: "a domain name is required" }
  if (word.startsWith("[")) {
    return word.endsWith("]") && word.length > 2
      ? { _tag: "Literal", literal: word }
      : { _tag: "Invalid", reason: "malformed address literal" }
  }
  const name = (word.endsWith(".") ? word.slice(0, -1) : word).toLowerCase()
  if (name.length === 0 || name.length > 253 || !domainPattern.test(name)) {
    return { _tag: "Invalid", reason: "invalid domain name" }
  }
  return { _tag: "Domain", key: name }
}

/** The extension keyword of a capability line ("AUTH PLAIN LOGIN" → "AUTH"), upper-cased. */
export const keywordOf = (line: string): string => {
  const space = line.search(/[ \t=]/)
  return (space < 0 ? line : line.slice(0, space)).toUpperCase()
}

/** Whether an EHLO reply advertises `keyword`. The first line is the server's greeting, never a capability. */
export const hasCapability = (reply: Reply, keyword: string): boolean => {
  const wanted = keyword.toUpperCase()
  for (let i = 1; i < reply.lines.length; i++) if (keywordOf(reply.lines[i]!) === wanted) return true
  return false
}

/** The EHLO reply without the capabilities named in `drop` (upper-case keywords). */
export const withoutCapabilities = (reply: Reply, drop: ReadonlySet<string>): Reply => {
  const lines = reply.lines.filter((line, i) => i === 0 || !drop.has(keywordOf(line)))
  return lines.length === reply.lines.length ? reply : { code: reply.code, lines }
}
