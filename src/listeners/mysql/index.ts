// The mysql listener type: greets the client itself (as MySQL or MariaDB) and routes by the login's database or user.
import { mysqlServerFlavors } from "../../config/Config.ts"
import { ConfigError, oneOf, show, str } from "../../config/fields.ts"
import { type ListenerManifest, protocolListener } from "../manifest.ts"
import { decodeMysqlAuth } from "./proxyAuth/settings.ts"

/** A MySQL greeting's version string: NUL-terminated on the wire, and clients read its leading digits. */
const serverVersion = (v: unknown, key: string): string => {
  const text = str(v, key)
  if (!/^\d+\.\d+\.\d+/.test(text) || text.includes("\0") || Buffer.byteLength(text) > 200) {
    throw new ConfigError(key, `expected a version such as "8.0.40" or "5.5.5-10.11.6-MariaDB", got ${show(v)}`)
  }
  return text
}

export const mysqlListener: ListenerManifest = {
  type: "mysql",
  label: "mysql",
  routeBy: ["database", "user"],
  options: {
    keys: ["serverFlavor", "serverVersion", "auth"],
    decode: (o, key) => ({
      serverFlavor: oneOf(o.serverFlavor, `${key}.serverFlavor`, mysqlServerFlavors, "auto"),
      serverVersion: o.serverVersion === undefined ? undefined : serverVersion(o.serverVersion, `${key}.serverVersion`),
      auth: decodeMysqlAuth(o.auth, `${key}.auth`)
    })
  },
  start: protocolListener(() => import("./mysql.ts").then((m) => m.mysqlProtocol))
}
