// `route: { firstBytes }`: a user function reads the client's first bytes and names the resource; the bytes then go
// to the backend unchanged. Users route protocols polyproxy has no listener for (Redis by ACL user, MQTT by client
// id...) without forking it.
import { pathToFileURL } from "node:url"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { type ProxyError, proxyError } from "../../domain/ProxyError.ts"
import type { ClientConnection, Identified } from "../Protocol.ts"
import { type DecodeResult, readFrame } from "../readFrame.ts"

/**
 * Called with every byte the client has sent so far (the same bytes again plus the new ones, each time more arrive)
 * until it decides:
 * - a non-empty string: the resource id to route to;
 * - `""`: this client names no resource (the listener's `defaultRoute`, else refused as FORBIDDEN);
 * - `"need-more"`: call again when more bytes arrive; once 16 KB are buffered (or `timeouts.handshake` passes) the
 *   client is refused instead. A first write larger than 16 KB is still shown whole, since a decision may lie in it;
 * - an `Error`: refuse the client (BAD_REQUEST, the message is logged).
 * It must be synchronous and must not modify or keep the buffer: those exact bytes are replayed to the backend.
 * A throw, or any other answer, is a bug in the extractor: the client is refused as INTERNAL.
 */
export type FirstBytesExtractor = (firstBytes: Buffer) => string | "need-more" | Error

export interface FirstBytesShape {
  readonly extract: FirstBytesExtractor
}

/** For programs that embed polyproxy: an extractor built by an Effect (reading config, other services...). */
export class FirstBytes extends Context.Service<FirstBytes, FirstBytesShape>()("polyproxy/FirstBytes") {
  static readonly layer = (extract: FirstBytesExtractor): Layer.Layer<FirstBytes> =>
    Layer.succeed(FirstBytes, FirstBytes.of({ extract }))
}

/** What the listener waits for at most before refusing the client (HAProxy's default buffer is the same 16 KB). */
export const maxFirstBytes = 16_384

const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/** Imports `ref` ("/absolute/module.js#export", as the config decoder leaves it); fails with why, naming `key`. */
export const loadExtractor = (ref: string, key: string): Effect.Effect<FirstBytesExtractor, ProxyError> => {
  const hash = ref.lastIndexOf("#")
  const file = ref.slice(0, hash)
  const name = ref.slice(hash + 1)
  const fail = (why: string) => proxyError("INTERNAL", "internal", `${key}: ${why}`)
  return Effect.flatMap(
    Effect.tryPromise({
      try: () => import(pathToFileURL(file).href) as Promise<Record<string, unknown>>,
      catch: (e) => fail(`cannot load ${file}: ${messageOf(e)}`)
    }),
    (module) => {
      const fn = module[name]
      if (typeof fn === "function") return Effect.succeed(fn as FirstBytesExtractor)
      const exported = Object.keys(module).join(", ") || "none"
      return Effect.fail(
        fn === undefined
          ? fail(`${file} has no export "${name}" (its exports: ${exported})`)
          : fail(`export "${name}" of ${file} is a ${typeof fn}, expected a function (firstBytes: Buffer) => string`)
      )
    }
  )
}

/** The extractor's answer: the key, or how it broke its contract. */
type Outcome = string | { readonly fault: string }

const needMore: DecodeResult<never> = { _tag: "Need", bytes: 1 }

const describe = (v: unknown): string =>
  v === null ? "null" : typeof v === "object" ? `an object (${Object.prototype.toString.call(v)})` : typeof v

export const firstBytesIdentify = (
  extract: FirstBytesExtractor,
  defaultRoute: string | undefined
): ((conn: ClientConnection) => Effect.Effect<Identified, ProxyError>) => {
  const decode = (buf: Buffer): DecodeResult<Outcome> => {
    let answer: unknown
    try {
      answer = extract(buf)
    } catch (e) {
      return { _tag: "Frame", value: { fault: `threw: ${messageOf(e)}` }, size: buf.length }
    }
    if (answer === "need-more") return needMore
    if (typeof answer === "string") return { _tag: "Frame", value: answer, size: buf.length }
    // Errors from another realm (vm, worker) fail instanceof: any object with a string message will do.
    if (typeof answer === "object" && answer !== null && typeof (answer as Error).message === "string") {
      return { _tag: "Invalid", reason: `first-bytes extractor refused the client: ${(answer as Error).message}` }
    }
    return {
      _tag: "Frame",
      value: { fault: `returned ${describe(answer)}, expected a string, "need-more" or an Error` },
      size: buf.length
    }
  }
  const noKey = proxyError(
    "FORBIDDEN",
    "client",
    "the first-bytes extractor found no routing key and listeners.tcp.defaultRoute is not set"
  )
  return (conn) =>
    Effect.flatMap(readFrame(conn.client, decode, maxFirstBytes), (read) => {
      const key = read.value
      if (typeof key !== "string") {
        return Effect.fail(proxyError("INTERNAL", "internal", `first-bytes extractor ${key.fault}`))
      }
      // The extractor saw every byte read so far: `bytes` is all of them.
      if (key !== "") return Effect.succeed({ resourceId: key, client: conn.client, replay: read.bytes })
      return defaultRoute === undefined
        ? Effect.fail(noKey)
        : Effect.succeed({ resourceId: defaultRoute, client: conn.client, replay: read.bytes })
    })
}
