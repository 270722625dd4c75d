// Refusing state changes (purge, drain, reload) that a web page made the operator's browser send (CSRF). A page on
// another site can POST to the admin without CORS (a form, or fetch with mode "no-cors"): it cannot read the answer,
// but the drain already happened. Browsers mark such requests, tools (curl, kubectl exec, preStop hooks) do not:
// - `Sec-Fetch-Site` other than same-origin (or "none": typed by the user) is refused;
// - `Origin`, when present, must be the admin's own: its host[:port] is the request's Host (which passed hostCheck);
// - without the bearer token, a body of a type an HTML form can send (text/plain, urlencoded, multipart) is refused:
//   the admin API reads no body, and this catches browsers too old to send Origin on a form post.
// A bearer-token request is never a browser's doing (a page cannot add Authorization cross-site without a preflight
// this server does not answer), yet it gets the Origin checks as well: no caller of the API needs to send a foreign one.

import type * as http from "node:http"
import { parseHostHeader } from "./hosts.ts"

export interface Refusal {
  readonly status: number
  readonly error: string
  /** For the operator's log only. */
  readonly detail: Readonly<Record<string, string | undefined>>
}

/** Methods that change nothing: the rest (POST…) get `crossSite`. */
export const isSafeMethod = (method: string) => method === "GET" || method === "HEAD" || method === "OPTIONS"

const formTypes = new Set(["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])

const defaultPort = (protocol: string) => (protocol === "https:" ? "443" : protocol === "http:" ? "80" : "")

/** `Origin` names the same scheme-less authority as `Host`, default ports made explicit on both sides. */
const sameAuthority = (origin: string, hostHeader: string | undefined): boolean => {
  if (hostHeader === undefined) return false
  let url: URL
  try {
    url = new URL(origin)
  } catch {
    return false
  }
  const host = parseHostHeader(hostHeader)
  if (host === undefined || (url.protocol !== "http:" && url.protocol !== "https:")) return false
  const originName = url.hostname.toLowerCase().replace(/^\[|\]$/g, "")
  // Host without a port means the scheme's default one; a TLS proxy in front may make Origin https.
  return (
    originName === host.name && (url.port || defaultPort(url.protocol)) === (host.port || defaultPort(url.protocol))
  )
}

/** Why a state-changing request is refused, or undefined when it may go on. */
export const crossSite = (req: http.IncomingMessage, bearer: boolean): Refusal | undefined => {
  const site = req.headers["sec-fetch-site"]
  const origin = req.headers.origin
  const detail = { origin, host: req.headers.host, secFetchSite: site }
  if (site !== undefined && site !== "same-origin" && site !== "none") {
    return { status: 403, error: "cross-site request refused: call the admin API from its own page or a tool", detail }
  }
  if (origin !== undefined && !sameAuthority(origin, req.headers.host)) {
    return { status: 403, error: "cross-origin request refused: Origin is not this admin endpoint", detail }
  }
  const type = req.headers["content-type"]?.split(";")[0]?.trim().toLowerCase()
  if (!bearer && type !== undefined && formTypes.has(type)) {
    return {
      status: 415,
      error: "the admin API takes no form body: send none (or Content-Type: application/json)",
      detail: { ...detail, contentType: type }
    }
  }
  return undefined
}
