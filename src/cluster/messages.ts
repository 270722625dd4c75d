// IPC between the cluster primary and its workers. Small JSON messages; the data path never uses them.
import type { ListenerStatus } from "../admin/AdminServer.ts"
import type { VettedEndpoint } from "../domain/Endpoint.ts"
import type { KillIssuer, MysqlSessionRecord } from "../listeners/mysql/sessions.ts"
import type { SharedCancel } from "../listeners/postgres/CancelKeys.ts"

export type { ListenerStatus }

export type FromWorker =
  | { readonly t: "ready"; readonly listeners: ReadonlyArray<ListenerStatus> }
  | { readonly t: "metrics"; readonly id: number; readonly text: string }
  | { readonly t: "status"; readonly id: number; readonly listeners: ReadonlyArray<ListenerStatus> }
  | { readonly t: "ck+"; readonly key: string; readonly target: VettedEndpoint }
  | { readonly t: "ck-"; readonly key: string }
  | { readonly t: "ck?"; readonly id: number; readonly key: string }
  // A pooled client's cancel target, asked of the worker that issued its key (pk?), with the number of the claim that
  // worker took on the server connection (SharedCancel `hold`: no other client gets it until the cancel is over).
  | { readonly t: "pk="; readonly id: number; readonly found: SharedCancel | null }
  // The cancel sent for another worker's pooled client is over (its connection to the server closed, or it was
  // refused): the primary tells the worker that issued `key` (pk-), which ends its claim `hold`.
  | { readonly t: "pk-"; readonly key: string; readonly hold: number }
  | { readonly t: "admin"; readonly id: number; readonly result: unknown }
  | { readonly t: "wake?"; readonly id: number; readonly key: string; readonly ttlMs: number }
  // MySQL sessions by the proxy's connection id (KILL), and this worker's share of those ids.
  | { readonly t: "ms+"; readonly proxyId: number; readonly session: MysqlSessionRecord }
  | { readonly t: "ms-"; readonly proxyId: number }
  | { readonly t: "ms?"; readonly id: number; readonly proxyId: number; readonly kill: KillIssuer }
  // A pooled MySQL client's record at KILL time, asked of the worker that greeted it (mk?), with the number of the
  // claim that worker took on its server connection (MysqlSessionRecord `lentHold`) for an issuer that says when its KILL
  // is answered (mk-: the primary tells the worker that greeted `proxyId`, which ends the claim).
  | { readonly t: "mk="; readonly id: number; readonly session: MysqlSessionRecord | null }
  | { readonly t: "mk-"; readonly proxyId: number; readonly hold: number }
  | { readonly t: "slot?"; readonly id: number }

export type FromPrimary =
  | { readonly t: "metrics?"; readonly id: number }
  | { readonly t: "status?"; readonly id: number }
  | { readonly t: "ck="; readonly id: number; readonly found: SharedCancel | null }
  | { readonly t: "pk?"; readonly id: number; readonly key: string }
  | { readonly t: "pk-"; readonly hold: number }
  | { readonly t: "shutdown" }
  | { readonly t: "wake="; readonly id: number; readonly mine: boolean }
  | { readonly t: "ms="; readonly id: number; readonly session: MysqlSessionRecord | null }
  | { readonly t: "mk?"; readonly id: number; readonly proxyId: number; readonly kill: KillIssuer }
  | { readonly t: "mk-"; readonly hold: number }
  | { readonly t: "slot="; readonly id: number; readonly index: number; readonly count: number }
  | { readonly t: "admin?"; readonly id: number; readonly op: AdminOp; readonly arg?: string }

/** The admin API's questions a worker answers (see AdminOps in Proxy.ts). */
export type AdminOp = "backends" | "stats" | "pools" | "purge" | "drain" | "reload"
