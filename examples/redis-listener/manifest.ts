// The `redis` listener type: what a polyproxy config names (`type: redis`), its metrics label, its own key, and how
// it starts. Light on purpose: the protocol's code is imported when a listener of this type starts.
import { ConfigError, type ListenerManifest, protocolListener } from "../../src/index.ts"

export const redisListener: ListenerManifest = {
  type: "redis",
  label: "redis",
  options: {
    // A client that sends a command before logging in goes to this resource (a Redis without passwords); without
    // it, the client is answered NOAUTH as by a Redis with passwords, until it logs in.
    keys: ["defaultRoute"],
    decode: (o, key) => {
      const route = o.defaultRoute
      if (route !== undefined && (typeof route !== "string" || route === "")) {
        throw new ConfigError(`${key}.defaultRoute`, "expected a resource id")
      }
      return { defaultRoute: route }
    }
  },
  start: protocolListener(() => import("./protocol.ts").then((m) => m.redisProtocol))
}
