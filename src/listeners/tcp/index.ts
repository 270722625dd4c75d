// The tcp listener type: raw TCP, routed by a fixed resource id, the TLS server name, or a user's first-bytes
// extractor (`route`); labelled after the port's protocol in the protocol table.
import * as path from "node:path"
import type { TcpRoute } from "../../config/Config.ts"
import { ConfigError, object, show, str } from "../../config/fields.ts"
import { protocolForPort } from "../../domain/Protocols.ts"
import { type ListenerManifest, protocolListener } from "../manifest.ts"

const tcpRoute = (v: unknown, key: string, baseDir: string): TcpRoute => {
  if (typeof v === "string" || v === undefined) return str(v, key)
  const o = object(v, key, ["firstBytes"])
  const ref = str(o.firstBytes, `${key}.firstBytes`)
  // "<module path>#<export>"; without "#", the default export. The last "#" splits: a path with a "#" names its export.
  const hash = ref.lastIndexOf("#")
  const file = hash < 0 ? ref : ref.slice(0, hash)
  const name = hash < 0 ? "default" : ref.slice(hash + 1)
  if (file === "" || !/^[A-Za-z_$][\w$]*$/.test(name)) {
    throw new ConfigError(`${key}.firstBytes`, `expected "<module path>#<export name>", got ${show(ref)}`)
  }
  // Imported at startup (decoding is synchronous); the path is fixed now, against the config file's folder.
  return { firstBytes: `${path.resolve(baseDir, file)}#${name}` }
}

export const tcpListener: ListenerManifest = {
  type: "tcp",
  label: (port) => protocolForPort(port) ?? "tcp",
  options: {
    keys: ["route", "defaultRoute"],
    decode: (o, key, baseDir) => {
      const route = tcpRoute(o.route, `${key}.route`, baseDir)
      if (typeof route === "string" && route !== "sni" && o.defaultRoute !== undefined) {
        throw new ConfigError(`${key}.defaultRoute`, "only used with route: sni or route: { firstBytes }")
      }
      return {
        route,
        defaultRoute: o.defaultRoute === undefined ? undefined : str(o.defaultRoute, `${key}.defaultRoute`)
      }
    }
  },
  // tcp may first import the config's first-bytes extractor: a failure stops the start (or the reload) with its reason.
  start: protocolListener(() => import("../tcp.ts").then((m) => (ctx) => m.loadTcpProtocol(ctx, ctx.shared.firstBytes)))
}
