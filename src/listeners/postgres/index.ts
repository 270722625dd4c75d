// The postgres listener type: routes by the startup message (database, user, user suffix) or the TLS server name.
import { type ListenerManifest, protocolListener } from "../manifest.ts"

export const postgresListener: ListenerManifest = {
  type: "postgres",
  label: "postgresql",
  routeBy: ["database", "user", "user-suffix", "sni"],
  start: protocolListener(() => import("./postgres.ts").then((m) => m.postgresProtocol))
}
