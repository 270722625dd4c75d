// The listener types a proxy knows: one manifest per protocol (src/listeners/<p>/index.ts), plus any a program adds.
// Manifests are light and import their protocol's code only when a listener of their type starts: each worker then
// holds the code of its own protocols alone (the HTTP engine, the MongoDB codec with bson, MySQL and SMTP: 1.4 MB of
// heap at import, ≈ 1 MB of RSS per process that a Postgres-only proxy never uses; it runs one process per 7,800
// connections where the fd limit is 20,000).
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import { httpListener } from "./http/index.ts"
import type { ListenerManifest } from "./manifest.ts"
import { mongodbListener } from "./mongodb/index.ts"
import { mysqlListener } from "./mysql/index.ts"
import { postgresListener } from "./postgres/index.ts"
import { smtpListener } from "./smtp/index.ts"
import { tcpListener } from "./tcp/index.ts"

export const builtinListeners: ReadonlyArray<ListenerManifest> = [
  httpListener,
  postgresListener,
  mysqlListener,
  mongodbListener,
  smtpListener,
  tcpListener
]

export interface ListenerRegistryShape {
  /** Every type, the built-in ones first. */
  readonly manifests: ReadonlyArray<ListenerManifest>
  readonly find: (type: string) => ListenerManifest | undefined
}

/** The built-in types plus `extra`; one of `extra` with a built-in's type takes its place. */
export const listenerTypesWith = (extra: ReadonlyArray<ListenerManifest> = []): ListenerRegistryShape => {
  const byType = new Map<string, ListenerManifest>()
  for (const m of [...builtinListeners, ...extra]) byType.set(m.type, m)
  const manifests = [...byType.values()]
  return { manifests, find: (type) => byType.get(type) }
}

/** The types the proxy starts listeners of. runProxy builds it from `RunOptions.listeners`. */
export class ListenerRegistry extends Context.Service<ListenerRegistry, ListenerRegistryShape>()(
  "polyproxy/ListenerRegistry"
) {
  static readonly make = listenerTypesWith
  /** The built-in types plus yours. */
  static readonly layer = (extra: ReadonlyArray<ListenerManifest> = []) =>
    Layer.sync(ListenerRegistry, () => listenerTypesWith(extra))
}
