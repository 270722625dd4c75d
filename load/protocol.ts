// What the coordinator, the agents and the backends say to each other: one JSON object per line, over an agent's
// stdin/stdout when the coordinator spawned it, or over a TCP connection to the coordinator when the agent runs
// elsewhere (a Kubernetes pod: see k8s/agents-job.yaml). Also the wire bytes of the two load modes.

export type Mode = "tcp" | "postgres" | "postgres-pooled"

/** Everything an agent needs; the coordinator sends it once, right after the agent says hello. */
export interface AgentConfig {
  readonly mode: Mode
  /** Where the proxy's listener is, as the agent sees it. */
  readonly host: string
  readonly port: number
  /** Source addresses to bind (`localAddress`), used in turn, each for at most `perSource` connections. Empty = let
   * the kernel choose (one source address: ≈ 28k connections to the proxy at most). */
  readonly sources: ReadonlyArray<string>
  readonly perSource: number
  /** With `sources`: the agent binds explicit ports `portLo`, `portLo + 1`, … (`perSource` of them per address),
   * chosen below the kernel's ephemeral range. bind() with port 0 costs a scan of the range per connection (the
   * ramp slows to a crawl past ≈ 10k per address), and ports it takes inside the range are then skipped by every
   * connect() on the machine, the proxy's own dials to backends included. A port someone listens on is skipped. */
  readonly portLo: number
  /** postgres mode: database names, used in turn (each one a route of the proxy to its own backend address).
   * postgres-pooled: the pooled routes' databases, each with every role of `users` (loginsOf). */
  readonly databases: ReadonlyArray<string>
  /** postgres-pooled: the roles the agent logs in as, and their passwords (same order). */
  readonly users?: ReadonlyArray<string>
  readonly passwords?: ReadonlyArray<string>
  /** Connections being opened at once (connect + round trip not finished yet). */
  readonly concurrency: number
  /** A connection not confirmed within this many ms counts as an error (TIMEOUT) and is closed. */
  readonly confirmTimeoutMs: number
  /** The agent exits by itself this many ms after it got its config, whatever happens. */
  readonly lifetimeMs: number
}

export type ToAgent =
  | { readonly t: "config"; readonly config: AgentConfig }
  /** Hold this many confirmed connections (the agent's own share, not the total). */
  | { readonly t: "target"; readonly n: number }
  | { readonly t: "stop" }

export interface AgentReport {
  readonly t: "report"
  readonly id: number
  readonly pid: number
  readonly target: number
  /** Connect attempts started. */
  readonly started: number
  /** Round trip through proxy and backend checked, connection held idle now. */
  readonly confirmed: number
  readonly pending: number
  /** Attempts that never got confirmed (refused, reset, timed out, wrong bytes). */
  readonly failed: number
  /** Confirmed connections that closed while they should have been held. */
  readonly lost: number
  /** Source ports skipped because something else holds them (not failures). */
  readonly skipped: number
  readonly errors: Readonly<Record<string, number>>
  readonly rssBytes: number
  readonly heapUsedBytes: number
}

export type FromAgent =
  | { readonly t: "hello"; readonly id: number; readonly pid: number; readonly host: string }
  | AgentReport
  | { readonly t: "bye"; readonly id: number }

export interface BackendReport {
  readonly t: "backend"
  readonly pid: number
  readonly listening: ReadonlyArray<string>
  readonly open: number
  readonly accepted: number
  readonly errors: number
  readonly errorCodes: Readonly<Record<string, number>>
  readonly rssBytes: number
}

/** tcp mode: what an agent sends after connecting; the echo backend returns it, the agent compares. */
export const PROBE = Buffer.from("polyproxy-load\n")

/** postgres modes: a protocol 3.0 StartupMessage for `database` as `user`. */
export const startupMessage = (database: string, user = "load"): Buffer => {
  const body = Buffer.from(`user\0${user}\0database\0${database}\0application_name\0polyproxy-load\0\0`)
  const msg = Buffer.alloc(8 + body.length)
  msg.writeInt32BE(msg.length, 0)
  msg.writeInt32BE(3 << 16, 4)
  body.copy(msg, 8)
  return msg
}

/**
 * postgres-pooled: every database with every role, databases varying fastest; attempt n uses login n % length
 * (agent.c builds the same list).
 */
export const loginsOf = (
  config: AgentConfig
): Array<{ readonly database: string; readonly user: string; readonly password: string }> => {
  const databases = config.databases.length > 0 ? config.databases : ["load"]
  const users = config.users !== undefined && config.users.length > 0 ? config.users : ["load"]
  return users.flatMap((user, r) =>
    databases.map((database) => ({ database, user, password: config.passwords?.[r] ?? "" }))
  )
}

/** postgres mode: the backend's answer to a startup: AuthenticationOk, BackendKeyData, ReadyForQuery (idle). */
export const startupAnswer = (processId: number, secretKey: number): Buffer => {
  const b = Buffer.alloc(9 + 13 + 6)
  b.write("R", 0)
  b.writeInt32BE(8, 1)
  b.writeInt32BE(0, 5)
  b.write("K", 9)
  b.writeInt32BE(12, 10)
  b.writeInt32BE(processId, 14)
  b.writeInt32BE(secretKey, 18)
  b.write("Z", 22)
  b.writeInt32BE(5, 23)
  b.write("I", 27)
  return b
}
export const STARTUP_ANSWER_BYTES = 28

/** Splits a byte stream into lines; calls `onLine` with each parsed JSON object (bad lines are skipped). */
export const jsonLines = (onLine: (value: unknown) => void): ((chunk: Buffer | string) => void) => {
  let pending = ""
  return (chunk) => {
    pending += chunk.toString()
    let nl = pending.indexOf("\n")
    while (nl >= 0) {
      const line = pending.slice(0, nl).trim()
      pending = pending.slice(nl + 1)
      if (line.startsWith("{")) {
        try {
          onLine(JSON.parse(line))
        } catch {}
      }
      nl = pending.indexOf("\n")
    }
    if (pending.length > 1 << 20) pending = ""
  }
}
