// Which local address the proxy dials backends from. One source address reaches one backend address through at most
// one ephemeral port range (≈ 28k connections with Linux's default 32768–60999); `upstream.sourceAddresses` lists
// more, used in turn per address family, so the proxy can hold that many per source address (HAProxy's `source`,
// Envoy's upstream_bind_config). Empty: the kernel chooses, as before. Plain module state: every dial reads it, the
// config sets it at start and on reload.
import { isIP } from "node:net"

let v4: ReadonlyArray<string> = []
let v6: ReadonlyArray<string> = []
let next4 = 0
let next6 = 0

/** Replaces the source addresses (validated by the config decoder). */
export const setSourceAddresses = (addresses: ReadonlyArray<string>): void => {
  v4 = addresses.filter((a) => isIP(a) === 4)
  v6 = addresses.filter((a) => isIP(a) === 6)
  next4 = 0
  next6 = 0
}

/** The next source address for a dial to a `family` (4 or 6) target; undefined = let the kernel choose. */
export const nextSourceAddress = (family: number): string | undefined => {
  if (family === 6) {
    if (v6.length === 0) return undefined
    next6 = next6 + 1 === v6.length ? 0 : next6 + 1
    return v6[next6]
  }
  if (v4.length === 0) return undefined
  next4 = next4 + 1 === v4.length ? 0 : next4 + 1
  return v4[next4]
}
