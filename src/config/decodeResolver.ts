// The `resolver` section: where routes come from when the file's own `routes` are not the answer.
import { defaults, type ResolverConfig, resolverTypes } from "./Config.ts"
import { ConfigError, int, isObj, object, oneOf, seconds, str } from "./fields.ts"

/** A URL with one of `schemes`; never echoed back, since it may carry a password. */
const url = (v: unknown, key: string, schemes: ReadonlyArray<string>): string => {
  const text = str(v, key)
  let scheme: string
  try {
    scheme = new URL(text).protocol
  } catch {
    throw new ConfigError(key, `not a valid URL (expected ${schemes.map((s) => `${s}//…`).join(" or ")})`)
  }
  if (!schemes.includes(scheme)) {
    throw new ConfigError(key, `expected a ${schemes.join(" or ")} URL, got ${scheme}`)
  }
  return text
}

const positiveSeconds = (v: unknown, key: string, fallback: number): number => {
  const s = seconds(v, key, fallback)
  if (s === 0) throw new ConfigError(key, "must be more than 0 seconds")
  return s
}

export const resolverConfig = (v: unknown): ResolverConfig => {
  if (v === undefined || v === null) return { type: "static" }
  const type = oneOf(isObj(v) ? v.type : undefined, "resolver.type", resolverTypes, "static")
  const d = defaults.resolver
  switch (type) {
    case "static":
      object(v, "resolver", ["type"])
      return { type }
    case "redis": {
      const o = object(v, "resolver", ["type", "url", "key", "timeout"])
      return {
        type,
        url: url(o.url, "resolver.url", ["redis:", "rediss:"]),
        key: str(o.key, "resolver.key", d.redis.key),
        timeout: positiveSeconds(o.timeout, "resolver.timeout", d.redis.timeout)
      }
    }
    case "http": {
      const o = object(v, "resolver", [
        "type",
        "url",
        "token",
        "timeout",
        "retries",
        "failureThreshold",
        "cooldown",
        "wakeUrl"
      ])
      return {
        type,
        url: url(o.url, "resolver.url", ["http:", "https:"]),
        token: o.token === undefined ? undefined : str(o.token, "resolver.token"),
        timeout: positiveSeconds(o.timeout, "resolver.timeout", d.http.timeout),
        retries: int(o.retries, "resolver.retries", 0, 10, d.http.retries),
        failureThreshold: int(o.failureThreshold, "resolver.failureThreshold", 0, 1_000_000, d.http.failureThreshold),
        cooldown: seconds(o.cooldown, "resolver.cooldown", d.http.cooldown),
        wakeUrl: o.wakeUrl === undefined ? undefined : url(o.wakeUrl, "resolver.wakeUrl", ["http:", "https:"])
      }
    }
  }
}
