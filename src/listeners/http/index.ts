// The http listener type: a reverse proxy routing each request by its Host, on its own HTTP/1.1 and HTTP/2 servers
// rather than on the byte pipeline. Its engine (undici and the servers) is imported only when one starts.
import * as Effect from "effect/Effect"
import { httpKeys, httpOptions } from "../../config/decodeHttp.ts"
import type { ListenerManifest } from "../manifest.ts"

export const httpListener: ListenerManifest = {
  type: "http",
  label: "http",
  options: { keys: httpKeys, decode: (o, key, baseDir) => ({ http: httpOptions(o, key, baseDir) }) },
  start: (ctx, admission) =>
    Effect.flatMap(
      Effect.promise(() => import("./HttpListener.ts")),
      (m) => m.startHttpListener(ctx, ctx.config.timeouts, admission)
    )
}
