// The dashboard's session cookie: "<expiry>.<HMAC-SHA256(admin.token, expiry)>", never the token itself. A cookie
// that leaks (a browser profile, a proxy's log) opens the dashboard until its expiry, cannot be used as the bearer
// token and does not reveal it. Keyed by the token, not by a per-process secret, so a session survives a restart and
// works on every replica behind one admin Service (they share the token); changing `admin.token` ends every session.

import { createHmac, timingSafeEqual } from "node:crypto"

/** Seconds a dashboard login lasts; the page then asks for the token again. */
export const sessionSeconds = 12 * 60 * 60

const label = "polyproxy-admin-session"

const mac = (token: string, expires: number) => createHmac("sha256", token).update(`${label}:${expires}`).digest()

export const newSession = (token: string, nowMs: number = Date.now()): string => {
  const expires = Math.floor(nowMs / 1000) + sessionSeconds
  return `${expires}.${mac(token, expires).toString("base64url")}`
}

/** Same time whatever the guess (timingSafeEqual on equal-length MACs); expired or malformed values are refused. */
export const validSession = (value: string | undefined, token: string, nowMs: number = Date.now()): boolean => {
  const m = value === undefined ? null : /^(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(value)
  if (m === null) return false
  const expires = Number(m[1])
  const now = nowMs / 1000
  if (expires <= now || expires > now + sessionSeconds + 60) return false
  return timingSafeEqual(Buffer.from(m[2]!, "base64url"), mac(token, expires))
}
