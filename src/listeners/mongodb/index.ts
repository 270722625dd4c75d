// The mongodb listener type: answers the driver's hello itself and routes by the first command's $db (or appName,
// or the TLS server name).
import { int } from "../../config/fields.ts"
import { type ListenerManifest, protocolListener } from "../manifest.ts"

export const mongodbListener: ListenerManifest = {
  type: "mongodb",
  label: "mongodb",
  routeBy: ["database", "appName", "sni"],
  options: {
    keys: ["maxRoutingCommand"],
    // Up to MongoDB's largest command document (16 MiB + 16 KiB): what an unrouted connection may make the proxy hold.
    decode: (o, key) => ({
      maxRoutingCommand: int(o.maxRoutingCommand, `${key}.maxRoutingCommand`, 1024, 16_793_600, 65_536)
    })
  },
  start: protocolListener(() => import("./mongodb.ts").then((m) => m.mongodbProtocol))
}
